//! A real `docker-registry` (CNCF distribution, Debian package) on a loopback port, with
//! htpasswd auth, started and stopped by the test.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{random_hex, require, run_with_stdin};

pub struct Registry {
    child: Child,
    token_server: Option<Child>,
    dir: PathBuf,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

/// The token server's log: one JSON line per token request.
pub fn token_requests(registry: &Registry) -> Vec<serde_json::Value> {
    fs::read_to_string(registry.dir.join("tokens.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

impl Registry {
    /// Starts a registry that accepts `user` with `password` (bcrypt htpasswd).
    pub fn start_htpasswd(user: &str, password: &str) -> Self {
        let htpasswd = require("htpasswd", "apache2-utils");
        let dir = new_dir();
        // -i: the password comes on stdin, never in argv.
        let out = run_with_stdin(
            Command::new(htpasswd).args(["-iBc"]).arg(dir.join("htpasswd")).arg(user),
            password.as_bytes(),
        );
        assert!(out.status.success(), "htpasswd: {}", String::from_utf8_lossy(&out.stderr));
        let auth = format!("  htpasswd:\n    realm: imgctl-test\n    path: {}\n", dir.join("htpasswd").display());
        Self::start(dir, &auth, None)
    }

    /// Starts a registry with token auth behind tests/peers/token_server.py, which plays
    /// Harbor: `user` (a robot account) gets what it asks for, anonymous requests get pull on
    /// `public/*`.
    pub fn start_token(user: &str, password: &str) -> Self {
        require("python3", "python3");
        let dir = new_dir();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/token_server.py");
        let mut token_server = Command::new("/usr/bin/python3")
            .arg(script)
            .arg("--port-file")
            .arg(dir.join("token.port"))
            .arg("--cert")
            .arg(dir.join("token.pem"))
            .arg("--log")
            .arg(dir.join("tokens.jsonl"))
            .args(["--issuer", "imgctl-test-issuer", "--service", "harbor-registry", "--user", user])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("token.log")).unwrap())
            .spawn()
            .expect("starting the token server (python3-cryptography)");
        token_server.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let port = loop {
            if let Ok(port) = fs::read_to_string(dir.join("token.port")) {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "the token server did not start: {}",
                fs::read_to_string(dir.join("token.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let auth = format!(
            "  token:\n    realm: http://127.0.0.1:{port}/service/token\n    service: harbor-registry\n    issuer: imgctl-test-issuer\n    rootcertbundle: {}\n",
            dir.join("token.pem").display()
        );
        Self::start(dir, &auth, Some(token_server))
    }

    fn start(dir: PathBuf, auth: &str, token_server: Option<Child>) -> Self {
        let registry = require("docker-registry", "docker-registry");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\nauth:\n{auth}",
            data = dir.join("data").display(),
        );
        fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new(registry)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .expect("starting docker-registry");
        let registry = Self { child, token_server, dir, addr };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(&self.addr) {
                let _ = stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.0 401") || answer.starts_with("HTTP/1.1 401") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not answer on {} within 15 s; its log:\n{log}", self.addr);
    }
}

impl Registry {
    /// The registry's storage (distribution's filesystem driver): `blobs/` and `repositories/`,
    /// for tests that look at what was written or make it serve other bytes than a digest names.
    pub fn storage(&self) -> PathBuf {
        self.dir.join("data/docker/registry/v2")
    }

    /// The file holding the bytes of blob `digest` (`sha256:...`).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.storage().join("blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(token_server) = &mut self.token_server {
            let _ = token_server.kill();
            let _ = token_server.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn new_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imgctl-registry-{}-{}", std::process::id(), random_hex(4)));
    fs::create_dir_all(dir.join("data")).unwrap();
    dir
}

/// A port free on loopback right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
