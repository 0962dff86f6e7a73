//! The load: wrk (Debian's 4.1), a client nobody here wrote, closed-loop for the whole of a
//! deploy, with `Connection: close` (a new connection per request) or keep-alive (its
//! default). wrk never resends a request: a keep-alive request written on a connection the
//! proxy closes at that moment is a read error, as a POST would be for any client. SIGINT ends
//! it early with its full summary, which is parsed here.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::interrupt;

/// A run nobody stopped still ends: longer than any deploy.
const MAX_RUN: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    /// `Connection: close`: one connection per request.
    Close,
    /// wrk's default: connections reused, never a request resent.
    KeepAlive,
}

impl ClientKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Close => "close",
            Self::KeepAlive => "keep-alive",
        }
    }
}

/// wrk's summary of one run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Complete answers, whatever their status.
    pub requests: u64,
    /// Answers with status 400 or above ("Non-2xx or 3xx responses").
    pub non_2xx: u64,
    pub socket_errors: SocketErrors,
    /// How long the load ran.
    pub load_s: f64,
    /// The 99th percentile latency.
    pub p99_ms: Option<f64>,
}

/// wrk's `Socket errors:` line. A timeout is an answer slower than wrk's 2 s.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SocketErrors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
}

impl Summary {
    pub fn failed(&self) -> u64 {
        let s = &self.socket_errors;
        self.non_2xx + s.connect + s.read + s.write + s.timeout
    }
}

/// A wrk process running against one URL; killed on drop if nobody stopped it.
pub struct Wrk {
    child: Option<Child>,
    pub report: PathBuf,
}

impl Wrk {
    pub fn start(addr: SocketAddr, kind: ClientKind, threads: u32, connections: u32, report: PathBuf) -> Self {
        let mut command = Command::new(common_wrk());
        command
            .arg(format!("-t{threads}"))
            .arg(format!("-c{connections}"))
            .arg(format!("-d{}s", MAX_RUN.as_secs()))
            .arg("--latency");
        if kind == ClientKind::Close {
            command.args(["-H", "Connection: close"]);
        }
        let file = fs::File::create(&report).expect("a file for wrk's report");
        let err = file.try_clone().expect("a second handle on wrk's report");
        let child = command
            .arg(format!("http://{addr}/"))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("starting wrk");
        Self { child: Some(child), report }
    }

    /// SIGINT: wrk stops and prints its summary.
    pub fn stop(mut self) -> Summary {
        let mut child = self.child.take().expect("a running wrk");
        let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
        let status = interrupt::wait(&mut child, Duration::from_secs(10));
        let text = fs::read_to_string(&self.report).unwrap_or_default();
        match status {
            Some(status) if status.success() => {}
            _ => panic!("wrk ended with {status:?}:\n{text}"),
        }
        parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
    }
}

impl Drop for Wrk {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn common_wrk() -> PathBuf {
    crate::common::require("wrk", "wrk")
}

/// Parses wrk's summary (the lines after `Running ...`).
pub fn parse(text: &str) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let mut found = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            // `  1163 requests in 1.10s, 590.59KB read`
            [n, "requests", "in", duration, ..] => {
                summary.requests = number(n)?;
                summary.load_s = seconds(duration.trim_end_matches(','))?;
                found = true;
            }
            // `  Non-2xx or 3xx responses: 12`
            ["Non-2xx", "or", "3xx", "responses:", n] => summary.non_2xx = number(n)?,
            // `  Socket errors: connect 0, read 3, write 0, timeout 0`
            ["Socket", "errors:", "connect", c, "read", r, "write", w, "timeout", t] => {
                let n = |s: &str| number(s.trim_end_matches(','));
                summary.socket_errors = SocketErrors { connect: n(c)?, read: n(r)?, write: n(w)?, timeout: n(t)? };
            }
            // `     99%    8.00ms` (the latency distribution, with --latency)
            ["99%", latency] => summary.p99_ms = Some((seconds(latency)? * 1e5).round() / 100.0),
            _ => {}
        }
    }
    if found { Ok(summary) } else { Err("no wrk summary (no `N requests in` line)".to_owned()) }
}

fn number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a count in wrk's summary: {text:?}"))
}

/// wrk's durations: `812.00us`, `8.00ms`, `1.10s`, `2.00m`, `1.00h`.
fn seconds(text: &str) -> Result<f64, String> {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse().map_err(|_| format!("not a duration in wrk's summary: {text:?}"))?;
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit in wrk's summary: {text:?}")),
    };
    Ok(value * scale)
}

/// What `cargo test` runs of this bench (main without `--bench`): the parser against summaries
/// wrk 4.1 printed here, and against text that is not one.
pub fn self_check() {
    let interrupted = "Running 5m test @ http://127.0.0.1:41234/\n  2 threads and 8 connections\n  \
        Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     3.21ms    2.84ms  48.25ms   88.12%\n    \
        Req/Sec     1.33k   210.31     1.90k    70.00%\n  Latency Distribution\n     50%    2.50ms\n     \
        75%    3.90ms\n     90%    6.10ms\n     99%   812.00us\n  8791 requests in 3.31s, 1.27MB read\n  \
        Socket errors: connect 0, read 3, write 1, timeout 2\n  Non-2xx or 3xx responses: 12\n\
        Requests/sec:   2655.89\nTransfer/sec:    393.71KB\n";
    let got = parse(interrupted).expect("a summary");
    let want = Summary {
        requests: 8791,
        non_2xx: 12,
        socket_errors: SocketErrors { connect: 0, read: 3, write: 1, timeout: 2 },
        load_s: 3.31,
        p99_ms: Some(0.81),
    };
    assert_eq!(got.requests, want.requests);
    assert_eq!(got.non_2xx, want.non_2xx);
    assert_eq!(got.socket_errors, want.socket_errors);
    assert!((got.load_s - want.load_s).abs() < 1e-9, "{got:?}");
    assert!((got.p99_ms.unwrap() - 0.81).abs() < 1e-9, "{got:?}");
    assert_eq!(got.failed(), 18);

    // A clean run has neither error line; a long one reports minutes.
    let clean = "  1163 requests in 1.00m, 590.59KB read\nRequests/sec:   19.38\n";
    let got = parse(clean).expect("a summary");
    assert_eq!((got.requests, got.failed(), got.p99_ms), (1163, 0, None));
    assert!((got.load_s - 60.0).abs() < 1e-9);

    // wrk that could not connect at all prints no summary: an error, never zero failures.
    assert!(parse("unable to connect to 127.0.0.1:9 Connection refused\n").is_err());
    assert!(parse("  12x requests in 1.00s, 1KB read\n").is_err());
    assert!(parse("  12 requests in 1.00parsec, 1KB read\n").is_err());
}
