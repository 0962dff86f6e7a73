//! compose `secrets:` and `configs:` reach the replicas, on this machine's Docker Engine and
//! on a single-node swarm, and their content never shows in what imgctl prints or keeps.
//!
//! - Engine: a file secret and a file config are bind-mounted read-only (as docker-compose
//!   1.29 mounts a file secret: `Mounts` of type bind, `RW: false`); an environment secret and an
//!   inline config are copied into the container with the owner and mode asked. `docker exec`
//!   reads each in every replica; a changed file and variable reach the next color.
//! - Swarm (`swarm`): objects of imgctl's own by content hash, externals by name, a stack's
//!   references kept unless the compose file names their target.

use crate::common;
use crate::common::compose_twin::ComposeTwin;

mod swarm;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use common::nginx::Nginx;
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, contains, random_hex, stderr, stdout};

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
            let inspected = docker(&["inspect", id]).stdout;
            assert!(!contains(&inspected, api.as_bytes()), "{color} {id}: the copied secret is not in docker inspect");
            let mounts = &serde_json::from_slice::<Value>(&inspected).unwrap()[0]["Mounts"];
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
fn a_file_secret_is_mounted_as_docker_compose_1_29_mounts_it() {
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

    let (twin, up) = ComposeTwin::up(&home.dir, &service, &images.v1.image, compose);
    let project = twin.project();
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
    drop(twin);
    assert_success(&up, "docker-compose up");
    assert_eq!(ours, theirs, "imgctl vs docker-compose 1.29");
    // Not vacuous: both bound the file read-only at both targets.
    let destinations: Vec<(&str, bool)> =
        ours.iter().map(|m| (m["Destination"].as_str().unwrap_or_default(), m["RW"] == true)).collect();
    assert_eq!(destinations, [("/etc/token", false), ("/run/secrets/token", false)]);
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
