//! What the proxy serves: one probe, a wait for a version, and a poller for the first answer
//! of a new version (its requests are not in wrk's counts). Probes are `GET /` on a fresh
//! connection with `Connection: close` (the harness's strict HTTP/1.1 reader).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::load;
use crate::interrupt;

/// The trimmed body of `GET /`, or what went wrong.
pub fn serving(addr: SocketAddr) -> String {
    match load::get(addr, "/") {
        Ok(response) if response.status == 200 => response.text(),
        Ok(response) => response.status_line,
        Err(e) => format!("error: {e}"),
    }
}

/// Panics unless the proxy serves `want` now.
pub fn expect_serving(addr: SocketAddr, want: &str, what: &str) {
    let got = serving(addr);
    assert_eq!(got, want, "{what}: the proxy on {addr} serves {got:?}, expected {want:?}");
}

/// Waits up to `max` until the proxy serves `want`; returns how long that took. Panics after.
pub fn await_serving(addr: SocketAddr, want: &str, max: Duration, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        if serving(addr) == want {
            return started.elapsed();
        }
        if started.elapsed() > max {
            expect_serving(addr, want, what);
        }
        interrupt::sleep(Duration::from_millis(50));
    }
}

/// Polls every 10 ms until the proxy answers `want`; the time since `t0` it first did.
pub struct FirstAnswer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Option<Duration>>>,
}

impl FirstAnswer {
    pub fn start(addr: SocketAddr, want: &str, t0: Instant, max: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let want = want.to_owned();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) && t0.elapsed() < max {
                if load::get(addr, "/").is_ok_and(|r| r.status == 200 && r.text() == want) {
                    return Some(t0.elapsed());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        });
        Self { stop, thread: Some(thread) }
    }

    /// Waits up to `grace` for the answer, then stops polling.
    pub fn finish(mut self, grace: Duration) -> Option<Duration> {
        let thread = self.thread.take().expect("a running poller");
        let end = Instant::now() + grace;
        while !thread.is_finished() && Instant::now() < end {
            interrupt::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::SeqCst);
        thread.join().ok().flatten()
    }
}

impl Drop for FirstAnswer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback port nothing listens on, from below the kernel's ephemeral range: under load
/// every request opens two or three loopback connections, and a port the kernel hands out as
/// the source port of one of them cannot be bound until that connection is gone.
pub fn fixed_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (base, span) = if low > 11000 { (10000, low - 10000) } else { (1024, low.saturating_sub(1024).max(1)) };
    loop {
        let seed = crate::common::random_hex(2);
        let port = base + u16::from_str_radix(&seed, 16).unwrap() % span;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        {
            return port;
        }
    }
}
