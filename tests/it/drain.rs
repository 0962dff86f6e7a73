//! Drains that wait for open connections, against real peers: a client holds a streaming
//! response open on the live color across a blue/green deploy, behind nginx (the Engine
//! counts the connections in the container's network namespace) and behind haproxy (which
//! counts its own sessions). With the default drain the stream gets its whole response and
//! the deploy returns as soon as the stream ended, long before the deadline; with a deadline
//! shorter than the stream, the report says one connection was cut.
#![allow(clippy::print_stderr)] // the timings, for whoever reads the test log

use crate::common;

use std::fs;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::haproxy::Haproxy;
use common::load;
use common::nginx::Nginx;
use common::stream::Stream;
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, random_hex};

enum Proxy {
    Nginx(Nginx),
    Haproxy(Haproxy),
}

/// One service behind a proxy; its containers are removed when it is dropped.
struct Service {
    name: String,
    proxy: Proxy,
    dir: PathBuf,
}

impl Service {
    fn new(prefix: &str, home: &TestHome, haproxy: bool) -> Self {
        let name = format!("{prefix}{}", random_hex(3));
        let proxy = if haproxy { Proxy::Haproxy(Haproxy::start(&name, 4)) } else { Proxy::Nginx(Nginx::start(&name)) };
        let dir = home.dir.join(&name);
        fs::create_dir_all(&dir).unwrap();
        Self { name, proxy, dir }
    }

    fn addr(&self) -> std::net::SocketAddr {
        match &self.proxy {
            Proxy::Nginx(nginx) => nginx.addr(),
            Proxy::Haproxy(haproxy) => haproxy.addr(),
        }
    }

    /// compose.yaml with `drain` (`None`: the default) and no keep-warm, so the drain alone
    /// decides when the old color stops; SIGKILL, so what is still open at the stop is cut.
    fn compose(&self, images: &WebImages, drain: Option<&str>) {
        let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
        let block = match &self.proxy {
            Proxy::Nginx(nginx) => format!(
                "{{upstream_file: {}, test: {}, reload: {}}}",
                nginx.upstream_file.display(),
                json(nginx.test_command()),
                json(nginx.reload_command())
            ),
            Proxy::Haproxy(haproxy) => format!(
                "{{kind: haproxy, socket: {}, state_file: {}}}",
                haproxy.socket.display(),
                self.dir.join("haproxy-state.json").display()
            ),
        };
        let drain = drain.map(|d| format!("      drain: {d}\n")).unwrap_or_default();
        let text = format!(
            r#"services:
  {name}:
    image: {repo}:v1
    expose: ["8080"]
    stop_signal: SIGKILL
    x-imgctl:
      health: {{path: /health, interval: 200ms, healthy_threshold: 1, deadline: 20s}}
      keep_warm: 0s
{drain}      proxy: {block}
"#,
            name = self.name,
            repo = images.repo,
        );
        fs::write(self.dir.join("compose.yaml"), text).unwrap();
    }

    /// Waits until `/` answers `version` through the proxy (nginx's new workers start a
    /// moment after `nginx -s reload` returns).
    /// Until the proxy has answered `version` for a whole second: `nginx -s reload` returns
    /// before the old workers stop taking connections, and after the first deploy an old worker
    /// still has the upstream of before it (nothing), so one answer is not enough.
    fn wait_serving(&self, version: &str) {
        let since = Instant::now();
        let mut serving_since: Option<Instant> = None;
        loop {
            if load::get(self.addr(), "/").map(|r| r.text()).ok().as_deref() == Some(version) {
                let first = *serving_since.get_or_insert_with(Instant::now);
                if first.elapsed() >= Duration::from_secs(1) {
                    return;
                }
            } else {
                serving_since = None;
            }
            assert!(since.elapsed() < Duration::from_secs(15), "the proxy does not serve {version}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn deploy(&self, home: &TestHome, digest: &str) -> (Output, Duration) {
        let since = Instant::now();
        let out = home
            .command(IMGCTL)
            .args(["deploy", &self.name, "--digest", digest, "-o", "json"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out, since.elapsed())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        common::remove_service_containers(&self.name);
    }
}

fn report(out: &Output, what: &str) -> serde_json::Value {
    assert_success(out, what);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "succeeded", "{what}: {report}");
    report
}

/// The whole case behind one proxy.
fn a_stream_open_across_a_deploy(haproxy: bool) {
    let kind = if haproxy { "haproxy" } else { "nginx" };
    let images = WebImages::build(&format!("drain-{kind}"));
    let mut home = TestHome::new(&format!("drain-{kind}"));
    images.login(&mut home);
    let service = Service::new(if haproxy { "dhx" } else { "dng" }, &home, haproxy);

    // The default drain (30 s, a deadline): a 10 s stream that started on blue ends whole,
    // and the deploy returns when it did, not 30 s later.
    service.compose(&images, None);
    report(&service.deploy(&home, &images.v1.digest).0, "deploy v1");
    service.wait_serving("v1");
    let stream = Stream::start(service.addr(), 10);
    let (out, took) = service.deploy(&home, &images.v2.digest);
    let returned = Instant::now();
    let streamed = stream.finish();
    let json = report(&out, "deploy v2");
    assert!(streamed.complete(10), "{kind}: the stream was cut: {streamed:?}\n{json}");
    let drain = &json["drains"][0];
    let drained = (drain["color"].as_str(), drain["open"].as_u64(), drain["cut"].as_bool());
    assert_eq!(drained, (Some("blue"), Some(0), Some(false)), "{kind}: {json}");
    let waited = drain["waited_ms"].as_u64().unwrap();
    assert!(waited >= 500, "{kind}: the drain waited {waited} ms, while the stream was open: {json}");
    // It ended with the stream (a poll later), long before the deadline.
    let after = returned.saturating_duration_since(streamed.ended);
    assert!(
        returned + Duration::from_millis(300) >= streamed.ended,
        "{kind}: the deploy returned before the stream ended"
    );
    assert!(after < Duration::from_secs(5), "{kind}: the deploy returned {after:?} after the stream ended: {json}");
    eprintln!(
        "{kind}: a 10 s stream whole in {:?}; deploy {took:?}, drain waited {waited} ms, returned {after:?} after the stream ended",
        streamed.took
    );

    // A 1 s deadline and an 8 s stream: the report says 1 was still open and cut.
    service.compose(&images, Some("1s"));
    service.wait_serving("v2");
    let stream = Stream::start(service.addr(), 8);
    let (out, took) = service.deploy(&home, &images.v3.digest);
    let streamed = stream.finish();
    let json = report(&out, "deploy v3");
    let drain = &json["drains"][0];
    assert_eq!(
        (drain["color"].as_str(), drain["open"].as_u64(), drain["cut"].as_bool()),
        (Some("green"), Some(1), Some(true)),
        "{kind}: {json}"
    );
    assert!(
        !streamed.complete(8),
        "{kind}: a stream open past the deadline was stopped with its replica: {streamed:?}"
    );
    assert!(took < Duration::from_secs(8), "{kind}: the deploy took {took:?}, past a 1 s deadline");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("1 connection(s) still open at the deadline"), "{kind}: the events do not say it: {text}");
}

#[test]
fn behind_nginx_a_stream_open_across_a_deploy_ends_whole_and_the_deploy_returns_when_it_did() {
    a_stream_open_across_a_deploy(false);
}

#[test]
fn behind_haproxy_a_stream_open_across_a_deploy_ends_whole_and_the_deploy_returns_when_it_did() {
    a_stream_open_across_a_deploy(true);
}
