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
    dir: PathBuf,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Registry {
    /// Starts a registry that accepts `user` with `password` (bcrypt htpasswd).
    pub fn start_htpasswd(user: &str, password: &str) -> Self {
        let registry = require("docker-registry", "docker-registry");
        let htpasswd = require("htpasswd", "apache2-utils");
        let dir = std::env::temp_dir().join(format!("imgctl-registry-{}-{}", std::process::id(), random_hex(4)));
        fs::create_dir_all(dir.join("data")).unwrap();
        // -i: the password comes on stdin, never in argv.
        let out = run_with_stdin(
            Command::new(htpasswd).args(["-iBc"]).arg(dir.join("htpasswd")).arg(user),
            password.as_bytes(),
        );
        assert!(out.status.success(), "htpasswd: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: imgctl-test\n    path: {htpasswd}\n",
            data = dir.join("data").display(),
            htpasswd = dir.join("htpasswd").display(),
        );
        fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new(registry)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .expect("starting docker-registry");
        let registry = Self { child, dir, addr };
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

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A port free on loopback right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
