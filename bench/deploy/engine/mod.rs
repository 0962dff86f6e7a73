//! The Engine suite (bench/deploy.sh): failed requests while `imgctl deploy` moves traffic on
//! one Docker Engine, each case once behind nginx (file and reload) and once behind haproxy
//! (runtime API), side by side with the two procedures people script by hand behind nginx.
//!
//! | case | what |
//! |---|---|
//! | 1 | blue/green, 2 replicas: v1 -> v2 (close), v2 -> v3 (keep-alive) |
//! | 2 | rolling over 4 replicas, `update_config` parallelism 1, start-first, monitor 1s, delay 200ms |
//! | 3 | canary, steps 10% (pause 2s), 50% (pause 2s), then 100% |
//! | 4 | a bad version (no `/health`): the health gate fails after 4 s, exit 1, traffic stays on v1 |
//! | 5 | `imgctl rollback` after a good deploy (v2 -> v1), then the rollback of the rollback |
//! | A | recreate, what `docker compose up -d` does on a new image: pull, `docker rm -f`, `docker run` on the same host port |
//! | B | the hand-run nginx switch: pull, `docker run` on a new port, rewrite the upstream, `nginx -s reload`, `docker rm -f` the old one |

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use crate::common::haproxy::Haproxy;
use crate::common::nginx::Nginx;
use crate::common::stream::Stream;
use crate::common::web::{Pushed, WebImages};
use crate::common::{IMGCTL, TestHome};
use crate::interrupt::{self, Ran};
use crate::probe;
use crate::report::{Run, round2};
use crate::settings::{ProxyKind, Settings};
use crate::wrk::{ClientKind, Wrk};
use crate::{Logs, Names};

mod peers;

/// Upper bound of one deploy or peer procedure.
const DEPLOY_MAX: Duration = Duration::from_secs(180);
/// haproxy's `server-template` pool: room for both colors of 4 replicas.
const SLOTS: usize = 8;
/// The streaming request held open across each deploy that moves traffic: longer than a
/// blue/green deploy's switch, shorter than `drain` (the default 30 s deadline).
const STREAM_S: u32 = 4;

pub struct EngineSuite<'a> {
    settings: &'a Settings,
    images: &'a WebImages,
    home: &'a TestHome,
    names: &'a Names,
    logs: &'a Logs,
    threads: u32,
    connections: u32,
    pub runs: Vec<Run>,
}

/// What each imgctl case does with its two measured runs.
#[derive(Clone, Copy)]
enum Steps {
    /// v1 -> v2 (close), v2 -> v3 (keep-alive).
    Deploys,
    /// The bad version, once per client kind: exit 1, v1 stays.
    Bad,
    /// Deployed v1 then v2: rollback to v1 (close), then to v2 (keep-alive).
    Rollback,
}

struct Case {
    key: &'static str,
    title: &'static str,
    replicas: u32,
    deploy_keys: &'static str,
    extension: &'static str,
    /// The health gate's deadline.
    deadline: &'static str,
    steps: Steps,
}

const CASES: [Case; 5] = [
    Case {
        key: "bg",
        title: "1 blue/green",
        replicas: 2,
        deploy_keys: "",
        extension: "",
        deadline: "20s",
        steps: Steps::Deploys,
    },
    Case {
        key: "roll",
        title: "2 rolling x4",
        replicas: 4,
        deploy_keys: "      update_config: {parallelism: 1, delay: 200ms, monitor: 1s, order: start-first, failure_action: rollback}\n",
        extension: "      strategy: rolling\n",
        deadline: "20s",
        steps: Steps::Deploys,
    },
    Case {
        key: "canary",
        title: "3 canary",
        replicas: 2,
        deploy_keys: "",
        extension: "      strategy: canary\n      canary:\n        steps: [{weight: 10, pause: 2s}, {weight: 50, pause: 2s}]\n",
        deadline: "20s",
        steps: Steps::Deploys,
    },
    // The gate gives up after 4 s instead of 20: the bad version never answers /health.
    Case {
        key: "bad",
        title: "4 bad version, v1 stays",
        replicas: 2,
        deploy_keys: "",
        extension: "",
        deadline: "4s",
        steps: Steps::Bad,
    },
    Case {
        key: "rb",
        title: "5 rollback",
        replicas: 2,
        deploy_keys: "",
        extension: "",
        deadline: "20s",
        steps: Steps::Rollback,
    },
];

/// One measured run: its row's name, the client kind, what the proxy serves before and what
/// it is meant to serve after.
struct Step<'i> {
    case: String,
    mode: ClientKind,
    from: &'i Pushed,
    to: &'i Pushed,
}

/// The proxy one case's service is behind.
enum Proxy {
    Nginx(Nginx),
    Haproxy(Haproxy),
}

impl Proxy {
    fn start(kind: ProxyKind, service: &str) -> Self {
        match kind {
            ProxyKind::Nginx => Self::Nginx(Nginx::start(service)),
            ProxyKind::Haproxy => Self::Haproxy(Haproxy::start(service, SLOTS)),
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Self::Nginx(nginx) => nginx.addr(),
            Self::Haproxy(haproxy) => haproxy.addr(),
        }
    }

    fn switch(&self) -> &'static str {
        match self {
            Self::Nginx(_) => "nginx-reload",
            Self::Haproxy(_) => "haproxy-runtime-api",
        }
    }

    /// The `x-imgctl.proxy` block (README: "Deploying a pinned digest", "haproxy").
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

/// One service behind its own proxy, with its compose file; its containers go on drop.
struct Site {
    service: String,
    proxy: Proxy,
    dir: PathBuf,
}

impl Site {
    fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        crate::remove_containers("label", &format!("imgctl.service={}", self.service));
    }
}

impl<'a> EngineSuite<'a> {
    pub fn new(
        settings: &'a Settings,
        images: &'a WebImages,
        home: &'a TestHome,
        names: &'a Names,
        logs: &'a Logs,
    ) -> Self {
        let threads = settings.wrk_threads.unwrap_or(2);
        let connections = settings.wrk_connections.unwrap_or(8).max(threads);
        Self { settings, images, home, names, logs, threads, connections, runs: Vec::new() }
    }

    pub fn method(&self) -> String {
        format!(
            "wrk -t{} -c{} against the proxy on loopback for the whole of each deploy plus {:.1} s before and after, \
             once with Connection: close and once with keep-alive (one deploy each); failed = non-2xx + socket errors; \
             busybox httpd images pulled by digest from a docker-registry with htpasswd on loopback, the credential \
             through imgctl's store (deploys) or a docker login (peers)",
            self.threads,
            self.connections,
            self.settings.settle.as_secs_f64()
        )
    }

    pub fn run(&mut self) {
        for case in &CASES {
            for &kind in &self.settings.proxies {
                eprintln!("case {} behind {}...", case.title, proxy_name(kind));
                self.imgctl_case(case, kind);
                self.images.remove_local_images();
            }
        }
        eprintln!("peer A: recreate on the same host port...");
        self.recreate();
        self.images.remove_local_images();
        eprintln!("peer B: hand-run nginx switch...");
        self.handrun();
        self.images.remove_local_images();
    }

    fn site(&self, case: &Case, kind: ProxyKind) -> Site {
        let service = self.names.name(&format!("{}-{}", case.key, proxy_name(kind)));
        let proxy = Proxy::start(kind, &service);
        let dir = self.home.dir.join(&service);
        fs::create_dir_all(&dir).unwrap();
        let text = format!(
            r#"services:
  {service}:
    image: {repo}:v1
    expose: ["8080"]
    # busybox httpd as PID 1 ignores SIGTERM; it is out of traffic when it is stopped.
    stop_signal: SIGKILL
    deploy:
      replicas: {replicas}
{deploy_keys}    x-imgctl:
      health: {{path: /health, interval: 200ms, healthy_threshold: 2, deadline: {deadline}}}
      keep_warm: 1s
      # The default deadline: the old color goes once its connections (the long request) end.
      drain: 30s
      proxy: {block}
{extension}"#,
            repo = self.images.repo,
            replicas = case.replicas,
            deploy_keys = case.deploy_keys,
            deadline = case.deadline,
            block = proxy.block(&dir),
            extension = case.extension,
        );
        fs::write(dir.join("compose.yaml"), text).unwrap();
        Site { service, proxy, dir }
    }

    fn imgctl_case(&mut self, case: &Case, kind: ProxyKind) {
        let site = self.site(case, kind);
        let images = self.images;
        let (v1, v2, v3, bad) = (&images.v1, &images.v2, &images.v3, &images.bad);
        let deploy =
            |to: &Pushed| vec!["deploy".to_owned(), site.service.clone(), "--digest".to_owned(), to.digest.clone()];
        let rollback = vec!["rollback".to_owned(), site.service.clone()];
        self.setup(&site, v1);
        let step = |case: String, mode, from, to| Step { case, mode, from, to };
        let runs: Vec<(Step, i32, Vec<String>)> = match case.steps {
            Steps::Deploys => vec![
                (step(format!("{} v1->v2", case.title), ClientKind::Close, v1, v2), 0, deploy(v2)),
                (step(format!("{} v2->v3", case.title), ClientKind::KeepAlive, v2, v3), 0, deploy(v3)),
            ],
            Steps::Bad => vec![
                (step(case.title.to_owned(), ClientKind::Close, v1, v1), 1, deploy(bad)),
                (step(case.title.to_owned(), ClientKind::KeepAlive, v1, v1), 1, deploy(bad)),
            ],
            Steps::Rollback => {
                self.setup(&site, v2);
                vec![
                    (step(format!("{} v2->v1", case.title), ClientKind::Close, v2, v1), 0, rollback.clone()),
                    (step(format!("{} v1->v2", case.title), ClientKind::KeepAlive, v1, v2), 0, rollback),
                ]
            }
        };
        for (step, want_exit, args) in runs {
            if self.settings.kinds().contains(&step.mode) {
                self.imgctl_measured(&site, &step, want_exit, &args);
            }
        }
    }

    fn imgctl(&self, site: &Site, args: &[String], base: &Path) -> Ran {
        let mut command = self.home.command(IMGCTL);
        command.args(args).args(["-o", "json"]).current_dir(&site.dir).env("IMGCTL_ACTOR", "bench/deploy");
        interrupt::run(&mut command, base, DEPLOY_MAX)
    }

    /// An untimed deploy without load, to set a case up.
    fn setup(&self, site: &Site, version: &Pushed) {
        let args = ["deploy".to_owned(), site.service.clone(), "--digest".to_owned(), version.digest.clone()];
        let ran = self.imgctl(site, &args, &self.logs.scratch("setup"));
        assert_eq!(
            ran.code(),
            Some(0),
            "setting up {}: deploy {} failed:\n{}\n{}",
            site.service,
            version.version,
            ran.stderr,
            ran.stdout
        );
        probe::await_serving(site.addr(), &version.version, Duration::from_secs(10), &site.service);
    }

    /// One measured imgctl run: `step.from` served before, `step.to` after (the same for the bad
    /// version), imgctl exiting `want_exit`.
    fn imgctl_measured(&mut self, site: &Site, step: &Step, want_exit: i32, args: &[String]) {
        let Step { case, mode, from: before, to: after } = step;
        let (case, mode) = (case.as_str(), *mode);
        interrupt::check();
        probe::expect_serving(site.addr(), &before.version, case);
        let base = self.logs.scratch("imgctl");
        let wrk = Wrk::start(site.addr(), mode, self.threads, self.connections, base.with_extension("wrk.txt"));
        interrupt::sleep(self.settings.settle);
        // Started last, so it is open when traffic moves (a bad version moves none).
        let stream = (want_exit == 0).then(|| Stream::start(site.addr(), STREAM_S));
        let ran = self.imgctl(site, args, &base);
        interrupt::sleep(self.settings.settle);
        let long_request = stream.map(|s| if s.finish().complete(STREAM_S) { "whole" } else { "cut" });
        let load = wrk.stop();
        assert_eq!(
            ran.code(),
            Some(want_exit),
            "{case} ({}): imgctl {} exited {:?}, expected {want_exit}:\n{}\n{}",
            mode.name(),
            args.join(" "),
            ran.status,
            ran.stderr,
            ran.stdout
        );
        probe::expect_serving(site.addr(), &after.version, case);
        let report: serde_json::Value = serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("{case}: imgctl -o json printed no JSON ({e}):\n{}", ran.stdout));
        let run = Run {
            case: case.to_owned(),
            tool: "imgctl".to_owned(),
            switch: site.proxy.switch(),
            mode,
            failed: load.failed(),
            load,
            switch_ms: report["switch_ms"].as_u64(),
            time_to_traffic_ms: report["time_to_traffic_ms"].as_u64(),
            wall_s: round2(ran.wall.as_secs_f64()),
            outcome: report["outcome"].as_str().unwrap_or("?").to_owned(),
            long_request,
            swarm: None,
        };
        self.record(run, &base);
    }

    fn record(&mut self, run: Run, base: &Path) {
        eprintln!(
            "  {} {} [{}] ({}): {} requests, {} failed (non-2xx {}, socket c/r/w/t {}/{}/{}/{}), switch {} ms, traffic {} ms, wall {:.2} s, {}",
            run.tool,
            run.case,
            run.switch,
            run.mode.name(),
            run.load.requests,
            run.failed,
            run.load.non_2xx,
            run.load.socket_errors.connect,
            run.load.socket_errors.read,
            run.load.socket_errors.write,
            run.load.socket_errors.timeout,
            run.switch_ms.map_or("-".to_owned(), |v| v.to_string()),
            run.time_to_traffic_ms.map_or("-".to_owned(), |v| v.to_string()),
            run.wall_s,
            run.outcome
        );
        self.logs.keep(self.runs.len(), &run, base);
        self.runs.push(run);
    }

    /// `docker ARGS` with the config that is logged in to the registry; its stdout.
    fn docker(&self, args: &[&str]) -> String {
        let mut command = self.images.docker();
        command.args(args);
        let ran = interrupt::run(&mut command, &self.logs.scratch("docker"), DEPLOY_MAX);
        assert_eq!(ran.code(), Some(0), "docker {}: {}{}", args.join(" "), ran.stdout, ran.stderr);
        ran.stdout
    }
}

fn proxy_name(kind: ProxyKind) -> &'static str {
    match kind {
        ProxyKind::Nginx => "nginx",
        ProxyKind::Haproxy => "haproxy",
    }
}
