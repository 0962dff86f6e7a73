//! The network between imgctl and the hosts that are not on loopback, played by an HTTP proxy
//! inside the test process (imgctl is pointed at it with `http_proxy`/`https_proxy`, and
//! `no_proxy` keeps loopback direct). What imgctl sends in plain HTTP, the wiretap reads: it
//! answers like a registry (401 Basic, then a token) and records every credential. An HTTPS
//! request reaches it only as a `CONNECT`, which it records and refuses.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use super::{read_request, respond};

/// What crossed the wire.
#[derive(Default)]
pub struct Heard {
    /// Plain-HTTP requests, as `METHOD http://host/path`.
    pub plain: Vec<String>,
    /// Plain-HTTP requests that carried an Authorization header (credentials in clear).
    pub credentials: Vec<String>,
    /// `CONNECT host:port` tunnels asked for (HTTPS; nothing readable).
    pub tunnels: Vec<String>,
}

pub struct Wiretap {
    /// `http://127.0.0.1:PORT`, for `http_proxy` and `https_proxy`.
    pub proxy: String,
    pub heard: Arc<Mutex<Heard>>,
    stop: Arc<AtomicBool>,
    addr: String,
}

impl Wiretap {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let heard = Arc::new(Mutex::new(Heard::default()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (heard, stop) = (heard.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                    let heard = heard.clone();
                    thread::spawn(move || listen(&mut stream, &heard));
                }
            });
        }
        Self { proxy: format!("http://{addr}"), heard, stop, addr }
    }

    /// The environment that routes every host but loopback through the wiretap.
    pub fn env(&self) -> [(&'static str, String); 3] {
        [("http_proxy", self.proxy.clone()), ("https_proxy", self.proxy.clone()), ("no_proxy", "127.0.0.1".into())]
    }
}

impl Drop for Wiretap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn listen(stream: &mut TcpStream, heard: &Mutex<Heard>) {
    let Some(request) = read_request(stream) else { return };
    let line = format!("{} {}", request.method, request.path);
    if request.method == "CONNECT" {
        heard.lock().unwrap().tunnels.push(request.path);
        return respond(stream, 502, &[], b"");
    }
    let credentialed = request.headers.contains_key("authorization");
    {
        let mut heard = heard.lock().unwrap();
        heard.plain.push(line.clone());
        if credentialed {
            heard.credentials.push(line);
        }
    }
    if credentialed {
        respond(stream, 200, &[], br#"{"token":"overheard"}"#)
    } else {
        respond(stream, 401, &[("WWW-Authenticate", "Basic realm=\"wiretap\"".into())], b"")
    }
}
