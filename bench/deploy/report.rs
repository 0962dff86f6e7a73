//! One row per measured run, the tables, the target lines and the JSON files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::wrk::{ClientKind, Summary};

/// One measured deploy, update or hand-run procedure under one load.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub case: String,
    /// `imgctl`, `recreate`, `handrun`, `docker`.
    pub tool: String,
    /// How traffic moved: `nginx-reload`, `haproxy-runtime-api`, `same-port` (nothing in the
    /// proxy changes), `swarm-dns` (nginx resolves the tasks per request).
    pub switch: &'static str,
    pub mode: ClientKind,
    #[serde(flatten)]
    pub load: Summary,
    pub failed: u64,
    pub switch_ms: Option<u64>,
    pub time_to_traffic_ms: Option<u64>,
    pub wall_s: f64,
    pub outcome: String,
    /// A streaming request (`/cgi-bin/stream?N`) held open across the deploy: `whole` or
    /// `cut` (Engine runs of imgctl that move traffic; `None` elsewhere).
    pub long_request: Option<&'static str>,
    /// Swarm runs only.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<SwarmFigures>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SwarmFigures {
    /// Swarm's own `UpdateStatus.CompletedAt`, from the start.
    pub swarm_done_s: Option<f64>,
    /// Until the Engine API showed the update ended and every replica on the expected digest.
    pub converged_s: Option<f64>,
    /// The first answer of the new version through nginx.
    pub first_new_s: Option<f64>,
    pub task_failures: usize,
    /// The failed tasks' reasons.
    pub task_errors: Vec<String>,
    /// How long nginx took to serve the expected version before the run (0: at once).
    pub precheck_wait_ms: u64,
    pub exit: Option<i32>,
    /// `UpdateStatus.State` (blue/green: `color COLOR`).
    pub update_state: String,
    /// imgctl's failure reason, or the docker CLI's `rollback:` line.
    pub reason: Option<String>,
}

fn dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn secs(value: Option<f64>) -> String {
    dash(value.map(|v| format!("{v:.2}")))
}

fn socket(load: &Summary) -> String {
    let s = &load.socket_errors;
    format!("{}/{}/{}/{}", s.connect, s.read, s.write, s.timeout)
}

/// The Engine suite's table.
pub fn engine_table(runs: &[Run]) -> String {
    let mut t = String::new();
    let row = |t: &mut String, cells: [&str; 13]| {
        let _ = writeln!(
            t,
            "{:<24} | {:<8} | {:<19} | {:<10} | {:>8} | {:>6} | {:>7} | {:>13} | {:>9} | {:>8} | {:>6} | {:<5} | {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            cells[7],
            cells[8],
            cells[9],
            cells[10],
            cells[11],
            cells[12]
        );
    };
    row(
        &mut t,
        [
            "case",
            "tool",
            "switch",
            "mode",
            "requests",
            "failed",
            "non-2xx",
            "sock c/r/w/t",
            "switch ms",
            "ttt ms",
            "wall s",
            "long",
            "outcome",
        ],
    );
    let _ = writeln!(t, "{}", "-".repeat(158));
    for r in runs {
        row(
            &mut t,
            [
                &r.case,
                &r.tool,
                r.switch,
                r.mode.name(),
                &r.load.requests.to_string(),
                &r.failed.to_string(),
                &r.load.non_2xx.to_string(),
                &socket(&r.load),
                &dash(r.switch_ms),
                &dash(r.time_to_traffic_ms),
                &format!("{:.2}", r.wall_s),
                r.long_request.unwrap_or("-"),
                &r.outcome,
            ],
        );
    }
    t
}

/// The Swarm suite's table.
pub fn swarm_table(runs: &[Run]) -> String {
    let mut t = String::new();
    let row = |t: &mut String, c: [&str; 16]| {
        let _ = writeln!(
            t,
            "{:<20} | {:<6} | {:<12} | {:<10} | {:>6} | {:>6} | {:>7} | {:>11} | {:>6} | {:>6} | {:>6} | {:>7} | {:>6} | {:>6} | {:>5} | {}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]
        );
    };
    row(
        &mut t,
        [
            "case",
            "tool",
            "switch",
            "mode",
            "reqs",
            "failed",
            "non-2xx",
            "sock c/r/w/t",
            "wall s",
            "done s",
            "conv s",
            "1st new",
            "sw ms",
            "ttt ms",
            "task!",
            "outcome",
        ],
    );
    let _ = writeln!(t, "{}", "-".repeat(170));
    for r in runs {
        let s = r.swarm.as_ref().expect("a swarm run");
        row(
            &mut t,
            [
                &r.case,
                &r.tool,
                r.switch,
                r.mode.name(),
                &r.load.requests.to_string(),
                &r.failed.to_string(),
                &r.load.non_2xx.to_string(),
                &socket(&r.load),
                &format!("{:.2}", r.wall_s),
                &secs(s.swarm_done_s),
                &secs(s.converged_s),
                &secs(s.first_new_s),
                &dash(r.switch_ms),
                &dash(r.time_to_traffic_ms),
                &s.task_failures.to_string(),
                &r.outcome,
            ],
        );
    }
    t
}

/// One target: what it says, whether it was met, and the figure behind it.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub met: bool,
    pub detail: String,
}

impl Target {
    pub fn line(&self) -> String {
        format!("{}: {} ({})", if self.met { "PASS" } else { "FAIL" }, self.name, self.detail)
    }
}

/// `$BENCH_OUT/NAME.json`.
pub fn write_json(
    out: &Path,
    name: &str,
    method: String,
    extra: serde_json::Value,
    runs: &[Run],
    targets: &[Target],
) -> PathBuf {
    let mut doc = serde_json::json!({
        "benchmark": name,
        "date": shell(&["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "host": {
            "kernel": shell(&["uname", "-sr"]),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "loadavg_at_end": loadavg(),
        },
        "tools": {
            "imgctl": crate::common::IMGCTL,
            "docker_engine": shell(&["docker", "version", "--format", "{{.Server.Version}}"]),
            "docker_cli": shell(&["docker", "version", "--format", "{{.Client.Version}}"]),
            "nginx": shell(&["/usr/sbin/nginx", "-v"]).trim_start_matches("nginx version: nginx/").to_owned(),
            "haproxy": shell(&["/usr/sbin/haproxy", "-v"]).split_whitespace().nth(2).unwrap_or_default().to_owned(),
            "wrk": shell(&["wrk", "-v"]).split_whitespace().nth(1).unwrap_or_default().to_owned(),
        },
        "method": method,
        "runs": runs,
        "targets": targets,
    });
    if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
        doc.extend(extra.clone());
    }
    std::fs::create_dir_all(out).unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
    let path = out.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap() + "\n")
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A tool's one-line answer (stdout, else stderr: nginx -v prints there), trimmed.
fn shell(argv: &[&str]) -> String {
    let Ok(out) = Command::new(argv[0]).args(&argv[1..]).output() else { return String::new() };
    let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
    String::from_utf8_lossy(&text).lines().next().unwrap_or_default().trim().to_owned()
}

/// Seconds to two decimals, as the tables print them.
pub fn round2(seconds: f64) -> f64 {
    (seconds * 100.0).round() / 100.0
}
