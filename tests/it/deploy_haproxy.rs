//! `imgctl deploy` behind haproxy (the runtime-API switch) and behind nginx (file and reload),
//! side by side: the same images, the same load of `Connection: close` and keep-alive clients
//! for the whole of a blue/green deploy (and, behind haproxy, a canary). haproxy keeps every
//! client connection across the switch, so no request may fail with either client kind, and no
//! keep-alive connection is replaced; nginx's keep-alive reconnects and failures (a reload
//! closing idle connections just as a client reuses one, issue 12) are reported, not asserted.
#![allow(clippy::print_stderr)] // the tallies, for whoever reads the test log

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::haproxy::Haproxy;
use common::load::{self, Load, Mode, Tally};
use common::nginx::Nginx;
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, random_hex};

/// The `x-imgctl` keys every service here starts from: short health checks, a short warm
/// period and drain.
const SETTINGS: &str = "      health: {path: /health, interval: 200ms, healthy_threshold: 2, deadline: 20s}\n      keep_warm: 1s\n      drain: 500ms";

/// Which proxy a service is behind.
pub(crate) enum Proxy {
    Nginx(Nginx),
    Haproxy(Haproxy),
}

impl Proxy {
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        match self {
            Self::Nginx(nginx) => nginx.addr(),
            Self::Haproxy(haproxy) => haproxy.addr(),
        }
    }

    /// The `x-imgctl.proxy` block.
    fn block(&self, dir: &Path) -> String {
        let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
        match self {
            Self::Nginx(nginx) => format!(
                "{{upstream_file: {}, test: {}, reload: {}, verify_url: {}}}",
                nginx.upstream_file.display(),
                json(nginx.test_command()),
                json(nginx.reload_command()),
                nginx.url("/health")
            ),
            Self::Haproxy(haproxy) => format!(
                "{{kind: haproxy, socket: {}, state_file: {}, verify_url: http://{}/health}}",
                haproxy.socket.display(),
                dir.join("haproxy-state.json").display(),
                haproxy.addr()
            ),
        }
    }
}

/// One service behind `proxy`; its containers are removed when it is dropped.
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) proxy: Proxy,
    pub(crate) dir: PathBuf,
}

impl Service {
    pub(crate) fn new(prefix: &str, images: &WebImages, home: &TestHome, haproxy: bool) -> Self {
        let name = format!("{prefix}{}", random_hex(3));
        let proxy = if haproxy { Proxy::Haproxy(Haproxy::start(&name, 8)) } else { Proxy::Nginx(Nginx::start(&name)) };
        let dir = home.dir.join(&name);
        fs::create_dir_all(&dir).unwrap();
        let service = Self { name, proxy, dir };
        service.compose(images, "");
        service
    }

    /// Writes compose.yaml, with extra `x-imgctl` keys.
    fn compose(&self, images: &WebImages, extension: &str) {
        self.compose_with(images, 2, "", &format!("{SETTINGS}\n{extension}"));
    }

    /// Writes compose.yaml: `replicas`, extra `deploy:` keys, and the `x-imgctl` keys besides
    /// `proxy` (`compose` starts from [`SETTINGS`]).
    pub(crate) fn compose_with(&self, images: &WebImages, replicas: u32, deploy: &str, x_imgctl: &str) {
        let text = format!(
            r#"services:
  {name}:
    image: {repo}:v1
    expose: ["8080"]
    stop_signal: SIGKILL
    deploy:
      replicas: {replicas}
{deploy}
    x-imgctl:
{x_imgctl}
      proxy: {block}
"#,
            name = self.name,
            repo = images.repo,
            block = self.proxy.block(&self.dir),
        );
        fs::write(self.dir.join("compose.yaml"), text).unwrap();
    }

    pub(crate) fn deploy(&self, home: &TestHome, digest: &str) -> Output {
        self.imgctl(home, &["deploy", &self.name, "--digest", digest, "-o", "json"])
    }

    pub(crate) fn imgctl(&self, home: &TestHome, args: &[&str]) -> Output {
        home.command(IMGCTL).args(args).current_dir(&self.dir).stdin(Stdio::null()).output().unwrap()
    }

    pub(crate) fn serving(&self) -> String {
        load::get(self.proxy.addr(), "/").expect("GET / through the proxy").text()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        common::remove_service_containers(&self.name);
    }
}

/// A blue/green deploy v1 -> v2 of `service` under both client kinds: (close, keep-alive,
/// switch_ms).
fn blue_green_under_load(service: &Service, home: &TestHome, images: &WebImages) -> (Tally, Tally, u64) {
    assert_success(&service.deploy(home, &images.v1.digest), "deploy v1");
    assert_eq!(service.serving(), "v1");
    let close = Load::start(service.proxy.addr(), "/", Mode::Close, 3);
    let keep_alive = Load::start(service.proxy.addr(), "/", Mode::KeepAlive, 3);
    std::thread::sleep(Duration::from_millis(500));
    let out = service.deploy(home, &images.v2.digest);
    std::thread::sleep(Duration::from_millis(500));
    let (close, keep_alive) = (close.stop(), keep_alive.stop());
    assert_success(&out, "deploy v2");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "succeeded", "{report}");
    assert_eq!(service.serving(), "v2");
    (close, keep_alive, report["switch_ms"].as_u64().unwrap_or_default())
}

#[test]
fn haproxy_blue_green_and_canary_under_load_fail_no_keep_alive_request_where_nginx_reloads() {
    let images = WebImages::build("hxdeploy");
    let mut home = TestHome::new("hxdeploy");
    images.login(&mut home);

    let behind_nginx = Service::new("ngx", &images, &home, false);
    let (nginx_close, nginx_keep_alive, nginx_ms) = blue_green_under_load(&behind_nginx, &home, &images);
    drop(behind_nginx);

    let behind_haproxy = Service::new("hx", &images, &home, true);
    let Proxy::Haproxy(haproxy) = &behind_haproxy.proxy else { unreachable!() };
    let pid = haproxy.pid();
    let (close, keep_alive, haproxy_ms) = blue_green_under_load(&behind_haproxy, &home, &images);

    for (proxy, kind, tally, ms) in [
        ("nginx", "close", &nginx_close, nginx_ms),
        ("nginx", "keep-alive", &nginx_keep_alive, nginx_ms),
        ("haproxy", "close", &close, haproxy_ms),
        ("haproxy", "keep-alive", &keep_alive, haproxy_ms),
    ] {
        eprintln!(
            "{proxy:8} {kind:10} ok {:5} failed {} reconnects {} retries {} switch {ms} ms {:?}",
            tally.ok,
            tally.failed(),
            tally.reconnects,
            tally.retries,
            tally.errors
        );
    }
    assert_eq!(nginx_close.failed(), 0, "nginx, Connection: close: {:?}", nginx_close.errors);
    for (kind, tally) in [("Connection: close", &close), ("keep-alive", &keep_alive)] {
        assert!(tally.ok > 50, "haproxy, {kind}: too few requests to judge ({tally:?})");
        assert_eq!(tally.failed(), 0, "haproxy, {kind}: failed requests: {:?}", tally.errors);
        assert!(tally.by_body.contains_key("v1") && tally.by_body.contains_key("v2"), "{kind}: {tally:?}");
    }
    // A canary v2 -> v3 (50%, then 100%): the weights change over the runtime API too.
    behind_haproxy.compose(&images, "      strategy: canary\n      canary: {steps: [{weight: 50, pause: 1s}]}");
    let close = Load::start(haproxy.addr(), "/", Mode::Close, 3);
    let canary = Load::start(haproxy.addr(), "/", Mode::KeepAlive, 3);
    let out = behind_haproxy.deploy(&home, &images.v3.digest);
    std::thread::sleep(Duration::from_millis(300));
    let (close, canary) = (close.stop(), canary.stop());
    assert_success(&out, "canary v3");
    eprintln!("haproxy  canary 50/100: close {close:?}\nhaproxy  canary 50/100: keep-alive {canary:?}");
    for (kind, tally) in [("Connection: close", &close), ("keep-alive", &canary)] {
        assert_eq!(tally.failed(), 0, "haproxy canary, {kind}: failed requests: {:?}", tally.errors);
        assert!(tally.by_body.contains_key("v2") && tally.by_body.contains_key("v3"), "{kind}: {tally:?}");
    }
    assert_eq!((canary.reconnects, canary.retries), (0, 0), "{canary:?}");
    assert_eq!(behind_haproxy.serving(), "v3");

    // Never reloaded: haproxy kept every client connection (none replaced, none retried).
    assert_eq!((keep_alive.reconnects, keep_alive.retries), (0, 0), "{keep_alive:?}");
    assert_eq!(haproxy.pid(), pid);

    // haproxy restarts and forgets every runtime change; --repair replays the live state.
    let mut behind_haproxy = behind_haproxy;
    let Proxy::Haproxy(haproxy) = &mut behind_haproxy.proxy else { unreachable!() };
    haproxy.restart();
    assert_eq!(load::get(haproxy.addr(), "/").unwrap().status, 503, "a restarted haproxy serves nothing");
    let name = behind_haproxy.name.clone();
    assert_success(&behind_haproxy.imgctl(&home, &["deploy", &name, "--repair"]), "deploy --repair");
    assert_eq!(behind_haproxy.serving(), "v3");
}
