//! Stable replica addresses, the proxy on the host: with `x-imgctl.host_ports` each replica
//! publishes its port on a host port of that range, which docker keeps across restarts, so a
//! `docker restart` leaves nginx pointing at the right address (no `--repair`, `imgctl
//! status` not stale). A port another process holds is skipped; a range too small for both
//! colors is refused by name. And the proxy in a container on a user-defined network (the
//! compose layout): replicas join that network and the upstream names their IP there.

use crate::common;

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::load::{self, Load, Mode};
use common::nginx::Nginx;
use common::nginx_container::{NginxContainer, ProxyImage, Resolution};
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, random_hex, stdout};

/// A service and where its proxy is reached; its containers are removed when it is dropped.
struct Service {
    name: String,
    dir: PathBuf,
    proxy: SocketAddr,
}

fn json(v: Vec<String>) -> String {
    serde_json::to_string(&v).unwrap()
}

impl Service {
    fn new(home: &TestHome, name: String, proxy: SocketAddr) -> Self {
        let dir = home.dir.join(&name);
        fs::create_dir_all(&dir).unwrap();
        Self { name, dir, proxy }
    }

    /// compose.yaml with `keys` in its x-imgctl block.
    fn compose(&self, images: &WebImages, keys: &str) {
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
{keys}
"#,
            name = self.name,
            repo = images.repo,
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
        while load::get(self.proxy, "/").map(|r| r.text()).ok().as_deref() != Some(version) {
            assert!(since.elapsed() < Duration::from_secs(10), "nginx does not serve {version}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        common::remove_service_containers(&self.name);
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
    let name = format!("sta{}", random_hex(3));
    let nginx = Nginx::start(&name);
    let service = Service::new(&home, name, nginx.addr());
    let proxy = format!(
        "      proxy: {{upstream_file: {}, test: {}, reload: {}}}",
        nginx.upstream_file.display(),
        json(nginx.test_command()),
        json(nginx.reload_command())
    );
    let keys = |first: u16, last: u16| format!("      host_ports: {first}-{last}\n{proxy}");

    // Too small for both colors of 2 replicas: refused by name, before anything runs.
    let first = free_range(5);
    service.compose(&images, &keys(first, first + 2));
    let out = service.imgctl(&home, &["deploy", &service.name, "--digest", &images.v1.digest]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&format!("host_ports {first}-{} holds 3 port(s)", first + 2)), "{text}");

    service.compose(&images, &keys(first, first + 4));
    assert_success(&service.imgctl(&home, &["deploy", &service.name, "--digest", &images.v1.digest]), "deploy v1");
    service.wait_serving("v1");
    let blue: Vec<u16> = (1..=2).map(|i| published_port(&format!("{}-blue-{i}", service.name)).unwrap()).collect();
    assert_eq!(blue, [first, first + 1], "blue takes the first free ports of the range");

    // docker restart under load: the same port again, nginx keeps reaching it.
    let name = format!("{}-blue-1", service.name);
    let load = Load::start(service.proxy, "/", Mode::Close, 2);
    assert_success(&Command::new("docker").args(["restart", "-t", "0", &name]).output().unwrap(), "docker restart");
    assert_eq!(published_port(&name), Some(first), "docker kept the explicit host port");
    std::thread::sleep(Duration::from_millis(1500));
    let tally = load.stop();
    let status = service.status(&home);
    let stale: Vec<bool> = status["replicas"].as_array().unwrap().iter().map(|r| r["stale"] == true).collect();
    assert_eq!(stale, [false, false], "{status}");
    // The restart itself is not free (its requests in that instant fail over to blue-2 or
    // fail), but afterwards every request is served without --repair.
    let after = Load::start(service.proxy, "/", Mode::Close, 2);
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

/// A user-defined bridge network, removed on drop (declare it before what joins it).
struct Network(String);

impl Network {
    fn create() -> Self {
        let name = format!("imgctl-test-net-{}-{}", std::process::id(), random_hex(4));
        assert_success(&Command::new("docker").args(["network", "create", &name]).output().unwrap(), "network create");
        Self(name)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["network", "rm", &self.0]).output();
    }
}

/// `container`'s IP address on `network`.
fn ip_on(container: &str, network: &str) -> String {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    let out = Command::new("docker").args(["inspect", "-f", &format, container]).output().unwrap();
    assert_success(&out, "docker inspect");
    stdout(&out).trim().to_owned()
}

#[test]
fn behind_nginx_in_a_container_replicas_join_its_network_and_are_reached_at_their_ip_there() {
    let network = Network::create();
    let images = WebImages::build("netproxy");
    let image = ProxyImage::build();
    let mut home = TestHome::new("netproxy");
    images.login(&mut home);
    let name = format!("stn{}", random_hex(3));
    let nginx = NginxContainer::start_on(&network.0, &image, &name, Resolution::AtReload);
    let service = Service::new(&home, name.clone(), nginx.addr());
    let keys = format!(
        "      proxy: {{network: {}, upstream_file: {}, test: {}, reload: {}}}",
        network.0,
        nginx.upstream_file().display(),
        json(nginx.test_command()),
        json(nginx.reload_command())
    );
    service.compose(&images, &keys);

    for (version, pushed, color) in [("v1", &images.v1, "blue"), ("v2", &images.v2, "green")] {
        let out = service.imgctl(&home, &["deploy", &name, "--digest", &pushed.digest]);
        assert_success(&out, &format!("deploy {version}"));
        service.wait_serving(version);
        // The upstream names each replica by its address on the proxy's network.
        let upstream = fs::read_to_string(nginx.upstream_file()).unwrap();
        for i in 1..=2 {
            let ip = ip_on(&format!("{name}-{color}-{i}"), &network.0);
            assert!(!ip.is_empty(), "{name}-{color}-{i} did not join {}", network.0);
            assert!(upstream.contains(&format!("server {ip}:8080")), "{ip} not in {upstream}");
        }
    }
    let status = service.status(&home);
    let stale: Vec<bool> = status["replicas"].as_array().unwrap().iter().map(|r| r["stale"] == true).collect();
    assert!(stale.iter().all(|s| !s), "{status}");
    drop(service);
    drop(nginx);
}
