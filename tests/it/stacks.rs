//! `x-imgctl.stack` (and `--stack`) against a real single-node swarm: a stack made by `docker
//! stack deploy` (images from an htpasswd registry, a secret, a config, two networks with an
//! alias), then `imgctl deploy SERVICE --digest` pins the digest in the stack's own service.
#![allow(clippy::print_stderr)] // what a later `docker stack deploy` did, reported as seen

use crate::common;

use std::fs;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::swarm::Swarm;
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, random_hex, stderr, stdout};

/// `docker stack rm` on drop (before the swarm it is on), and whatever of the stack's
/// networks, secrets and configs outlived it.
struct Stack {
    name: String,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = docker(&["stack", "rm", &self.name]);
        let filter = format!("label=com.docker.stack.namespace={}", self.name);
        // The busybox httpd ignores SIGTERM: its tasks end at their stop grace (1 s).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let containers = lines(&docker(&["ps", "--all", "--quiet", "--filter", &filter]));
            if !containers.is_empty() {
                let _ = Command::new("docker").args(["rm", "--force"]).args(&containers).output();
            }
            let networks = lines(&docker(&["network", "ls", "--quiet", "--filter", &filter]));
            for network in &networks {
                let _ = docker(&["network", "rm", network]);
            }
            for kind in ["secret", "config"] {
                for id in lines(&docker(&[kind, "ls", "--quiet", "--filter", &filter])) {
                    let _ = docker(&[kind, "rm", &id]);
                }
            }
            if networks.is_empty() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("running docker")
}

fn run(command: &mut Command) -> Output {
    command.output().expect("running docker")
}

fn lines(out: &Output) -> Vec<String> {
    stdout(out).lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// Where root's runs keep the host's deploy locks.
const LOCKS: &str = "/var/lib/imgctl/locks";

/// Fields drop in order: the stack before the swarm, the swarm before the images.
struct StackSite {
    stack: Stack,
    swarm: Swarm,
    home: TestHome,
    images: WebImages,
}

const HEALTHCHECK: &str = r#"    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 1s
      retries: 2
"#;

impl StackSite {
    fn new() -> Self {
        let images = WebImages::build("stacks");
        let swarm = Swarm::start();
        let stack = Stack { name: format!("imgctl-test-stack-{}", random_hex(4)) };
        swarm.track(&format!("{}_api", stack.name));
        let mut home = TestHome::new("stacks");
        images.login(&mut home);
        Self { stack, swarm, home, images }
    }

    fn service(&self) -> String {
        format!("{}_api", self.stack.name)
    }

    /// Writes stack.yml and runs `docker stack deploy` with it, as the team does.
    fn stack_deploy(&self) -> Output {
        let text = format!(
            r#"version: "3.8"
services:
  api:
    image: {repo}:v1
{HEALTHCHECK}    stop_grace_period: 1s
    environment:
      GREETING: hello
    labels:
      team: numbers
    networks:
      default: {{}}
      back:
        aliases: [numbers-api]
    secrets:
      - source: token
        target: api_token
        mode: 0400
    configs:
      - source: conf
        target: /etc/api.conf
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      labels:
        tier: front
      update_config: {{parallelism: 1, delay: 0s, monitor: 2s, order: start-first, failure_action: rollback}}
networks:
  back: {{}}
secrets:
  token:
    file: ./token.txt
configs:
  conf:
    file: ./api.conf
"#,
            repo = self.images.repo,
        );
        fs::write(self.home.dir.join("stack.yml"), text).unwrap();
        fs::write(self.home.dir.join("token.txt"), "stack-secret-token\n").unwrap();
        fs::write(self.home.dir.join("api.conf"), "answer = 42\n").unwrap();
        self.images
            .docker()
            .args(["stack", "deploy", "--with-registry-auth", "--detach=true", "-c", "stack.yml", &self.stack.name])
            .current_dir(&self.home.dir)
            .output()
            .unwrap()
    }

    /// imgctl's compose file: the image's repository and where it runs; `stack`: the key.
    fn compose(&self, file: &str, stack: Option<&str>) {
        let stack = stack.map(|s| format!(", stack: {s}")).unwrap_or_default();
        let text = format!(
            "services:\n  api:\n    image: {repo}:v1\n{HEALTHCHECK}    x-imgctl: {{target: swarm, strategy: rolling{stack}, swarm: {{converge_timeout: 120s}}}}\n",
            repo = self.images.repo,
        );
        fs::write(self.home.dir.join(file), text).unwrap();
    }

    fn imgctl(&self, args: &[&str]) -> Output {
        let mut command = self.home.command(IMGCTL);
        command.args(args).current_dir(&self.home.dir).stdin(Stdio::null());
        command.output().unwrap()
    }

    fn inspect(&self) -> serde_json::Value {
        self.swarm.inspect(&self.service())
    }

    /// Waits until `replicas` tasks run and are meant to, each on an image of `repo@digest`
    /// or `repo:tag@digest` for this digest; returns their images.
    fn wait_running(&self, digest: &str, replicas: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let tasks = self.swarm.tasks(&self.service());
            let meant: Vec<&serde_json::Value> = tasks.iter().filter(|t| t["DesiredState"] == "running").collect();
            let image = |t: &serde_json::Value| t["Spec"]["ContainerSpec"]["Image"].as_str().unwrap_or("").to_owned();
            if meant.len() == replicas
                && meant.iter().all(|t| t["Status"]["State"] == "running" && image(t).ends_with(digest))
            {
                return meant.iter().map(|t| image(t)).collect();
            }
            assert!(started.elapsed() < Duration::from_secs(120), "not converged on {digest}: {tasks:#?}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Runs `args` in one of the service's running task containers.
    fn exec(&self, args: &[&str]) -> String {
        let filter = format!("label=com.docker.swarm.service.name={}", self.service());
        let ids = lines(&docker(&["ps", "--quiet", "--filter", &filter]));
        let id = ids.first().unwrap_or_else(|| panic!("no running container of {}", self.service()));
        let out = Command::new("docker").arg("exec").arg(id).args(args).output().unwrap();
        assert_success(&out, &format!("docker exec {args:?}"));
        stdout(&out)
    }

    /// Services of this stack, and any service named like the compose service alone.
    fn service_names(&self) -> Vec<String> {
        let filter = format!("label=com.docker.stack.namespace={}", self.stack.name);
        let mut names = lines(&docker(&["service", "ls", "--filter", &filter, "--format", "{{.Name}}"]));
        names.extend(lines(&docker(&["service", "ls", "--filter", "name=api", "--format", "{{.Name}}"])));
        names.sort();
        names.dedup();
        names.retain(|n| n == "api" || n.starts_with(&self.stack.name));
        names
    }
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", stdout(out), stderr(out)))
}

/// The spec with imgctl's changes taken out: the image put back and imgctl's labels removed.
fn without_imgctl(spec: &serde_json::Value, image: &serde_json::Value) -> serde_json::Value {
    let mut spec = spec.clone();
    spec["TaskTemplate"]["ContainerSpec"]["Image"] = image.clone();
    if let Some(labels) = spec["Labels"].as_object_mut() {
        labels.retain(|k, _| !k.starts_with("imgctl."));
    }
    spec
}

#[test]
fn a_stack_service_is_pinned_in_place_keeping_what_stack_deploy_gave_it() {
    let site = StackSite::new();
    assert_success(&site.stack_deploy(), "docker stack deploy");
    let first = site.wait_running(&site.images.v1.digest, 2);
    let before = site.inspect();
    let stack_image = before["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].clone();
    eprintln!("docker stack deploy gave the service the image {stack_image} (tasks: {first:?})");
    assert_eq!(before["Spec"]["Labels"]["com.docker.stack.namespace"], site.stack.name.as_str());
    assert_eq!(before["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"].as_array().map(Vec::len), Some(1));

    site.compose("compose.yaml", Some(&site.stack.name));
    let out = site.imgctl(&["deploy", "api", "--digest", &site.images.v2.digest, "-o", "json"]);
    assert_success(&out, "imgctl deploy of the stack's service");
    assert_eq!(report(&out)["digest"], site.images.v2.digest.as_str());
    let after = site.inspect();
    assert_eq!(after["ID"], before["ID"], "the same service, updated in place");
    assert_eq!(after["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"], site.images.v2.image.as_str());
    assert_eq!(site.wait_running(&site.images.v2.digest, 2), vec![site.images.v2.image.clone(); 2], "converged");
    assert_eq!(after["Spec"]["Labels"]["imgctl.digest"], site.images.v2.digest.as_str());
    // Everything else is the stack's spec as docker stack deploy wrote it: labels (stack
    // namespace and image among them), networks and aliases, secrets, configs, environment,
    // replicas, update_config.
    assert_eq!(without_imgctl(&after["Spec"], &stack_image), before["Spec"]);
    assert_eq!(site.service_names(), vec![site.service()], "no second service");
    // The task of the pinned version still gets the stack's secret and config.
    assert_eq!(site.exec(&["/bin/busybox", "cat", "/run/secrets/api_token"]), "stack-secret-token\n");
    assert_eq!(site.exec(&["/bin/busybox", "cat", "/etc/api.conf"]), "answer = 42\n");

    // `--stack` does what the key does, for status and for deploys.
    site.compose("flag.yaml", None);
    let out = site.imgctl(&["status", "api", "-f", "flag.yaml", "--stack", &site.stack.name, "-o", "json"]);
    assert_success(&out, "imgctl status --stack");
    let status = report(&out);
    assert_eq!(status["services"][0]["name"], site.service().as_str(), "{status}");
    assert_eq!(status["services"][0]["id"], before["ID"], "{status}");
    let out = site.imgctl(&[
        "deploy",
        "api",
        "-f",
        "flag.yaml",
        "--stack",
        &site.stack.name,
        "--digest",
        &site.images.v3.digest,
    ]);
    assert_success(&out, "imgctl deploy --stack");
    site.wait_running(&site.images.v3.digest, 2);

    // The host's lock of a stack's service is named after the swarm service: a run of another
    // stack's `api` neither waits for this one nor holds it up. With the lock of this one held,
    // a deploy is refused (exit 3); the lock of the name alone would not have stopped it.
    let held = std::fs::create_dir_all(LOCKS)
        .and_then(|()| std::fs::File::create(format!("{LOCKS}/{}.lock", site.service())))
        .unwrap();
    held.lock().unwrap();
    let out = site.imgctl(&["deploy", "api", "--digest", &site.images.v1.digest]);
    assert_eq!(out.status.code(), Some(3), "{} {}", stdout(&out), stderr(&out));
    drop(held);

    let plan = stdout(&site.imgctl(&["deploy", "api", "--digest", &site.images.v1.digest, "--dry-run"]));
    assert!(plan.contains(&format!("in the live spec of swarm service {} of stack", site.service())), "{plan}");
    assert_eq!(site.inspect()["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"], site.images.v3.image.as_str());

    let out = site.imgctl(&["rollback", "api", "-o", "json"]);
    assert_success(&out, "imgctl rollback of the stack's service");
    assert_eq!(report(&out)["digest"], site.images.v2.digest.as_str());
    assert_eq!(site.wait_running(&site.images.v2.digest, 2), vec![site.images.v2.image.clone(); 2]);
    let rolled = site.inspect();
    assert_eq!(rolled["ID"], before["ID"]);
    assert_eq!(without_imgctl(&rolled["Spec"], &stack_image), before["Spec"], "a rollback keeps the stack's spec");

    let out = site.imgctl(&["history", "api", "-o", "json"]);
    let history: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let outcomes: Vec<(&str, &str)> =
        history.iter().map(|r| (r["action"].as_str().unwrap(), r["outcome"].as_str().unwrap())).collect();
    assert_eq!(outcomes, [("deploy", "succeeded"), ("deploy", "succeeded"), ("rollback", "succeeded")]);
    assert_eq!(site.service_names(), vec![site.service()], "still one service");

    // A later `docker stack deploy` of the unchanged stack file writes its whole spec again:
    // the stack file's image, resolved by the registry, replaces the pin.
    assert_success(&site.stack_deploy(), "docker stack deploy again");
    let again = site.inspect();
    let image = again["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].as_str().unwrap().to_owned();
    eprintln!("a later docker stack deploy set the image {image} and the labels {}", again["Spec"]["Labels"]);
    assert_eq!(again["ID"], before["ID"]);
    assert!(image.starts_with(&format!("{}:v1", site.images.repo)), "{image}");
    assert_eq!(again["Spec"]["Labels"].get("imgctl.digest"), None, "imgctl's labels are gone with the pin");
    site.wait_running(&site.images.v1.digest, 2);
}

#[test]
fn a_stack_without_the_service_is_refused_and_nothing_is_created() {
    let site = StackSite::new();
    // No `docker stack deploy`: the stack has no service api.
    site.compose("compose.yaml", Some(&site.stack.name));
    // The other test's runs of its own stack's `api` hold another lock (`STACK_api`).
    let out = site.imgctl(&["deploy", "api", "--digest", &site.images.v1.digest]);
    // A configuration error (the stack has no such service): exit 2, refused before a run
    // starts, so nothing is recorded either.
    assert_eq!(out.status.code(), Some(2), "{} {}", stdout(&out), stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains(&format!("stack {} has no service {}", site.stack.name, site.service())), "{text}");
    assert!(text.contains("docker stack deploy"), "{text}");
    assert_eq!(site.service_names(), Vec::<String>::new(), "imgctl created nothing");
    assert_eq!(stdout(&site.imgctl(&["history", "api"])).trim(), "api: no deploys yet");
    let out = site.imgctl(&["deploy", "api", "--digest", &site.images.v1.digest, "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "a dry run says so too: {}", stderr(&out));

    // A service of that name made outside any stack is not taken for the stack's.
    let created = run(site.images.docker().args([
        "service",
        "create",
        "--with-registry-auth",
        "--detach",
        "--name",
        &site.service(),
        "--network",
        &site.swarm.network,
        "--endpoint-mode",
        "dnsrr",
        "--stop-grace-period",
        "1s",
        &site.images.v1.image,
    ]));
    assert_success(&created, "docker service create outside the stack");
    let before = site.inspect();
    let out = site.imgctl(&["deploy", "api", "--digest", &site.images.v2.digest]);
    assert_eq!(out.status.code(), Some(2), "{} {}", stdout(&out), stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("exists outside any stack"), "{text}");
    assert_eq!(site.inspect()["Version"], before["Version"], "left as it was");

    // Refused before anything: a stack with blue-green, and off swarm.
    fs::write(
        site.home.dir.join("colors.yaml"),
        format!("services:\n  api:\n    image: {}:v1\n    expose: [8080]\n    x-imgctl: {{target: swarm, strategy: blue-green, stack: s1}}\n", site.images.repo),
    )
    .unwrap();
    let out = site.imgctl(&["deploy", "api", "-f", "colors.yaml", "--digest", &site.images.v2.digest]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("stack s1 with strategy blue-green"), "{}", stderr(&out));
}
