//! compose `secrets:` and `configs:` reach the replicas, on this machine's Docker Engine and
//! on a single-node swarm, and their content never shows in what imgctl prints or keeps.
//!
//! - Engine: a file secret and a file config are bind-mounted read-only (as docker-compose
//!   1.29 mounts a file secret: `Mounts` of type bind, `RW: false`); an environment secret and an
//!   inline config are copied into the container with the owner and mode asked. `docker exec`
//!   reads each in every replica; a changed file and variable reach the next color.
//! - Swarm: secret and config objects of imgctl's own, named by content hash, attached with the
//!   target, uid and mode asked; an external secret made with `docker secret create` used by
//!   name; new content is a new object and a rolling update, the old one kept while the
//!   previous spec names it and removed once nothing does; a missing external is refused before
//!   anything changes.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use common::nginx::Nginx;
use common::swarm::Swarm;
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, contains, random_hex, run_with_stdin, stderr, stdout};

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).stdin(Stdio::null()).output().unwrap()
}

/// `docker exec ID busybox ARGS...`: (success, stdout, stderr).
fn exec(id: &str, args: &[&str]) -> (bool, String, String) {
    let out = docker(&[&["exec", id, "/bin/busybox"], args].concat());
    (out.status.success(), stdout(&out), stderr(&out))
}

/// `stat -c '%a %u %g' PATH` inside the container.
fn owner_and_mode(id: &str, path: &str) -> String {
    exec(id, &["stat", "-L", "-c", "%a %u %g", path]).1.trim().to_owned()
}

fn short_hash(content: &str) -> String {
    Sha256::digest(content.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Every file under `dir` (but `skip`) that holds `needle`.
fn files_holding(dir: &Path, skip: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.starts_with(skip) {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() && fs::read(&path).is_ok_and(|bytes| contains(&bytes, needle.as_bytes())) => {
                    found.push(path);
                }
                _ => {}
            }
        }
    }
    found
}

/// Asserts that no secret in `secrets` shows in any output of imgctl or any file under the
/// test's home (its state directory and history among them) but the secrets' own folder.
fn assert_never_shown(home: &TestHome, outputs: &[Output], secrets: &[&str]) {
    let sources = home.dir.join("secrets");
    for secret in secrets {
        for out in outputs {
            assert!(!contains(&out.stdout, secret.as_bytes()), "{secret} in imgctl's stdout: {}", stdout(out));
            assert!(!contains(&out.stderr, secret.as_bytes()), "{secret} in imgctl's stderr: {}", stderr(out));
        }
        assert_eq!(files_holding(&home.dir, &sources, secret), Vec::<PathBuf>::new(), "{secret} written to a file");
    }
}

#[test]
fn engine_replicas_read_file_environment_and_inline_secrets_and_configs_and_the_next_color_the_new_content() {
    let service = format!("sec{}", random_hex(3));
    let images = WebImages::build("sec");
    let nginx = Nginx::start(&service);
    let mut home = TestHome::new("sec");
    images.login(&mut home);
    let _cleanup = Containers(service.clone());
    let sources = home.dir.join("secrets");
    fs::create_dir_all(&sources).unwrap();
    let write = |name: &str, text: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        fs::write(sources.join(name), text).unwrap();
        fs::set_permissions(sources.join(name), fs::Permissions::from_mode(mode)).unwrap();
    };
    let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
    let banner = format!("banner-{}", random_hex(4));
    let compose = format!(
        r#"services:
  {service}:
    image: {repo}:v1
    expose: ["8080"]
    stop_signal: SIGKILL
    deploy: {{replicas: 2}}
    secrets:
      - token
      - {{source: api, target: api_token, uid: "100", gid: "101", mode: 0400}}
    configs:
      - {{source: app, target: /etc/app.conf}}
      - {{source: banner, mode: 0440}}
    x-imgctl:
      health: {{path: /health, interval: 200ms, healthy_threshold: 2, deadline: 20s}}
      keep_warm: 1s
      drain: 200ms
      proxy:
        upstream_file: {upstream}
        test: {test}
        reload: {reload}
secrets:
  token: {{file: ./secrets/token.txt}}
  api: {{environment: API_TOKEN}}
configs:
  app: {{file: ./secrets/app.conf}}
  banner: {{content: {banner}}}
"#,
        repo = images.repo,
        upstream = nginx.upstream_file.display(),
        test = json(nginx.test_command()),
        reload = json(nginx.reload_command()),
    );
    fs::write(home.dir.join("compose.yaml"), compose).unwrap();
    let run = |args: &[&str], api_token: &str| {
        let mut command = home.command(IMGCTL);
        command.args(args).env("API_TOKEN", api_token).current_dir(&home.dir).stdin(Stdio::null());
        command.output().unwrap()
    };
    let mut outputs = Vec::new();
    let mut versions = Vec::new();
    for (digest, color) in [(&images.v1.digest, "blue"), (&images.v2.digest, "green")] {
        let (token, api, app) =
            (format!("tok-{}", random_hex(6)), format!("api-{}", random_hex(6)), format!("app-{}", random_hex(6)));
        write("token.txt", &token, 0o640);
        write("app.conf", &app, 0o644);
        let config = run(&["config", &service, "-o", "json"], &api);
        assert_success(&config, "imgctl config");
        let view: Value = serde_json::from_slice(&config.stdout).unwrap();
        assert_eq!(view["secrets"][1]["from"], serde_json::json!({"environment": "API_TOKEN"}), "{view}");
        assert_eq!(view["secrets"][1]["target"], "/run/secrets/api_token");
        let deploy = run(&["deploy", &service, "--digest", digest, "-o", "json"], &api);
        assert_success(&deploy, &format!("deploy {color}"));
        outputs.extend([config, deploy]);
        versions.push((token, api, app));

        let filter = format!("label=imgctl.color={color}");
        let ids =
            stdout(&docker(&["ps", "-q", "--filter", &format!("label=imgctl.service={service}"), "--filter", &filter]));
        let ids: Vec<&str> = ids.split_whitespace().collect();
        assert_eq!(ids.len(), 2, "two running replicas of {color}");
        let (token, api, app) = versions.last().unwrap();
        for id in ids {
            assert_eq!(exec(id, &["cat", "/run/secrets/token"]).1, *token, "{color} {id}: the file secret");
            assert_eq!(exec(id, &["cat", "/run/secrets/api_token"]).1, *api, "{color} {id}: the environment secret");
            assert_eq!(exec(id, &["cat", "/etc/app.conf"]).1, *app, "{color} {id}: the file config");
            assert_eq!(exec(id, &["cat", "/banner"]).1, banner, "{color} {id}: the inline config");
            // Copied with the owner and mode asked; a bind mount keeps the host file's mode.
            assert_eq!(owner_and_mode(id, "/run/secrets/api_token"), "400 100 101");
            assert_eq!(owner_and_mode(id, "/banner"), "440 0 0");
            assert!(owner_and_mode(id, "/run/secrets/token").starts_with("640 "));
            let (wrote, _, why) = exec(id, &["sh", "-c", "echo x > /run/secrets/token"]);
            assert!(!wrote && why.contains("Read-only file system"), "{color} {id}: the mount is read-only: {why}");
            let mounts = &serde_json::from_slice::<Value>(&docker(&["inspect", id]).stdout).unwrap()[0]["Mounts"];
            let read_only_binds: Vec<(&str, &str)> = mounts
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["Type"] == "bind" && m["RW"] == false)
                .map(|m| (m["Source"].as_str().unwrap(), m["Destination"].as_str().unwrap()))
                .collect();
            let token_path = sources.join("token.txt").display().to_string();
            let app_path = sources.join("app.conf").display().to_string();
            assert!(read_only_binds.contains(&(token_path.as_str(), "/run/secrets/token")), "{mounts}");
            assert!(read_only_binds.contains(&(app_path.as_str(), "/etc/app.conf")), "{mounts}");
        }
    }
    assert_ne!(versions[0], versions[1]);
    let every: Vec<&str> = versions.iter().flat_map(|(t, a, p)| [t.as_str(), a.as_str(), p.as_str()]).collect();
    outputs.push(run(&["status", &service, "-o", "json"], "x"));
    outputs.push(run(&["history", &service, "-o", "json"], "x"));
    assert_never_shown(&home, &outputs, &every);
}

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

/// Removes the service's containers when the test ends, however it ends.
struct Containers(String);

impl Drop for Containers {
    fn drop(&mut self) {
        let ids = stdout(&docker(&["ps", "-aq", "--filter", &format!("label=imgctl.service={}", self.0)]));
        for id in ids.split_whitespace() {
            let _ = docker(&["rm", "-f", id]);
        }
    }
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
fn a_stack_keeps_the_secrets_and_configs_stack_deploy_gave_it_unless_the_compose_file_names_them() {
    let images = WebImages::build("secst");
    let swarm = Swarm::start();
    let mut stack = Stack { name: format!("imgctl-test-secst-{}", random_hex(4)), objects: Vec::new() };
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

    // imgctl's file names the secret (rotated), not the config.
    let rotated = format!("rotated-{}", random_hex(6));
    fs::create_dir_all(home.dir.join("secrets")).unwrap();
    fs::write(home.dir.join("secrets/rotated.txt"), &rotated).unwrap();
    let compose = format!(
        "services:\n  api:\n    image: {repo}:v1\n{healthcheck}    secrets: [{{source: token, target: api_token}}]\n    x-imgctl: {{stack: {stack}, swarm: {{converge_timeout: 120s}}}}\nsecrets:\n  token: {{file: ./secrets/rotated.txt}}\n",
        repo = images.repo,
        stack = stack.name,
    );
    fs::write(home.dir.join("compose.yaml"), compose).unwrap();
    let ours = format!("api-token-{}", short_hash(&rotated));
    stack.objects.push(("secret", ours.clone()));
    let mut command = home.command(IMGCTL);
    command.args(["deploy", "api", "--digest", &images.v2.digest, "-o", "json"]).current_dir(&home.dir);
    let out = command.stdin(Stdio::null()).output().unwrap();
    assert_success(&out, "imgctl deploy of the stack's service");

    let spec = &swarm.inspect(&service)["Spec"]["TaskTemplate"]["ContainerSpec"];
    let secrets: Vec<(&str, &str)> = spec["Secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["SecretName"].as_str().unwrap(), s["File"]["Name"].as_str().unwrap()))
        .collect();
    assert_eq!(secrets, [(ours.as_str(), "/run/secrets/api_token")], "the named target is imgctl's now");
    let configs: Vec<&str> =
        spec["Configs"].as_array().unwrap().iter().map(|c| c["ConfigName"].as_str().unwrap()).collect();
    assert_eq!(configs, [format!("{}_conf", stack.name)], "the config the file does not name is the stack's");
    let id = running_task_reading(&service, "/run/secrets/api_token", &rotated);
    assert_eq!(exec(&id, &["cat", "/etc/api.conf"]).1, "answer = 42\n");
    assert_never_shown(&home, &[out], &[&rotated]);
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

#[test]
fn a_file_secret_is_mounted_as_docker_compose_1_29_mounts_it() {
    let compose_bin = common::require("docker-compose", "docker-compose");
    let service = format!("secc{}", random_hex(3));
    let images = WebImages::build("secc");
    let nginx = Nginx::start(&service);
    let mut home = TestHome::new("secc");
    images.login(&mut home);
    let _cleanup = Containers(service.clone());
    fs::create_dir_all(home.dir.join("secrets")).unwrap();
    let token = format!("tok-{}", random_hex(6));
    fs::write(home.dir.join("secrets/token.txt"), &token).unwrap();
    let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
    // Both read the same file (1.29 knows no configs on a single Engine: it ignores them).
    let compose = |image: &str| {
        format!(
            r#"version: "3.8"
services:
  {service}:
    image: {image}
    expose: ["8080"]
    stop_signal: SIGKILL
    secrets: [token, {{source: token, target: /etc/token}}]
    x-imgctl:
      health: {{path: /health, interval: 200ms, healthy_threshold: 2, deadline: 20s}}
      proxy:
        upstream_file: {upstream}
        test: {test}
        reload: {reload}
secrets:
  token: {{file: {file}}}
"#,
            file = home.dir.join("secrets/token.txt").display(),
            upstream = nginx.upstream_file.display(),
            test = json(nginx.test_command()),
            reload = json(nginx.reload_command()),
        )
    };
    fs::write(home.dir.join("compose.yaml"), compose(&format!("{}:v1", images.repo))).unwrap();
    let mut command = home.command(IMGCTL);
    command.args(["deploy", &service, "--digest", &images.v1.digest]).current_dir(&home.dir).stdin(Stdio::null());
    assert_success(&command.output().unwrap(), "imgctl deploy");

    let local = format!("imgctl-test-{service}:v1");
    assert_success(&docker(&["tag", &images.v1.image, &local]), "docker tag");
    let reference = home.dir.join("compose-1.29");
    fs::create_dir_all(&reference).unwrap();
    fs::write(reference.join("docker-compose.yml"), compose(&local)).unwrap();
    let project = format!("imgctltest{service}");
    let run_compose = |args: &[&str]| {
        Command::new(&compose_bin)
            .args(["-p", &project])
            .args(args)
            .current_dir(&reference)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let up = run_compose(&["up", "-d", "--no-build"]);
    let mounts = |filter: &str| -> Vec<Value> {
        let ids = stdout(&docker(&["ps", "-q", "--filter", filter]));
        let id = ids.split_whitespace().next().map(str::to_owned);
        let info = id.map(|id| serde_json::from_slice::<Value>(&docker(&["inspect", &id]).stdout).unwrap());
        let mut mounts: Vec<Value> =
            info.map(|i| i[0]["Mounts"].as_array().cloned().unwrap_or_default()).unwrap_or_default();
        mounts.sort_by_key(|m| m["Destination"].as_str().unwrap_or_default().to_owned());
        mounts
    };
    let theirs = mounts(&format!("label=com.docker.compose.project={project}"));
    let ours = mounts(&format!("label=imgctl.service={service}"));
    let _ = run_compose(&["down", "--timeout", "0"]);
    let _ = docker(&["rmi", &local]);
    assert_success(&up, "docker-compose up");
    assert_eq!(ours, theirs, "imgctl vs docker-compose 1.29");
    // Not vacuous: both bound the file read-only at both targets.
    let destinations: Vec<(&str, bool)> =
        ours.iter().map(|m| (m["Destination"].as_str().unwrap_or_default(), m["RW"] == true)).collect();
    assert_eq!(destinations, [("/etc/token", false), ("/run/secrets/token", false)]);
}
