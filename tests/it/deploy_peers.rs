//! The harness's own check of the peers deploy tests run against: the busybox web images in a
//! real registry, a real nginx switched by its upstream file, and the load generator that
//! counts every request, including the ones that fail.
#![allow(clippy::print_stderr)] // the tallies, for whoever reads the test log

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufReader, Cursor};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::load::{self, Load, Mode, Response};
use common::nginx::Nginx;
use common::registry::free_port;
use common::web::{Pushed, WebImages};
use common::{TestHome, assert_success, random_hex, run_with_stdin, stdout};

/// Containers the test started, removed however it ends.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f"]).args(&self.0).output();
        }
    }
}

impl Containers {
    /// `docker run -d` of `pushed` (pulled from the registry), published on a loopback port;
    /// returns the address its httpd answers on.
    fn run(&mut self, web: &WebImages, pushed: &Pushed) -> SocketAddr {
        let name = format!("imgctl-peers-{}-{}", pushed.version, random_hex(4));
        self.0.push(name.clone());
        let out = web
            .docker()
            .args(["run", "-d", "--rm", "-p", "127.0.0.1::8080", "--name", &name, &pushed.image])
            .output()
            .unwrap();
        assert_success(&out, &format!("docker run {}", pushed.image));
        let out = web.docker().args(["port", &name, "8080/tcp"]).output().unwrap();
        assert_success(&out, "docker port");
        let addr: SocketAddr =
            stdout(&out).lines().next().unwrap_or_default().trim().parse().expect("docker port prints ADDR:PORT");
        assert!(addr.ip().is_loopback(), "published on {addr}, not loopback only");
        wait_for(addr, "/", |r| r.status == 200);
        addr
    }
}

/// Polls `GET path` on `addr` until `done` accepts an answer; panics after 15 s.
fn wait_for(addr: SocketAddr, path: &str, done: impl Fn(&Response) -> bool) -> Response {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = load::get(addr, path);
        match answer {
            Ok(response) if done(&response) => return response,
            _ if Instant::now() > deadline => panic!("{addr}{path} never answered as expected; last: {answer:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn run_argv(argv: &[String]) -> std::process::Output {
    Command::new(&argv[0]).args(&argv[1..]).output().unwrap()
}

#[test]
fn web_images_serve_their_version_through_nginx_under_load() {
    let web = WebImages::build("peers");
    let digests: std::collections::BTreeSet<&str> = web.all().iter().map(|p| p.digest.as_str()).collect();
    assert_eq!(digests.len(), 4, "four distinct digests");
    for pushed in web.all() {
        assert_eq!(pushed.image, format!("{}@{}", web.repo, pushed.digest));
    }

    // The registry wants credentials: without them the engine cannot pull.
    let empty_config = std::env::temp_dir().join(format!("imgctl-peers-anon-{}", random_hex(4)));
    fs::create_dir_all(&empty_config).unwrap();
    let anonymous =
        Command::new("docker").env("DOCKER_CONFIG", &empty_config).args(["pull", &web.v2.image]).output().unwrap();
    fs::remove_dir_all(&empty_config).unwrap();
    assert!(!anonymous.status.success(), "an anonymous pull of {} succeeded", web.v2.image);

    let mut containers = Containers(Vec::new());
    let v1 = containers.run(&web, &web.v1);
    let bad = containers.run(&web, &web.bad);
    // The engine holds exactly the pushed manifest.
    let inspect =
        web.docker().args(["image", "inspect", "--format", "{{json .RepoDigests}}", &web.v1.image]).output().unwrap();
    assert_success(&inspect, "docker image inspect");
    let repo_digests: Vec<String> = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(repo_digests, vec![web.v1.image.clone()]);

    let health = load::get(v1, "/health").unwrap();
    assert_eq!((health.status, health.text().as_str()), (200, "ok"));
    assert_eq!(load::get(v1, "/").unwrap().body, b"v1\n");
    let bad_health = load::get(bad, "/health").unwrap();
    assert_eq!(bad_health.status, 404, "the bad image has no /health: {bad_health:?}");
    assert_eq!(load::get(bad, "/").unwrap().body, b"bad\n");

    let nginx = Nginx::start("web");
    // The placeholder upstream has nothing behind it.
    let placeholder = load::get(nginx.addr(), "/").unwrap();
    assert_eq!(placeholder.status, 502, "before the switch: {placeholder:?}");

    fs::write(&nginx.upstream_file, format!("upstream web {{ server 127.0.0.1:{}; }}\n", v1.port())).unwrap();
    assert_success(&run_argv(&nginx.test_command()), "nginx -t");
    assert_eq!(nginx.reloads(), 0);
    assert_success(&run_argv(&nginx.reload_command()), "nginx -s reload");
    // A reload is asynchronous: the master forks new workers after the command returns.
    nginx.wait_reloaded(1);
    assert_eq!(load::get(nginx.addr(), "/").unwrap().text(), "v1");
    assert_eq!(nginx.url("/health"), format!("http://127.0.0.1:{}/health", nginx.port));
    let through = load::get(nginx.addr(), "/health").unwrap();
    assert_eq!((through.status, through.text().as_str()), (200, "ok"));

    for mode in [Mode::Close, Mode::KeepAlive] {
        let load = Load::start(nginx.addr(), "/", mode, 4);
        std::thread::sleep(Duration::from_secs(2));
        let tally = load.stop();
        eprintln!("{mode:?} load through nginx for 2 s: {tally:?}");
        assert!(tally.ok > 50, "{mode:?}: only {} answers in 2 s: {tally:?}", tally.ok);
        assert_eq!(tally.failed(), 0, "{mode:?}: {tally:?}\n{}", nginx.logs());
        assert_eq!(tally.by_body, BTreeMap::from([("v1".to_owned(), tally.ok)]), "{mode:?}");
    }

    // Switching back and forth between v1 and v2 under load: reloads drop no request, and in
    // KeepAlive mode they really close connections (nginx retires the old workers' idle ones).
    let v2 = containers.run(&web, &web.v2);
    for mode in [Mode::Close, Mode::KeepAlive] {
        let load = Load::start(nginx.addr(), "/", mode, 4);
        for i in 0..10 {
            std::thread::sleep(Duration::from_millis(150));
            let port = if i % 2 == 0 { v2.port() } else { v1.port() };
            fs::write(&nginx.upstream_file, format!("upstream web {{ server 127.0.0.1:{port}; }}\n")).unwrap();
            assert_success(&run_argv(&nginx.reload_command()), "nginx -s reload");
        }
        std::thread::sleep(Duration::from_millis(300));
        let tally = load.stop();
        eprintln!("{mode:?} load across 10 reloads between v1 and v2: {tally:?}");
        assert_eq!(tally.failed(), 0, "{mode:?}: {tally:?}\n{}", nginx.logs());
        assert_eq!(tally.by_body.keys().collect::<Vec<_>>(), ["v1", "v2"], "{mode:?}: {tally:?}");
        if mode == Mode::KeepAlive {
            assert!(tally.reconnects >= 4, "reloads closed no keep-alive connection: {tally:?}");
        }
    }

    // A bad upstream is refused by `nginx -t` (what a deployer checks before it reloads).
    fs::write(&nginx.upstream_file, "upstream web { server 127.0.0.1:notaport; }\n").unwrap();
    let refused = run_argv(&nginx.test_command());
    assert!(!refused.status.success(), "nginx -t accepted a broken upstream file");

    // Switching to the bad container: / still answers (its version), /health is a 404.
    fs::write(&nginx.upstream_file, format!("upstream web {{ server 127.0.0.1:{}; }}\n", bad.port())).unwrap();
    assert_success(&run_argv(&nginx.test_command()), "nginx -t");
    let before = nginx.reloads();
    assert_success(&run_argv(&nginx.reload_command()), "nginx -s reload");
    nginx.wait_reloaded(before + 1);
    assert_eq!(load::get(nginx.addr(), "/").unwrap().text(), "bad");
    assert_eq!(load::get(nginx.addr(), "/health").unwrap().status, 404);
    let load = Load::start(nginx.addr(), "/health", Mode::Close, 2);
    std::thread::sleep(Duration::from_millis(500));
    let tally = load.stop();
    eprintln!("Close load of /health on the bad image: {tally:?}");
    assert!(tally.non_2xx > 0 && tally.ok == 0, "{tally:?}");
    assert!(tally.errors[0].ends_with("404 Not Found"), "{:?}", tally.errors);
}

#[test]
fn web_images_pull_through_the_imgctl_helper_after_login() {
    let web = WebImages::build("peers-login");
    let mut home = TestHome::new("peers-login");
    web.login(&mut home);
    let stored = home.get(&web.registry.addr).expect("login stored the credential");
    assert_eq!(stored["Username"], web.user.as_str());
    assert_eq!(stored["Secret"], web.password.as_str());
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(home.docker_config_dir().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["credsStore"], "imgctl");

    // The docker CLI of that home pulls through docker-credential-imgctl.
    let pull = run_with_stdin(home.command("docker").args(["pull", &web.v3.image]), b"");
    assert_success(&pull, "docker pull through the helper");
    let inspect = run_with_stdin(home.command("docker").args(["image", "inspect", &web.v3.image]), b"");
    assert_success(&inspect, "docker image inspect");
    // WebImages' Drop removes what was pulled; TestHome's Drop scans for the password.
}

#[test]
fn load_counts_refused_connections_as_failures() {
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    for mode in [Mode::Close, Mode::KeepAlive] {
        let load = Load::start(closed, "/", mode, 2);
        std::thread::sleep(Duration::from_millis(300));
        let running = load.snapshot();
        let tally = load.stop();
        eprintln!("{mode:?} load against a closed port: {tally:?}");
        assert!(running.socket_errors > 0 && tally.socket_errors >= running.socket_errors, "{running:?} {tally:?}");
        assert_eq!((tally.ok, tally.non_2xx), (0, 0));
        assert_eq!(tally.failed(), tally.socket_errors);
        assert!(tally.errors[0].contains("connect: Connection refused"), "{:?}", tally.errors);
        assert!(tally.errors.len() <= 20);
    }
}

fn parse(bytes: &[u8]) -> std::io::Result<Response> {
    load::read_response(&mut BufReader::new(Cursor::new(bytes.to_vec())))
}

#[test]
fn responses_are_parsed_whole_or_not_at_all() {
    let full = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nv1\nextra").unwrap();
    assert_eq!((full.status, full.body.as_slice(), full.close), (200, b"v1\n".as_slice(), false));

    let chunked =
        parse(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\n<HTM\r\n2;x=y\r\nL>\r\n0\r\nT: 1\r\n\r\n")
            .unwrap();
    assert_eq!((chunked.status, chunked.body.as_slice(), chunked.close), (404, b"<HTML>".as_slice(), true));
    assert_eq!(chunked.status_line, "HTTP/1.1 404 Not Found");

    let to_eof = parse(b"HTTP/1.0 200 OK\r\n\r\nbody until close").unwrap();
    assert_eq!((to_eof.body.as_slice(), to_eof.close), (b"body until close".as_slice(), true));

    for cut in [
        &b""[..],
        b"HTTP/1.1 200",
        b"HTTP/1.1 200 OK\r\nContent-Len",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nv1",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nv1\n\r\n",
    ] {
        let error = parse(cut).expect_err(&format!("{:?} is cut short", String::from_utf8_lossy(cut)));
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
    }
    for garbage in
        [&b"SSH-2.0-OpenSSH\r\n\r\n"[..], b"HTTP/1.1 2000 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"]
    {
        let error = parse(garbage).expect_err("not HTTP");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
    }
}
