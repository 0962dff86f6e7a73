//! Stable replica addresses, the proxy on the host: with `x-imgctl.host_ports` each replica
//! publishes its port on a host port of that range, which docker keeps across restarts, so a
//! `docker restart` leaves nginx pointing at the right address (no `--repair`, `imgctl
//! status` not stale). A port another process holds is skipped; a range too small for both
//! colors is refused by name.

use crate::common;

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::load::{self, Load, Mode};
use common::nginx::Nginx;
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, random_hex, stdout};

struct Service {
    name: String,
    nginx: Nginx,
    dir: PathBuf,
}

impl Service {
    fn new(home: &TestHome) -> Self {
        let name = format!("sta{}", random_hex(3));
        let nginx = Nginx::start(&name);
        let dir = home.dir.join(&name);
        fs::create_dir_all(&dir).unwrap();
        Self { name, nginx, dir }
    }

    fn compose(&self, images: &WebImages, host_ports: &str) {
        let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
        let text = format!(
            r#"services:
  {name}:
    image: {repo}:v1
    expose: ["8080"]
    stop_signal: SIGKILL
    deploy:
      replicas: 2
    x-imgctl:
      health: {{path: /health, interval: 200ms, healthy_threshold: 1, deadline: 20s}}
      keep_warm: 0s
      drain: 2s
      host_ports: {host_ports}
      proxy: {{upstream_file: {file}, test: {test}, reload: {reload}}}
"#,
            name = self.name,
            repo = images.repo,
            file = self.nginx.upstream_file.display(),
            test = json(self.nginx.test_command()),
            reload = json(self.nginx.reload_command()),
        );
        fs::write(self.dir.join("compose.yaml"), text).unwrap();
    }

    fn imgctl(&self, home: &TestHome, args: &[&str]) -> Output {
        home.command(IMGCTL).args(args).current_dir(&self.dir).stdin(Stdio::null()).output().unwrap()
    }

    fn status(&self, home: &TestHome) -> serde_json::Value {
        let out = self.imgctl(home, &["status", &self.name, "-o", "json"]);
        assert_success(&out, "imgctl status");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn wait_serving(&self, version: &str) {
        let since = Instant::now();
        while load::get(self.nginx.addr(), "/").map(|r| r.text()).ok().as_deref() != Some(version) {
            assert!(since.elapsed() < Duration::from_secs(10), "nginx does not serve {version}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=imgctl.service={}", self.name)])
            .output()
            .map(|o| stdout(&o))
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
    }
}

/// The host port a running replica publishes now.
fn published_port(container: &str) -> Option<u16> {
    let out = Command::new("docker").args(["port", container, "8080/tcp"]).output().ok()?;
    stdout(&out).lines().next()?.trim().rsplit_once(':')?.1.parse().ok()
}

/// A first port for a range of `len` ports that are free now, below Linux's ephemeral ports
/// (so the engine's own picks never land in it).
fn free_range(len: u16) -> u16 {
    for _ in 0..50 {
        let n = u32::from_str_radix(&random_hex(2), 16).unwrap() % 300;
        let first = 20_000 + (n * 40) as u16;
        if (first..first + len).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return first;
        }
    }
    panic!("no free range of {len} ports below 32768");
}

#[test]
fn a_restarted_replica_keeps_its_host_port_and_traffic_needs_no_repair() {
    let images = WebImages::build("stable");
    let mut home = TestHome::new("stable");
    images.login(&mut home);
    let service = Service::new(&home);

    // Too small for both colors of 2 replicas: refused by name, before anything runs.
    let first = free_range(5);
    service.compose(&images, &format!("{first}-{}", first + 2));
    let out = service.imgctl(&home, &["deploy", &service.name, "--digest", &images.v1.digest]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&format!("host_ports {first}-{} holds 3 port(s)", first + 2)), "{text}");

    service.compose(&images, &format!("{first}-{}", first + 4));
    assert_success(&service.imgctl(&home, &["deploy", &service.name, "--digest", &images.v1.digest]), "deploy v1");
    service.wait_serving("v1");
    let blue: Vec<u16> = (1..=2).map(|i| published_port(&format!("{}-blue-{i}", service.name)).unwrap()).collect();
    assert_eq!(blue, [first, first + 1], "blue takes the first free ports of the range");

    // docker restart under load: the same port again, nginx keeps reaching it.
    let name = format!("{}-blue-1", service.name);
    let load = Load::start(service.nginx.addr(), "/", Mode::Close, 2);
    assert!(Command::new("docker").args(["restart", "-t", "0", &name]).status().unwrap().success());
    assert_eq!(published_port(&name), Some(first), "docker kept the explicit host port");
    std::thread::sleep(Duration::from_millis(1500));
    let tally = load.stop();
    let status = service.status(&home);
    let stale: Vec<bool> = status["replicas"].as_array().unwrap().iter().map(|r| r["stale"] == true).collect();
    assert_eq!(stale, [false, false], "{status}");
    // The restart itself is not free (its requests in that instant fail over to blue-2 or
    // fail), but afterwards every request is served without --repair.
    let after = Load::start(service.nginx.addr(), "/", Mode::Close, 2);
    std::thread::sleep(Duration::from_millis(1000));
    let after = after.stop();
    assert!(after.ok > 20 && after.failed() == 0, "after the restart: {after:?} (during: {tally:?})");
    assert_eq!(after.by_body.keys().collect::<Vec<_>>(), ["v1"]);

    // A port of the range held by another process is skipped: green takes the two others.
    let held = TcpListener::bind(("127.0.0.1", first + 2)).expect("the third port is free");
    assert_success(&service.imgctl(&home, &["deploy", &service.name, "--digest", &images.v2.digest]), "deploy v2");
    service.wait_serving("v2");
    let green: Vec<u16> = (1..=2).map(|i| published_port(&format!("{}-green-{i}", service.name)).unwrap()).collect();
    assert_eq!(green, [first + 3, first + 4], "green skips blue's ports (kept while stopped) and the held one");
    drop(held);
}
