//! The deploy benchmarks, on the integration tests' harness (tests/it/common): the same
//! registry and busybox images, nginx, haproxy, swarm and nginx container the tests start and
//! stop, each behind a Drop guard, so a failure, a panic or Ctrl-C in the middle removes what
//! the run started. wrk is the load.
//!
//! ```sh
//! cargo bench --bench deploy -- --bench            # both suites
//! cargo bench --bench deploy -- --bench deploy     # the Engine suite (bench/deploy.sh)
//! cargo bench --bench deploy -- --bench swarm      # the Swarm suite (bench/deploy-swarm.sh)
//! ```
//!
//! Without `--bench` (what `cargo test --all-targets` runs) it measures nothing: it checks
//! its own parsers and exits 0. bench/README.md describes the cases, knobs and output.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark's figures are its output

// The harness allows its own dead code: the bench uses part of it.
#[path = "../../tests/it/common/mod.rs"]
mod common;

mod engine;
mod interrupt;
mod probe;
mod report;
mod settings;
mod swarm;
mod timestamp;
mod wrk;

use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use common::TestHome;
use common::web::WebImages;
use engine::EngineSuite;
use report::{Run, Target};
use settings::{ProxyKind, Settings};
use swarm::SwarmSuite;
use wrk::ClientKind;

/// imgctl's switch behind haproxy (runtime API calls only).
const HAPROXY_SWITCH_MS: u64 = 50;
/// imgctl's switch behind nginx (write, `nginx -t`, reload).
const NGINX_SWITCH_MS: u64 = 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Suite {
    Engine,
    Swarm,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test` runs bench targets without `--bench` (and passes its own flags, such as
        // --include-ignored): not a benchmark run.
        wrk::self_check();
        timestamp::self_check();
        eprintln!("deploy bench: parsers checked; `cargo bench --bench deploy` runs the benchmarks");
        return ExitCode::SUCCESS;
    }
    let mut suites = Vec::new();
    for arg in args.iter().filter(|a| !a.starts_with('-')) {
        match arg.as_str() {
            "deploy" | "engine" => suites.push(Suite::Engine),
            "swarm" | "deploy-swarm" => suites.push(Suite::Swarm),
            other => {
                eprintln!("deploy bench: unknown suite {other:?} (deploy, swarm)");
                return ExitCode::from(2);
            }
        }
    }
    if suites.is_empty() {
        suites = vec![Suite::Engine, Suite::Swarm];
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("deploy bench: {e}");
            return ExitCode::from(2);
        }
    };
    interrupt::install();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&settings, &suites))) {
        Ok(code) => code,
        Err(payload) if payload.is::<interrupt::Interrupted>() => {
            eprintln!("deploy bench: interrupted; everything it started is removed");
            ExitCode::from(130)
        }
        // The panic message is out; every guard has dropped.
        Err(_) => ExitCode::FAILURE,
    }
}

fn run(settings: &Settings, suites: &[Suite]) -> ExitCode {
    for (program, package) in [
        ("docker", "docker.io"),
        ("wrk", "wrk"),
        ("nginx", "nginx-light"),
        ("haproxy", "haproxy"),
        ("docker-registry", "docker-registry"),
        ("busybox", "busybox-static"),
        ("htpasswd", "apache2-utils"),
    ] {
        common::require(program, package);
    }
    if IMGCTL_IS_DEBUG {
        eprintln!("deploy bench: warning: {} is a debug build (run it with cargo bench)", common::IMGCTL);
    }
    if let Some(dir) = &settings.logs {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating BENCH_LOGS {}: {e}", dir.display()));
    }
    let names = Names::new();
    eprintln!("building and pushing v1, v2, v3, bad...");
    let images = WebImages::build("bench");
    let mut home = TestHome::new("bench");
    images.login(&mut home);
    // Dropped before the images: whatever a failed run left under this run's names.
    let _containers = Containers(names.prefix.clone());
    let logs = Logs::new(settings.logs.clone(), home.dir.join("runs"));
    let mut missed = false;

    if suites.contains(&Suite::Engine) {
        let mut suite = EngineSuite::new(settings, &images, &home, &names, &logs);
        suite.run();
        println!();
        print!("{}", report::engine_table(&suite.runs));
        println!(
            "(failed = non-2xx + socket errors, from wrk over each deploy plus {:.1} s before and after; switch = how",
            settings.settle.as_secs_f64()
        );
        println!(
            " traffic moved; ttt = time to traffic: imgctl's time_to_traffic_ms (health gates excluded); for the peers,"
        );
        println!(
            " from the start of the procedure to the first answer of the new version through nginx; peers pull first)"
        );
        println!();
        let targets = engine_targets(&suite.runs, &settings.proxies);
        missed |= print_targets(&targets);
        let path =
            report::write_json(&settings.out, "deploy", suite.method(), serde_json::json!({}), &suite.runs, &targets);
        println!("results: {}", path.display());
    }
    if suites.contains(&Suite::Swarm) {
        let mut suite = SwarmSuite::new(settings, &images, &home, &names, &logs);
        suite.run();
        println!();
        print!("{}", report::swarm_table(&suite.runs));
        println!(
            "(wrk through nginx over each update plus {:.1} s before and after; failed = non-2xx + socket errors;",
            settings.settle.as_secs_f64()
        );
        println!(
            " wall = the command's run time; done = swarm's UpdateStatus.CompletedAt, from the start; conv = until the"
        );
        println!(
            " Engine API, polled every 100 ms, shows the update completed (bad: rolled back) and all 4 replicas on the"
        );
        println!(
            " expected digest (blue/green: one color all, the other none); 1st new = first answer of the new version"
        );
        println!(
            " through nginx; sw/ttt = imgctl's switch_ms and time_to_traffic_ms; task! = tasks that failed during the run)"
        );
        println!();
        let targets = vec![close_target(&suite.runs, "on swarm, imgctl")];
        missed |= print_targets(&targets);
        let extra = serde_json::json!({
            "health_timeout": settings.health_timeout,
            "service_spec": suite.service_spec,
            "loadavg_at_start": suite.loadavg_at_start,
        });
        let path = report::write_json(&settings.out, "deploy-swarm", suite.method(), extra, &suite.runs, &targets);
        println!("results: {}", path.display());
    }
    if settings.enforce && missed {
        eprintln!("deploy bench: target missed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

const IMGCTL_IS_DEBUG: bool = const_contains(common::IMGCTL, "/debug/");

const fn const_contains(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let mut i = 0;
    while i + n.len() <= h.len() {
        let mut j = 0;
        while j < n.len() && h[i + j] == n[j] {
            j += 1;
        }
        if j == n.len() {
            return true;
        }
        i += 1;
    }
    false
}

fn print_targets(targets: &[Target]) -> bool {
    for target in targets {
        println!("{}", target.line());
    }
    targets.iter().any(|t| !t.met)
}

/// imgctl: 0 failed requests with `Connection: close` in every case.
fn close_target(runs: &[Run], who: &str) -> Target {
    let close: Vec<&Run> = runs.iter().filter(|r| r.tool == "imgctl" && r.mode == ClientKind::Close).collect();
    let failed: u64 = close.iter().map(|r| r.failed).sum();
    Target {
        name: format!("{who} 0 failed requests with Connection: close in every case"),
        met: failed == 0 && !close.is_empty(),
        detail: format!("{failed} failed in {} runs", close.len()),
    }
}

fn engine_targets(runs: &[Run], proxies: &[ProxyKind]) -> Vec<Target> {
    let mut targets = vec![close_target(runs, "imgctl")];
    let streams: Vec<&str> = runs.iter().filter_map(|r| r.long_request).collect();
    let whole = streams.iter().filter(|s| **s == "whole").count();
    targets.push(Target {
        name: "a long request open across each deploy completes".to_owned(),
        met: whole == streams.len() && !streams.is_empty(),
        detail: format!("{whole} of {} whole", streams.len()),
    });
    let imgctl = |switch: &'static str| runs.iter().filter(move |r| r.tool == "imgctl" && r.switch == switch);
    let max_switch = |switch: &'static str| imgctl(switch).filter_map(|r| r.switch_ms).max();
    if proxies.contains(&ProxyKind::Haproxy) {
        let behind: Vec<&Run> = imgctl("haproxy-runtime-api").collect();
        let failed: u64 = behind.iter().map(|r| r.failed).sum();
        targets.push(Target {
            name: "behind haproxy, imgctl 0 failed requests for close and keep-alive clients in every case".to_owned(),
            met: failed == 0 && !behind.is_empty(),
            detail: format!("{failed} failed in {} runs", behind.len()),
        });
        let max = max_switch("haproxy-runtime-api");
        targets.push(Target {
            name: format!("behind haproxy, imgctl's switch under {HAPROXY_SWITCH_MS} ms"),
            met: max.is_some_and(|m| m < HAPROXY_SWITCH_MS),
            detail: format!("highest {} ms", max.map_or("-".to_owned(), |m| m.to_string())),
        });
    }
    if proxies.contains(&ProxyKind::Nginx) {
        let max = max_switch("nginx-reload");
        targets.push(Target {
            name: format!("behind nginx, imgctl's switch under {NGINX_SWITCH_MS} ms"),
            met: max.is_some_and(|m| m < NGINX_SWITCH_MS),
            detail: format!("highest {} ms", max.map_or("-".to_owned(), |m| m.to_string())),
        });
    }
    targets
}

/// The names of this run: every service, container and upstream is `imgctl-bench-RUNID-...`.
struct Names {
    prefix: String,
}

impl Names {
    fn new() -> Self {
        Self { prefix: format!("imgctl-bench-{}", common::random_hex(3)) }
    }

    fn name(&self, key: &str) -> String {
        format!("{}-{key}", self.prefix)
    }
}

/// Each run's scratch files (in the throwaway HOME) and, with `BENCH_LOGS`, the ones kept.
struct Logs {
    keep: Option<PathBuf>,
    scratch: PathBuf,
    seq: Cell<usize>,
}

impl Logs {
    fn new(keep: Option<PathBuf>, scratch: PathBuf) -> Self {
        fs::create_dir_all(&scratch).unwrap();
        Self { keep, scratch, seq: Cell::new(0) }
    }

    /// A fresh base path for one child's files: `BASE.out`, `BASE.err`, `BASE.wrk.txt`.
    fn scratch(&self, what: &str) -> PathBuf {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        self.scratch.join(format!("{n:03}-{what}"))
    }

    /// With `BENCH_LOGS`: the run's wrk report and the tool's output, as
    /// `NN-TOOL-CASE-SWITCH-MODE.{wrk.txt,json,err}`.
    fn keep(&self, index: usize, run: &Run, base: &Path) {
        let Some(dir) = &self.keep else { return };
        let case: String = run.case.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let name = format!("{index:02}-{}-{case}-{}-{}", run.tool, run.switch, run.mode.name());
        for (from, to) in [("wrk.txt", "wrk.txt"), ("out", "json"), ("err", "err")] {
            let _ = fs::copy(base.with_extension(from), dir.join(format!("{name}.{to}")));
        }
    }
}

/// Removes every container whose `KIND` (`label`, `name`) filter matches `value`.
fn remove_containers(kind: &str, value: &str) {
    let listed = Command::new("docker").args(["ps", "-aq", "--filter", &format!("{kind}={value}")]).output();
    let ids = listed.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).output();
    }
}

/// Every container named with this run's prefix (docker's name filter matches a part).
struct Containers(String);

impl Drop for Containers {
    fn drop(&mut self) {
        remove_containers("name", &format!("{}-", self.0));
    }
}
