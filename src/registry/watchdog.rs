//! How slow is too slow: a registry exchange fails when fewer than a minimum of bytes move in
//! a window of time, whether imgctl is waiting for an answer, reading a body or sending one.
//! A per-read timeout alone is defeated by a server sending one byte a minute; a deadline on
//! the whole request would fail large blobs on slow links. This fails neither: a transfer
//! lives as long as it moves.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The least a transfer must move: `bytes` in every window of `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throughput {
    /// Bytes that must move in each window.
    pub bytes: u64,
    /// The window.
    pub window: Duration,
}

impl Default for Throughput {
    /// 64 KiB a minute: about 1 KiB/s, slower than any working link; a registry that has not
    /// begun to answer after a minute fails too.
    fn default() -> Self {
        Self { bytes: 64 * 1024, window: Duration::from_secs(60) }
    }
}

impl fmt::Display for Throughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes in {:?}", self.bytes, self.window)
    }
}

/// The environment variable that sets [`Throughput`] for the `imgctl` commands.
pub const MIN_THROUGHPUT_ENV: &str = "IMGCTL_MIN_THROUGHPUT";

/// Text that is not a throughput (`<bytes>[KiB|MiB]/<seconds>s`, e.g. `64KiB/60s`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{MIN_THROUGHPUT_ENV}={0:?} is not a throughput: write <bytes>[KiB|MiB]/<seconds>s, e.g. 64KiB/60s")]
pub struct InvalidThroughput(pub String);

impl Throughput {
    /// [`MIN_THROUGHPUT_ENV`] when set, else the default.
    pub fn from_env() -> Result<Self, InvalidThroughput> {
        match std::env::var(MIN_THROUGHPUT_ENV) {
            Ok(text) if !text.trim().is_empty() => text.parse(),
            _ => Ok(Self::default()),
        }
    }
}

impl FromStr for Throughput {
    type Err = InvalidThroughput;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidThroughput(text.to_owned());
        let (bytes, window) = text.trim().split_once('/').ok_or_else(invalid)?;
        let (number, unit) = bytes.split_at(bytes.find(|c: char| !c.is_ascii_digit()).unwrap_or(bytes.len()));
        let scale = match unit {
            "" | "B" => 1,
            "KiB" => 1024,
            "MiB" => 1024 * 1024,
            _ => return Err(invalid()),
        };
        let bytes = number.parse::<u64>().ok().and_then(|n| n.checked_mul(scale)).ok_or_else(invalid)?;
        let seconds = window.strip_suffix('s').unwrap_or(window).parse::<u64>().map_err(|_| invalid())?;
        if bytes == 0 || seconds == 0 {
            return Err(invalid());
        }
        Ok(Self { bytes, window: Duration::from_secs(seconds) })
    }
}

/// A transfer moved fewer bytes than its [`Throughput`] asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("fewer than {0} moved")]
pub struct Stalled(pub Throughput);

/// The bytes one transfer has moved, counted where they pass and read by its watchdog.
#[derive(Clone, Debug, Default)]
pub struct Meter(Arc<AtomicU64>);

impl Meter {
    /// Counts `bytes` more.
    pub fn add(&self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Throughput {
    /// Runs `work` while `meter` counts what it moves; fails it when a window passes with fewer
    /// than `bytes` counted. The check runs on its own timer, so a transfer stuck where nobody
    /// polls its body (a peer that stopped reading) fails as surely as one whose peer went
    /// quiet.
    pub async fn watch<T>(&self, meter: &Meter, work: impl Future<Output = T>) -> Result<T, Stalled> {
        let mut windows = tokio::time::interval_at(tokio::time::Instant::now() + self.window, self.window);
        windows.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut counted = meter.total();
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Ok(done),
                _ = windows.tick() => {
                    let now = meter.total();
                    if now - counted < self.bytes {
                        return Err(Stalled(*self));
                    }
                    counted = now;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughputs_as_users_write_them() {
        let parse = |text: &str| text.parse::<Throughput>();
        assert_eq!(parse("64KiB/60s").unwrap(), Throughput { bytes: 65536, window: Duration::from_secs(60) });
        assert_eq!(parse("1MiB/10").unwrap(), Throughput { bytes: 1 << 20, window: Duration::from_secs(10) });
        assert_eq!(parse("100/1s").unwrap(), Throughput { bytes: 100, window: Duration::from_secs(1) });
        for bad in ["", "64KiB", "64kb/60s", "0/1s", "1/0s", "KiB/1s", "1/-1s", "99999999999999999999MiB/1s"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_transfer_lives_as_long_as_it_moves() {
        let rule = Throughput { bytes: 10, window: Duration::from_secs(5) };
        let meter = Meter::default();
        let moving = async {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                meter.add(5);
            }
        };
        assert_eq!(rule.watch(&meter, moving).await, Ok(()), "10 bytes every 4 s pass a 10-byte, 5 s window");

        let trickle = async {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                meter.add(1);
            }
        };
        assert_eq!(rule.watch(&meter, trickle).await, Err(Stalled(rule)));

        let silent = std::future::pending::<()>();
        assert_eq!(rule.watch(&meter, silent).await, Err(Stalled(rule)), "no answer at all");
    }
}
