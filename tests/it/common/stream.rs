//! A client holding one long streaming response open (`/cgi-bin/stream?N` of the web images:
//! a line a second for N seconds, then `end`) in a thread of its own, so a test can deploy
//! meanwhile and then check the whole response arrived.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the client got.
#[derive(Debug)]
pub struct Streamed {
    /// The status line (empty when none came).
    pub status: String,
    /// The body as far as it came.
    pub body: String,
    /// The connection ended without an error (EOF, not a reset or a timeout).
    pub clean_end: bool,
    /// From connecting to the end.
    pub took: Duration,
    /// When it ended.
    pub ended: Instant,
}

impl Streamed {
    /// The whole response of `stream?seconds`: 200, every part, then `end`.
    pub fn complete(&self, seconds: u32) -> bool {
        let parts: Vec<String> = (1..=seconds).map(|i| format!("part {i}")).collect();
        let lines: Vec<&str> = self.body.lines().collect();
        self.status.contains(" 200 ") && self.clean_end && lines.len() == parts.len() + 1 && lines.ends_with(&["end"])
    }
}

/// A streaming request in flight.
pub struct Stream {
    handle: JoinHandle<Streamed>,
}

impl Stream {
    /// Sends `GET /cgi-bin/stream?seconds` to `addr` (HTTP/1.0: the body ends when the
    /// connection does) and reads until it ends, at most `seconds` + 60 s. Returns once the
    /// first part arrived, so the request is known to be in flight on a replica.
    pub fn start(addr: SocketAddr, seconds: u32) -> Self {
        let (first, arrived) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut got = Vec::new();
            let mut clean_end = false;
            if let Ok(mut conn) = TcpStream::connect(addr) {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(u64::from(seconds) + 60)));
                let request = format!("GET /cgi-bin/stream?{seconds} HTTP/1.0\r\nHost: test\r\n\r\n");
                if conn.write_all(request.as_bytes()).is_ok() {
                    let mut buf = [0u8; 4096];
                    let mut told = false;
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) => {
                                clean_end = true;
                                break;
                            }
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                            Err(_) => break,
                        }
                        if !told && String::from_utf8_lossy(&got).contains("part 1") {
                            told = first.send(()).is_ok();
                        }
                    }
                }
            }
            let text = String::from_utf8_lossy(&got).into_owned();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            Streamed {
                status: head.lines().next().unwrap_or_default().to_owned(),
                body: body.to_owned(),
                clean_end,
                took: started.elapsed(),
                ended: Instant::now(),
            }
        });
        // The first part within 10 s, or the stream failed to start (the join says how).
        let _ = arrived.recv_timeout(Duration::from_secs(10));
        Self { handle }
    }

    /// Waits for the response to end.
    pub fn finish(self) -> Streamed {
        self.handle.join().expect("the stream client panicked")
    }
}
