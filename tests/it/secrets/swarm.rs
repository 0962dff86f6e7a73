//! compose `secrets:` and `configs:` on a single-node swarm: secret and config objects of
//! imgctl's own, named by content hash, attached with the target, uid and mode asked; an
//! external secret made with `docker secret create` used by name; new content is a new object
//! and a rolling update, the old one kept while the previous spec names it and removed once
//! nothing does; a missing external is refused before anything changes. A stack made by
//! `docker stack deploy` keeps its own references, also when the stack file names them.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{assert_never_shown, docker, exec, owner_and_mode, short_hash};
use crate::common::swarm::Swarm;
use crate::common::web::WebImages;
use crate::common::{IMGCTL, TestHome, assert_success, random_hex, run_with_stdin, stderr, stdout};

#[test]
fn swarm_secrets_and_configs_are_objects_by_content_an_external_is_used_by_name_and_a_missing_one_changes_nothing() {
    let images = WebImages::build("secs");
    let external = format!("imgctl-test-ext-{}", random_hex(4));
    let swarm = Swarm::start();
    let service = swarm.service_name("secs");
    let _objects = Objects { external: external.clone(), service: service.clone() };
    let mut home = TestHome::new("secs");
    images.login(&mut home);
    let sources = home.dir.join("secrets");
    fs::create_dir_all(&sources).unwrap();
    let external_content = format!("ext-{}", random_hex(6));
    let created =
        run_with_stdin(Command::new("docker").args(["secret", "create", &external, "-"]), external_content.as_bytes());
    assert_success(&created, "docker secret create");
    let compose = |external: &str| {
        format!(
            r#"services:
  {service}:
    image: {repo}:v1
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 1s
      retries: 2
    stop_grace_period: 1s
    secrets:
      - {{source: token, uid: "100", mode: 0400}}
      - ext
    configs:
      - {{source: app, target: /etc/app.conf}}
    x-imgctl:
      target: swarm
      strategy: rolling
      swarm: {{network: {network}, converge_timeout: 90s}}
secrets:
  token: {{file: ./secrets/token.txt}}
  ext: {{external: true, name: {external}}}
configs:
  app: {{file: ./secrets/app.conf}}
"#,
            repo = images.repo,
            network = swarm.network,
        )
    };
    fs::write(home.dir.join("compose.yaml"), compose(&external)).unwrap();
    let deploy = |digest: &str| {
        let mut command = home.command(IMGCTL);
        command
            .args(["deploy", &service, "--digest", digest, "-o", "json"])
            .current_dir(&home.dir)
            .stdin(Stdio::null());
        command.output().unwrap()
    };
    let own = |kind: &str| -> Vec<String> {
        let out =
            docker(&[kind, "ls", "--filter", &format!("label=imgctl.service={service}"), "--format", "{{.Name}}"]);
        let mut names: Vec<String> = stdout(&out).split_whitespace().map(str::to_owned).collect();
        names.sort();
        names
    };
    let mut outputs = Vec::new();
    let mut tokens = Vec::new();
    let app = format!("app-{}", random_hex(6));
    fs::write(sources.join("app.conf"), &app).unwrap();
    for (round, digest) in [&images.v1.digest, &images.v2.digest, &images.v1.digest].into_iter().enumerate() {
        let token = format!("tok-{}", random_hex(6));
        fs::write(sources.join("token.txt"), &token).unwrap();
        let out = deploy(digest);
        assert_success(&out, &format!("deploy round {round}"));
        outputs.push(out);
        tokens.push(token.clone());

        let spec = swarm.inspect(&service);
        assert!(!spec.to_string().contains(&token), "the service spec holds references, not content");
        let names = |spec: &Value| -> Vec<String> {
            let list = spec["TaskTemplate"]["ContainerSpec"]["Secrets"].as_array().cloned().unwrap_or_default();
            list.iter().map(|s| s["SecretName"].as_str().unwrap_or_default().to_owned()).collect()
        };
        let ours = |token: &str| format!("{service}-token-{}", short_hash(token));
        assert_eq!(names(&spec["Spec"]), [ours(&token), external.clone()], "round {round}: {spec}");
        let secrets = spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"].clone();
        assert_eq!(
            secrets[0]["File"],
            serde_json::json!({"Name": "/run/secrets/token", "UID": "100", "GID": "0", "Mode": 0o400})
        );
        let configs = &spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"];
        assert_eq!(configs[0]["File"]["Name"], "/etc/app.conf", "{configs}");
        assert_eq!(configs[0]["ConfigName"], format!("{service}-app-{}", short_hash(&app)));
        // New content, new object; the one the previous spec names is kept for a rollback, and
        // one no spec names any more is gone.
        let expected: Vec<String> = match round {
            0 => vec![ours(&tokens[0])],
            _ => {
                assert_eq!(names(&spec["PreviousSpec"])[0], ours(&tokens[round - 1]), "round {round}");
                let mut kept = vec![ours(&tokens[round - 1]), ours(&tokens[round])];
                kept.sort();
                kept
            }
        };
        assert_eq!(own("secret"), expected, "round {round}: imgctl's secret objects");
        assert_eq!(own("config"), [format!("{service}-app-{}", short_hash(&app))], "the same content, one object");

        // The task reads each at its target, with the owner and mode asked.
        let id = running_task(&service, &token);
        assert_eq!(exec(&id, &["cat", "/run/secrets/ext"]).1, external_content, "the external secret, by name");
        assert_eq!(exec(&id, &["cat", "/etc/app.conf"]).1, app);
        assert_eq!(owner_and_mode(&id, "/run/secrets/token"), "400 100 0");
    }

    // A missing external: refused, and the service and the objects are as they were.
    let before = swarm.inspect(&service);
    let objects_before = (own("secret"), own("config"));
    fs::write(sources.join("token.txt"), format!("tok-{}", random_hex(6))).unwrap();
    let missing = format!("{external}-missing");
    fs::write(home.dir.join("compose.yaml"), compose(&missing)).unwrap();
    let out = deploy(&images.v2.digest);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(&format!("secrets.ext: the external secret \"{missing}\" does not exist on this swarm")),
        "{report}"
    );
    assert_eq!(report["failure"], "before-switch");
    let after = swarm.inspect(&service);
    assert_eq!(after["Version"], before["Version"], "the service was not touched");
    assert_eq!((own("secret"), own("config")), objects_before, "no object was created");
    outputs.push(out);

    let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    secrets.push(&external_content);
    assert_never_shown(&home, &outputs, &secrets);
}

/// The one running task container of `service` whose token is `token` (the update's old task
/// may still be stopping).
fn running_task(service: &str, token: &str) -> String {
    running_task_reading(service, "/run/secrets/token", token)
}

/// Removes the service, then the external secret and imgctl's objects of the service (no
/// longer in use), when the test ends, before the swarm handle goes.
struct Objects {
    external: String,
    service: String,
}

impl Drop for Objects {
    fn drop(&mut self) {
        let _ = docker(&["service", "rm", &self.service]);
        let _ = docker(&["secret", "rm", &self.external]);
        for kind in ["secret", "config"] {
            let filter = format!("label=imgctl.service={}", self.service);
            let names = stdout(&docker(&[kind, "ls", "-q", "--filter", &filter]));
            for id in names.split_whitespace() {
                let _ = docker(&[kind, "rm", id]);
            }
        }
    }
}

/// `docker stack rm` on drop (before the swarm handle goes), then the stack's and imgctl's
/// objects that outlived it.
struct Stack {
    name: String,
    objects: Vec<(&'static str, String)>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = docker(&["stack", "rm", &self.name]);
        let filter = format!("label=com.docker.stack.namespace={}", self.name);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let containers = stdout(&docker(&["ps", "--all", "--quiet", "--filter", &filter]));
            for id in containers.split_whitespace() {
                let _ = docker(&["rm", "--force", id]);
            }
            let networks = stdout(&docker(&["network", "ls", "--quiet", "--filter", &filter]));
            for network in networks.split_whitespace() {
                let _ = docker(&["network", "rm", network]);
            }
            for kind in ["secret", "config"] {
                for id in stdout(&docker(&[kind, "ls", "--quiet", "--filter", &filter])).split_whitespace() {
                    let _ = docker(&[kind, "rm", id]);
                }
            }
            for (kind, name) in &self.objects {
                let _ = docker(&[kind, "rm", name]);
            }
            if networks.trim().is_empty() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn a_stack_keeps_the_secrets_and_configs_stack_deploy_gave_it_when_the_stack_file_is_deployed() {
    let images = WebImages::build("secst");
    let swarm = Swarm::start();
    let stack = Stack { name: format!("imgctl-test-secst-{}", random_hex(4)), objects: Vec::new() };
    let service = format!("{}_api", stack.name);
    swarm.track(&service);
    let mut home = TestHome::new("secst");
    images.login(&mut home);
    let healthcheck = r#"    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 1s
      retries: 2
"#;
    let stack_file = format!(
        r#"version: "3.8"
services:
  api:
    image: {repo}:v1
{healthcheck}    stop_grace_period: 1s
    secrets: [{{source: token, target: api_token}}]
    configs: [{{source: conf, target: /etc/api.conf}}]
secrets:
  token: {{file: ./token.txt}}
configs:
  conf: {{file: ./api.conf}}
"#,
        repo = images.repo,
    );
    fs::write(home.dir.join("stack.yml"), stack_file).unwrap();
    fs::write(home.dir.join("token.txt"), "stack-token\n").unwrap();
    fs::write(home.dir.join("api.conf"), "answer = 42\n").unwrap();
    let deployed = images
        .docker()
        .args(["stack", "deploy", "--with-registry-auth", "--detach=true", "-c", "stack.yml", &stack.name])
        .current_dir(&home.dir)
        .output()
        .unwrap();
    assert_success(&deployed, "docker stack deploy");
    running_task_reading(&service, "/run/secrets/api_token", "stack-token\n");

    // The stack file itself, which names both: the stack's objects stay, none of imgctl's is made.
    let mut command = home.command(IMGCTL);
    command
        .args(["deploy", "api", "-f", "stack.yml", "--stack", &stack.name, "--digest", &images.v2.digest, "-o", "json"])
        .current_dir(&home.dir);
    let out = command.stdin(Stdio::null()).output().unwrap();
    assert_success(&out, "imgctl deploy of the stack's service");

    let spec = &swarm.inspect(&service)["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert!(spec["Image"].as_str().unwrap().ends_with(&images.v2.digest), "pinned: {}", spec["Image"]);
    let secrets: Vec<(&str, &str)> = spec["Secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["SecretName"].as_str().unwrap(), s["File"]["Name"].as_str().unwrap()))
        .collect();
    let stack_token = format!("{}_token", stack.name);
    assert_eq!(secrets, [(stack_token.as_str(), "api_token")], "the stack's secret, as docker stack deploy set it");
    let configs: Vec<&str> =
        spec["Configs"].as_array().unwrap().iter().map(|c| c["ConfigName"].as_str().unwrap()).collect();
    assert_eq!(configs, [format!("{}_conf", stack.name)], "the stack's config");
    let ours = stdout(&docker(&["secret", "ls", "-q", "--filter", "label=imgctl.service=api"]));
    assert_eq!(ours.trim(), "", "no secret object of imgctl's for a stack's service");
    let id = running_task_reading(&service, "/run/secrets/api_token", "stack-token\n");
    assert_eq!(exec(&id, &["cat", "/etc/api.conf"]).1, "answer = 42\n");
}

/// The id of a running task container of `service` whose `path` reads `content`.
fn running_task_reading(service: &str, path: &str, content: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let filter = format!("label=com.docker.swarm.service.name={service}");
        let ids = stdout(&docker(&["ps", "-q", "--filter", &filter]));
        if let Some(id) = ids.split_whitespace().find(|id| exec(id, &["cat", path]).1 == content) {
            return id.to_owned();
        }
        assert!(Instant::now() < deadline, "no running task of {service} reads {content:?} at {path}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
