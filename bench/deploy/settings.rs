//! The knobs, from the environment (as bench/deploy.sh and bench/deploy-swarm.sh took them).

use std::path::PathBuf;
use std::time::Duration;

use crate::wrk::ClientKind;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Load before and after each deploy (`SETTLE`, seconds).
    pub settle: Duration,
    /// `KEEPALIVE=0`: only the `Connection: close` runs.
    pub keep_alive: bool,
    /// `WRK_THREADS`, `WRK_CONNECTIONS`; None: the suite's default.
    pub wrk_threads: Option<u32>,
    pub wrk_connections: Option<u32>,
    /// `PROXIES`: which switches the Engine suite's imgctl cases run behind.
    pub proxies: Vec<ProxyKind>,
    /// `HEALTH_TIMEOUT`: the swarm services' healthcheck timeout, as compose writes it.
    pub health_timeout: String,
    /// `BENCH_OUT`: where deploy.json and deploy-swarm.json go.
    pub out: PathBuf,
    /// `BENCH_LOGS`: a directory for each run's wrk report and imgctl/docker output.
    pub logs: Option<PathBuf>,
    /// `BENCH_ENFORCE=1`: exit 1 when a target is missed.
    pub enforce: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    Nginx,
    Haproxy,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let settle = match var("SETTLE") {
            None => Duration::from_secs(1),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 60.0)
                .map(Duration::from_secs_f64)
                .ok_or(format!("SETTLE must be a number of seconds (0 to 60), not {v:?}"))?,
        };
        let flag = |name: &str, default: bool| match var(name).as_deref() {
            None => Ok(default),
            Some("1") => Ok(true),
            Some("0") => Ok(false),
            Some(v) => Err(format!("{name} must be 0 or 1, not {v:?}")),
        };
        let count = |name: &str| match var(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .map(Some)
                .ok_or(format!("{name} must be a whole number from 1 to 256, not {v:?}")),
        };
        let (wrk_threads, wrk_connections) = (count("WRK_THREADS")?, count("WRK_CONNECTIONS")?);
        if let (Some(t), Some(c)) = (wrk_threads, wrk_connections)
            && c < t
        {
            return Err("WRK_CONNECTIONS must be at least WRK_THREADS".to_owned());
        }
        let proxies = match var("PROXIES") {
            None => vec![ProxyKind::Nginx, ProxyKind::Haproxy],
            Some(v) => v
                .split(',')
                .map(|p| match p.trim() {
                    "nginx" => Ok(ProxyKind::Nginx),
                    "haproxy" => Ok(ProxyKind::Haproxy),
                    other => Err(format!("PROXIES is a list of nginx and haproxy, not {other:?}")),
                })
                .collect::<Result<_, _>>()?,
        };
        let health_timeout = var("HEALTH_TIMEOUT").unwrap_or_else(|| "1s".to_owned());
        let digits = health_timeout.trim_end_matches("ms").trim_end_matches('s');
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || !(health_timeout.ends_with("ms") || health_timeout.ends_with('s'))
        {
            return Err(format!("HEALTH_TIMEOUT must be like 1s or 500ms, not {health_timeout:?}"));
        }
        Ok(Self {
            settle,
            keep_alive: flag("KEEPALIVE", true)?,
            wrk_threads,
            wrk_connections,
            proxies,
            health_timeout,
            out: var("BENCH_OUT").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from),
            logs: var("BENCH_LOGS").map(PathBuf::from),
            enforce: flag("BENCH_ENFORCE", false)?,
        })
    }

    /// The client kinds each good case runs with, in order.
    pub fn kinds(&self) -> Vec<ClientKind> {
        if self.keep_alive { vec![ClientKind::Close, ClientKind::KeepAlive] } else { vec![ClientKind::Close] }
    }
}
