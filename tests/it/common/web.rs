//! The images deploy tests roll out: Debian's static busybox running `httpd` on port 8080,
//! serving `/` (the version, e.g. `v1\n`), `/health` (`ok\n`) and `/cgi-bin/stream?N` (a
//! streaming response: a line a second for N seconds, then `end`), pushed to a real
//! `docker-registry` with htpasswd auth on loopback and then removed from the engine, so a
//! deploy has to pull them by digest through the credential helper.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::registry::Registry;
use super::{TestHome, assert_success, random_hex, require, run_with_stdin, stdout};

/// One image in the registry, pinned by digest.
pub struct Pushed {
    /// What `/` answers, trimmed: `v1`, `v2`, `v3` or `bad`.
    pub version: String,
    /// `sha256:…`, the manifest digest the registry reported on push.
    pub digest: String,
    /// `127.0.0.1:PORT/web@sha256:…`
    pub image: String,
}

/// A registry holding `web` in four versions: three healthy ones and `bad`, whose `/health`
/// answers 404.
pub struct WebImages {
    pub registry: Registry,
    /// `127.0.0.1:PORT/web`
    pub repo: String,
    pub user: String,
    pub password: String,
    pub v1: Pushed,
    pub v2: Pushed,
    pub v3: Pushed,
    pub bad: Pushed,
    /// What this leaves in the engine and on disk, cleaned up on drop.
    local: LocalState,
}

/// A throwaway docker config logged in to the registry (docker writes the password there
/// base64-encoded), so the user's own config is never touched, and every image of `repo` in
/// the engine. A guard of its own so a build that panics half-way cleans up too.
struct LocalState {
    repo: String,
    docker_config: PathBuf,
}

impl WebImages {
    /// Starts the registry and builds and pushes v1, v2, v3 and bad.
    pub fn build(name: &str) -> Self {
        require("docker", "docker.io");
        let user = "deployer".to_owned();
        let password = format!("web-pw-{}", random_hex(12));
        let registry = Registry::start_htpasswd(&user, &password);
        let repo = format!("{}/web", registry.addr);
        let local_config =
            std::env::temp_dir().join(format!("imgctl-web-{name}-{}-{}", std::process::id(), random_hex(4)));
        fs::create_dir_all(&local_config).unwrap();
        let local = LocalState { repo: repo.clone(), docker_config: local_config };
        restrict(&local.docker_config);

        let docker = |args: &[&str], input: &[u8]| run_with_stdin(local.docker().args(args), input);
        let login = docker(&["login", &registry.addr, "--username", &user, "--password-stdin"], password.as_bytes());
        assert_success(&login, "docker login to the web registry");

        let push = |version: &str, healthy: bool| {
            let tag = format!("{repo}:{version}");
            import(&tag, version, healthy);
            let out = docker(&["push", &tag], b"");
            assert_success(&out, &format!("docker push {tag}"));
            let digest = pushed_digest(&stdout(&out)).unwrap_or_else(|| {
                // Older CLIs word the push summary differently; the engine knows it too.
                let inspect = docker(&["image", "inspect", "--format", "{{index .RepoDigests 0}}", &tag], b"");
                assert_success(&inspect, "docker image inspect");
                let repo_digest = stdout(&inspect).trim().to_owned();
                repo_digest.rsplit_once('@').expect("a repo digest").1.to_owned()
            });
            assert!(is_sha256(&digest), "docker push reported {digest:?}");
            // Removing the only tag also drops the repo@digest reference docker recorded on
            // push, and with it the image: a deploy has to pull.
            assert_success(&docker(&["rmi", &tag], b""), "docker rmi");
            let image = format!("{repo}@{digest}");
            let gone = docker(&["image", "inspect", &image], b"");
            assert!(!gone.status.success(), "{image} is still in the engine after docker rmi");
            Pushed { version: version.to_owned(), digest, image }
        };
        let v1 = push("v1", true);
        let v2 = push("v2", true);
        let v3 = push("v3", true);
        let bad = push("bad", false);
        Self { registry, repo, user, password, v1, v2, v3, bad, local }
    }

    /// `docker` with the throwaway config that is logged in to the registry.
    pub fn docker(&self) -> Command {
        self.local.docker()
    }

    /// Puts the registry credential into `home`'s imgctl store (through the helper) and points
    /// its docker config at the helper, as an operator's host would be set up. The password
    /// becomes one of the home's secrets, so its plaintext scan covers it.
    pub fn login(&self, home: &mut TestHome) {
        home.remember(&self.password);
        home.store(&self.registry.addr, &self.user, &self.password);
        let path = home.docker_config_dir().join("config.json");
        let mut config: serde_json::Value = fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        config["credsStore"] = "imgctl".into();
        fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    }

    /// Every version, in order v1, v2, v3, bad.
    pub fn all(&self) -> [&Pushed; 4] {
        [&self.v1, &self.v2, &self.v3, &self.bad]
    }

    /// Removes every image of `repo` from the engine (what a drop does), so the next deploy
    /// pulls again, as the first one did.
    pub fn remove_local_images(&self) {
        self.local.remove_images();
    }
}

impl LocalState {
    /// `docker` with this DOCKER_CONFIG, credentials kept in its config.json.
    fn docker(&self) -> Command {
        let mut command = Command::new(require("docker", "docker.io"));
        // With no credsStore in config.json the CLI picks `pass` when `pass` is on PATH (it is:
        // tests/setup.sh installs it for the migration tests) and fails on an uninitialized
        // store. A PATH without it leaves the plain file store of this throwaway config.
        command.env("DOCKER_CONFIG", &self.docker_config).env("PATH", &self.docker_config);
        command
    }
}

impl LocalState {
    /// Whatever a build or a deploy left: tagged or by digest only. By reference, never by
    /// image ID, so an image another test holds under another name stays.
    fn remove_images(&self) {
        let listed = self
            .docker()
            .args(["images", "--digests", "--filter"])
            .arg(format!("reference={}", self.repo))
            .args(["--format", "{{.Repository}} {{.Tag}} {{.Digest}}"])
            .output();
        let mut references: Vec<String> = Vec::new();
        if let Ok(out) = listed {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let mut fields = line.split_whitespace();
                let (Some(repo), Some(tag), Some(digest)) = (fields.next(), fields.next(), fields.next()) else {
                    continue;
                };
                if tag != "<none>" {
                    references.push(format!("{repo}:{tag}"));
                }
                if digest != "<none>" {
                    references.push(format!("{repo}@{digest}"));
                }
            }
        }
        if !references.is_empty() {
            let _ = self.docker().args(["rmi", "-f"]).args(&references).output();
        }
    }
}

impl Drop for LocalState {
    fn drop(&mut self) {
        self.remove_images();
        let _ = fs::remove_dir_all(&self.docker_config);
    }
}

/// `docker import`s a rootfs of /bin/busybox and /www into `tag`.
fn import(tag: &str, version: &str, healthy: bool) {
    let busybox = require("busybox", "busybox-static");
    let root = std::env::temp_dir().join(format!("imgctl-web-rootfs-{}", random_hex(4)));
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("www")).unwrap();
    fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    fs::write(root.join("www/index.html"), format!("{version}\n")).unwrap();
    if healthy {
        fs::write(root.join("www/health"), "ok\n").unwrap();
    }
    // `#!/bin/busybox sh`: the image keeps no /bin/sh (CMD-SHELL healthchecks stay unusable).
    fs::create_dir_all(root.join("www/cgi-bin")).unwrap();
    let stream = root.join("www/cgi-bin/stream");
    fs::write(&stream, STREAM_CGI).unwrap();
    fs::set_permissions(&stream, <fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755)).unwrap();
    let tar = Command::new("tar").arg("-C").arg(&root).args(["-cf", "-", "."]).output().unwrap();
    fs::remove_dir_all(&root).unwrap();
    assert_success(&tar, "tar");
    let out = run_with_stdin(
        Command::new("docker").args([
            "import",
            "--change",
            r#"CMD ["/bin/busybox","httpd","-f","-v","-p","8080","-h","/www"]"#,
            "--change",
            "EXPOSE 8080",
            "-",
            tag,
        ]),
        &tar.stdout,
    );
    assert_success(&out, &format!("docker import {tag}"));
}

/// `/cgi-bin/stream?N`: N lines `part I`, one a second, then `end` (busybox httpd passes the
/// CGI's output on as it comes).
const STREAM_CGI: &str = r#"#!/bin/busybox sh
n=${QUERY_STRING:-3}
case $n in ''|*[!0-9]*) n=3 ;; esac
printf 'Content-Type: text/plain\r\nX-Accel-Buffering: no\r\n\r\n'
i=1
while [ "$i" -le "$n" ]; do
  echo "part $i"
  /bin/busybox sleep 1
  i=$((i + 1))
done
echo end
"#;

/// The digest in docker push's summary line: `v1: digest: sha256:… size: 527`.
fn pushed_digest(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let rest = &line[line.find("digest: ")? + "digest: ".len()..];
        Some(rest.split_whitespace().next()?.to_owned())
    })
}

fn is_sha256(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
}

fn restrict(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
}
