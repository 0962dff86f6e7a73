//! The Swarm suite (bench/deploy-swarm.sh): failed requests and time to converge while
//! `imgctl deploy` updates 4 replicas on a loopback-only single-node swarm, side by side with
//! `docker service update --image REPO@DIGEST` and the same `update_config`, behind nginx in a
//! container on the swarm's overlay network.
//!
//! | case | tool | what |
//! |---|---|---|
//! | 1 | imgctl | rolling: swarm's own update, followed to its end; v1 -> v2 (close), v2 -> v3 (keep-alive) |
//! | 2 | docker | `docker service update --with-registry-auth --image REPO@DIGEST` with the same update_config, on a second service made the same way |
//! | 3 | imgctl | blue/green on swarm: `SERVICE-blue` / `SERVICE-green`, imgctl writes nginx's upstream and reloads it |
//! | 4 | both | a bad version (no `/health`) with `failure_action: rollback`: swarm rolls back |

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::common::nginx_container::{NginxContainer, ProxyImage, Resolution};
use crate::common::swarm::Swarm;
use crate::common::web::{Pushed, WebImages};
use crate::common::{IMGCTL, TestHome};
use crate::interrupt::{self, Ran};
use crate::probe::{self, FirstAnswer};
use crate::report::{Run, SwarmFigures, round2};
use crate::settings::Settings;
use crate::timestamp;
use crate::wrk::{ClientKind, Wrk};
use crate::{Logs, Names};

const REPLICAS: usize = 4;
/// Upper bound of one update.
const DEPLOY_MAX: Duration = Duration::from_secs(180);
/// nginx resolves the tasks per request, cached 1 s.
const AWAIT_SERVING: Duration = Duration::from_secs(20);

pub struct SwarmSuite<'a> {
    settings: &'a Settings,
    images: &'a WebImages,
    home: &'a TestHome,
    names: &'a Names,
    logs: &'a Logs,
    threads: u32,
    connections: u32,
    pub runs: Vec<Run>,
    /// The two rolling services' update, rollback, health and network settings (identical).
    pub service_spec: serde_json::Value,
    pub loadavg_at_start: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Imgctl,
    Docker,
}

/// One service behind its own nginx container.
struct Site {
    service: String,
    nginx: NginxContainer,
    dir: PathBuf,
    blue_green: bool,
}

impl Site {
    fn addr(&self) -> SocketAddr {
        self.nginx.addr()
    }

    /// The swarm services whose tasks this site runs.
    fn services(&self) -> Vec<String> {
        if self.blue_green {
            vec![format!("{}-blue", self.service), format!("{}-green", self.service)]
        } else {
            vec![self.service.clone()]
        }
    }
}

impl<'a> SwarmSuite<'a> {
    pub fn new(
        settings: &'a Settings,
        images: &'a WebImages,
        home: &'a TestHome,
        names: &'a Names,
        logs: &'a Logs,
    ) -> Self {
        let threads = settings.wrk_threads.unwrap_or(1);
        let connections = settings.wrk_connections.unwrap_or(4).max(threads);
        Self {
            settings,
            images,
            home,
            names,
            logs,
            threads,
            connections,
            runs: Vec::new(),
            service_spec: serde_json::Value::Null,
            loadavg_at_start: String::new(),
        }
    }

    pub fn method(&self) -> String {
        format!(
            "single-node swarm on loopback, {REPLICAS} replicas; wrk -t{} -c{} against nginx (a container on the overlay \
             network, tasks.NAME resolved per request for the rolling services) for the whole of each update plus {:.1} s \
             before and after; failed = non-2xx + socket errors; converged_s from the Engine API (UpdateStatus and the \
             tasks meant to run), polled every 100 ms",
            self.threads,
            self.connections,
            self.settings.settle.as_secs_f64()
        )
    }

    pub fn run(&mut self) {
        // Drop order (reverse of declaration): the nginx containers, then the swarm's services
        // and network (and the swarm itself, if this run initialized it), then nginx's image.
        let proxy_image = ProxyImage::build();
        let swarm = Swarm::start();
        let roll = self.site(&swarm, &proxy_image, "roll", false);
        let dock = self.site(&swarm, &proxy_image, "dock", false);
        let bg = self.site(&swarm, &proxy_image, "bg", true);
        for site in [&roll, &dock] {
            site.nginx.switch_to(&format!("tasks.{}:8080", site.service));
        }
        // The services at v1, created by imgctl (untimed, no load); the docker case's service is
        // made the same way from the same compose fields.
        for site in [&roll, &dock, &bg] {
            eprintln!("creating {} at v1 (imgctl, untimed)...", site.service);
            let ran = self.imgctl(site, &self.images.v1, &self.logs.scratch("setup"));
            assert_eq!(ran.code(), Some(0), "creating {} at v1:\n{}\n{}", site.service, ran.stderr, ran.stdout);
            probe::await_serving(site.addr(), "v1", AWAIT_SERVING, &site.service);
        }
        let (a, b) = (spec_knobs(&swarm, &roll.service), spec_knobs(&swarm, &dock.service));
        assert_eq!(a, b, "the two rolling services differ");
        self.service_spec = a;
        self.loadavg_at_start = crate::report::loadavg();

        let images = self.images;
        let mut last = &images.v1;
        // The tools alternate which goes first from one client kind to the next, so drift on the
        // machine (and which of them finds a version already pulled) hits both alike.
        for mode in self.settings.kinds() {
            let (from, to) =
                if mode == ClientKind::Close { (&images.v1, &images.v2) } else { (&images.v2, &images.v3) };
            eprintln!("rolling {} -> {}, {}...", from.version, to.version, mode.name());
            let imgctl_case = format!("1 rolling {}->{}", from.version, to.version);
            let docker_case = format!("2 rolling {}->{}", from.version, to.version);
            if mode == ClientKind::Close {
                self.measured(&swarm, &imgctl_case, &roll, Tool::Imgctl, mode, from, to, false);
                self.measured(&swarm, &docker_case, &dock, Tool::Docker, mode, from, to, false);
            } else {
                self.measured(&swarm, &docker_case, &dock, Tool::Docker, mode, from, to, false);
                self.measured(&swarm, &imgctl_case, &roll, Tool::Imgctl, mode, from, to, false);
            }
            eprintln!("blue/green {} -> {}, {}...", from.version, to.version, mode.name());
            let case = format!("3 blue/green {}->{}", from.version, to.version);
            self.measured(&swarm, &case, &bg, Tool::Imgctl, mode, from, to, false);
            last = to;
        }
        for mode in self.settings.kinds() {
            eprintln!("bad version, {}...", mode.name());
            let case = "4 bad, rolled back";
            if mode == ClientKind::Close {
                self.measured(&swarm, case, &roll, Tool::Imgctl, mode, last, &images.bad, true);
                self.measured(&swarm, case, &dock, Tool::Docker, mode, last, &images.bad, true);
            } else {
                self.measured(&swarm, case, &dock, Tool::Docker, mode, last, &images.bad, true);
                self.measured(&swarm, case, &roll, Tool::Imgctl, mode, last, &images.bad, true);
            }
        }
        if let Some(dir) = &self.settings.logs {
            for site in [&roll, &dock, &bg] {
                let _ =
                    fs::copy(site.nginx.dir.join("error.log"), dir.join(format!("nginx-{}-error.log", site.service)));
            }
        }
    }

    fn site(&self, swarm: &Swarm, image: &ProxyImage, key: &str, blue_green: bool) -> Site {
        let service = self.names.name(key);
        swarm.track(&service);
        for color in ["blue", "green"] {
            swarm.track(&format!("{service}-{color}"));
        }
        let resolution = if blue_green { Resolution::AtReload } else { Resolution::PerRequest };
        // An nginx variable name (per-request mode) allows no dashes: the upstream is "web".
        let nginx = NginxContainer::start(swarm, image, "web", resolution);
        let dir = self.home.dir.join(&service);
        fs::create_dir_all(&dir).unwrap();
        let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
        // A rolling swarm service needs no proxy block: nginx follows the tasks by DNS.
        let (strategy, proxy) = if blue_green {
            let proxy = format!(
                "      proxy:\n        upstream: web\n        upstream_file: {}\n        test: {}\n        reload: {}\n        verify_url: http://{}/health\n",
                nginx.upstream_file().display(),
                json(nginx.test_command()),
                json(nginx.reload_command()),
                nginx.addr()
            );
            ("blue-green", proxy)
        } else {
            ("rolling", String::new())
        };
        let text = format!(
            r#"services:
  {service}:
    image: {repo}:v1
    expose: ["8080"]
    healthcheck:
      # Exec form: the image has no shell.
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: {timeout}
      retries: 2
    stop_grace_period: 2s
    deploy:
      replicas: {REPLICAS}
      update_config: {{parallelism: 1, delay: 0s, monitor: 3s, order: start-first, failure_action: rollback}}
    x-imgctl:
      target: swarm
      strategy: {strategy}
      swarm: {{network: {network}, converge_timeout: 120s}}
      health: {{deadline: 90s}}
      keep_warm: 1s
      drain: 1s
{proxy}"#,
            repo = self.images.repo,
            timeout = self.settings.health_timeout,
            network = swarm.network,
        );
        fs::write(dir.join("compose.yaml"), text).unwrap();
        Site { service, nginx, dir, blue_green }
    }

    fn imgctl(&self, site: &Site, to: &Pushed, base: &Path) -> Ran {
        let mut command = self.home.command(IMGCTL);
        command
            .args(["deploy", &site.service, "--digest", &to.digest, "-o", "json"])
            .current_dir(&site.dir)
            .env("IMGCTL_ACTOR", "bench/deploy-swarm");
        interrupt::run(&mut command, base, DEPLOY_MAX)
    }

    /// `docker service update --image`, waiting for the update as the CLI does by default.
    fn docker(&self, site: &Site, to: &Pushed, base: &Path) -> Ran {
        let mut command = self.images.docker();
        command.args(["service", "update", "--with-registry-auth", "--image", &to.image]);
        command.args(["--update-parallelism", "1", "--update-delay", "0s", "--update-monitor", "3s"]);
        command.args(["--update-order", "start-first", "--update-failure-action", "rollback", &site.service]);
        interrupt::run(&mut command, base, DEPLOY_MAX)
    }

    #[allow(clippy::too_many_arguments)]
    fn measured(
        &mut self,
        swarm: &Swarm,
        case: &str,
        site: &Site,
        tool: Tool,
        mode: ClientKind,
        from: &Pushed,
        to: &Pushed,
        bad: bool,
    ) {
        interrupt::check();
        let target = if bad { from } else { to };
        let precheck = if probe::serving(site.addr()) == from.version {
            Duration::ZERO
        } else {
            eprintln!("  note: before the run nginx does not serve {} on {}; waiting", from.version, site.service);
            probe::await_serving(site.addr(), &from.version, AWAIT_SERVING, case)
        };
        let base = self.logs.scratch(if tool == Tool::Imgctl { "imgctl" } else { "docker" });
        let wrk = Wrk::start(site.addr(), mode, self.threads, self.connections, base.with_extension("wrk.txt"));
        interrupt::sleep(self.settings.settle);
        let (t0, t0_wall) = (Instant::now(), SystemTime::now());
        let converged = |swarm: &Swarm| {
            if site.blue_green {
                blue_green_converged(swarm, site, &to.digest)
            } else {
                let (state, digest) =
                    if bad { ("rollback_completed", &from.digest) } else { ("completed", &to.digest) };
                rolling_converged(swarm, &site.service, digest, state, t0_wall)
            }
        };
        let stop = AtomicBool::new(false);
        let (ran, converged_s, first_new) = std::thread::scope(|scope| {
            // Stops the poller also when this thread unwinds (the scope joins it first).
            struct Stop<'s>(&'s AtomicBool);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let poller = scope.spawn(|| {
                let deadline = DEPLOY_MAX + Duration::from_secs(30);
                while !stop.load(Ordering::SeqCst) && !interrupt::interrupted() && t0.elapsed() < deadline {
                    if converged(swarm) {
                        return Some(t0.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                None
            });
            let _stop = Stop(&stop);
            let first = (!bad).then(|| FirstAnswer::start(site.addr(), &to.version, t0, DEPLOY_MAX));
            let ran = match tool {
                Tool::Imgctl => self.imgctl(site, to, &base),
                Tool::Docker => self.docker(site, to, &base),
            };
            let end = Instant::now() + Duration::from_secs(60);
            while !poller.is_finished() && Instant::now() < end {
                interrupt::sleep(Duration::from_millis(50));
            }
            stop.store(true, Ordering::SeqCst);
            let converged_s = poller.join().ok().flatten();
            let first_new = first.and_then(|f| f.finish(Duration::from_secs(10)));
            (ran, converged_s, first_new)
        });
        interrupt::sleep(self.settings.settle);
        let load = wrk.stop();
        let want_exit = i32::from(bad);
        if tool == Tool::Imgctl {
            assert_eq!(
                ran.code(),
                Some(want_exit),
                "{case} ({}): imgctl exited {:?}, expected {want_exit}:\n{}\n{}",
                mode.name(),
                ran.status,
                ran.stderr,
                ran.stdout
            );
        }
        let report: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap_or(serde_json::Value::Null);
        let reason = match tool {
            Tool::Imgctl => report["reason"].as_str().map(str::to_owned),
            // The CLI's own word on a rolled-back update (its exit status does not say).
            Tool::Docker => {
                ran.stdout.lines().chain(ran.stderr.lines()).find(|l| l.starts_with("rollback:")).map(str::to_owned)
            }
        };
        let service = swarm.try_inspect(&site.service);
        let (update_state, swarm_done_s) = if site.blue_green {
            (format!("color {}", report["color"].as_str().unwrap_or("?")), None)
        } else {
            let status = service.as_ref().map(|s| s["UpdateStatus"].clone()).unwrap_or_default();
            let done =
                status["CompletedAt"].as_str().and_then(timestamp::parse).and_then(|at| secs_between(t0_wall, at));
            (status["State"].as_str().unwrap_or("-").to_owned(), done)
        };
        let task_errors = failed_tasks(swarm, &site.services(), t0_wall);
        probe::await_serving(site.addr(), &target.version, AWAIT_SERVING, case);
        let secs = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 100.0).round() / 100.0);
        let run = Run {
            case: case.to_owned(),
            tool: if tool == Tool::Imgctl { "imgctl" } else { "docker" }.to_owned(),
            switch: if site.blue_green { "nginx-reload" } else { "swarm-dns" },
            mode,
            failed: load.failed(),
            load,
            switch_ms: report["switch_ms"].as_u64(),
            time_to_traffic_ms: report["time_to_traffic_ms"].as_u64(),
            wall_s: round2(ran.wall.as_secs_f64()),
            outcome: format!("exit {}, {update_state}", ran.code().map_or("none".to_owned(), |c| c.to_string())),
            long_request: None,
            swarm: Some(SwarmFigures {
                swarm_done_s,
                converged_s: secs(converged_s),
                first_new_s: secs(first_new),
                task_failures: task_errors.len(),
                task_errors,
                precheck_wait_ms: precheck.as_millis() as u64,
                exit: ran.code(),
                update_state,
                reason,
            }),
        };
        let s = run.swarm.as_ref().unwrap();
        eprintln!(
            "  {} {} ({}): {} requests, {} failed (non-2xx {}, socket c/r/w/t {}/{}/{}/{}), wall {:.2} s, swarm done {:?} s, converged {:?} s, {} task failures, {}",
            run.tool,
            run.case,
            run.mode.name(),
            run.load.requests,
            run.failed,
            run.load.non_2xx,
            run.load.socket_errors.connect,
            run.load.socket_errors.read,
            run.load.socket_errors.write,
            run.load.socket_errors.timeout,
            run.wall_s,
            s.swarm_done_s,
            s.converged_s,
            s.task_failures,
            run.outcome
        );
        self.logs.keep(self.runs.len(), &run, &base);
        self.runs.push(run);
    }
}

/// The settings both rolling services must share for the comparison to be fair.
fn spec_knobs(swarm: &Swarm, service: &str) -> serde_json::Value {
    let spec = &swarm.inspect(service)["Spec"];
    let container = &spec["TaskTemplate"]["ContainerSpec"];
    let networks: Vec<serde_json::Value> =
        spec["TaskTemplate"]["Networks"].as_array().into_iter().flatten().map(|n| n["Target"].clone()).collect();
    serde_json::json!({
        "UpdateConfig": spec["UpdateConfig"],
        "RollbackConfig": spec["RollbackConfig"],
        "Mode": spec["Mode"],
        "Healthcheck": container["Healthcheck"],
        "StopGracePeriod": container["StopGracePeriod"],
        "StopSignal": container["StopSignal"],
        "Networks": networks,
        "EndpointSpec": spec["EndpointSpec"],
    })
}

/// (tasks meant to run, of them running `digest`).
fn running(swarm: &Swarm, service: &str, digest: &str) -> Option<(usize, usize)> {
    let tasks = swarm.try_tasks(service)?;
    let meant: Vec<&serde_json::Value> = tasks.iter().filter(|t| t["DesiredState"] == "running").collect();
    let suffix = format!("@{digest}");
    let on = meant
        .iter()
        .filter(|t| {
            t["Status"]["State"] == "running"
                && t["Spec"]["ContainerSpec"]["Image"].as_str().is_some_and(|i| i.ends_with(&suffix))
        })
        .count();
    Some((meant.len(), on))
}

/// The update started at or after `t0` ended in `state`, and every replica runs `digest`.
fn rolling_converged(swarm: &Swarm, service: &str, digest: &str, state: &str, t0: SystemTime) -> bool {
    let Some(inspect) = swarm.try_inspect(service) else { return false };
    let status = &inspect["UpdateStatus"];
    // The engine's timestamps have nanoseconds; t0 is truncated to the second as a margin.
    let t0 = t0 - Duration::from_secs(1);
    let started = status["StartedAt"].as_str().and_then(timestamp::parse).is_some_and(|at| at >= t0);
    started && status["State"] == state && running(swarm, service, digest) == Some((REPLICAS, REPLICAS))
}

/// One color runs every replica on `digest`, the other none.
fn blue_green_converged(swarm: &Swarm, site: &Site, digest: &str) -> bool {
    let colors: Vec<(usize, usize)> =
        site.services().iter().map(|s| running(swarm, s, digest).unwrap_or((0, 0))).collect();
    matches!(colors.as_slice(), [a, b] if (*a == (REPLICAS, REPLICAS) && b.0 == 0) || (*b == (REPLICAS, REPLICAS) && a.0 == 0))
}

/// Tasks of `services` that failed (or were rejected) since `t0`, with their reasons.
fn failed_tasks(swarm: &Swarm, services: &[String], t0: SystemTime) -> Vec<String> {
    let mut errors = Vec::new();
    for service in services {
        for task in swarm.try_tasks(service).unwrap_or_default() {
            let state = task["Status"]["State"].as_str().unwrap_or_default();
            let at = task["Status"]["Timestamp"].as_str().and_then(timestamp::parse);
            if (state == "failed" || state == "rejected") && at.is_some_and(|at| at >= t0) {
                let image = task["Spec"]["ContainerSpec"]["Image"].as_str().unwrap_or_default();
                let short = image.rsplit_once("@sha256:").map_or(image, |(_, d)| &d[..d.len().min(12)]);
                let why = task["Status"]["Err"].as_str().or(task["Status"]["Message"].as_str()).unwrap_or_default();
                errors.push(format!(
                    "{service} task {} slot {} {short} {state} at {}: {why}",
                    task["ID"].as_str().unwrap_or_default().get(..12).unwrap_or_default(),
                    task["Slot"],
                    task["Status"]["Timestamp"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    errors
}

fn secs_between(from: SystemTime, to: SystemTime) -> Option<f64> {
    let s = match to.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    };
    Some((s * 100.0).round() / 100.0)
}
