//! A real haproxy (Debian's, 2.6) on a loopback port, run by the test in the foreground
//! (`-db`) with its own directory and stats socket, never the system service. Deploys switch
//! its traffic over the stats socket; its backend is a `server-template` pool, every slot in
//! `maint` until a switch points it somewhere.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::random_hex;
use super::registry::free_port;
use super::require;

const HAPROXY: &str = "/usr/sbin/haproxy";

pub struct Haproxy {
    /// Config, socket and logs live here.
    pub dir: PathBuf,
    pub port: u16,
    /// The stats socket (`level admin`).
    pub socket: PathBuf,
    /// A second stats socket at `level operator`: it shows servers but refuses changes.
    pub operator_socket: PathBuf,
    pub backend: String,
    pub conf: PathBuf,
    child: Child,
}

impl Haproxy {
    /// Starts haproxy with a backend of `slots` template slots (`app1`..), all in `maint`, so
    /// requests answer 503 until a switch points a slot at a server.
    pub fn start(backend: &str, slots: usize) -> Self {
        require("haproxy", "haproxy");
        let dir = std::env::temp_dir().join(format!("imgctl-haproxy-{}-{}", std::process::id(), random_hex(4)));
        fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("admin.sock");
        let operator_socket = dir.join("operator.sock");
        let conf = dir.join("haproxy.cfg");
        let mut last_log = String::new();
        // free_port() can lose a race with another test between its probe and haproxy's bind.
        for _ in 0..3 {
            let port = free_port();
            fs::write(&conf, config(&socket, &operator_socket, port, backend, slots)).unwrap();
            let mut child = spawn(&dir, &conf);
            if wait_ready(&mut child, &socket) {
                let backend = backend.to_owned();
                return Self { dir, port, socket, operator_socket, backend, conf, child };
            }
            stop(&mut child);
            last_log = logs(&dir);
        }
        let _ = fs::remove_dir_all(&dir);
        panic!("haproxy did not start; its output:\n{last_log}");
    }

    /// Stops haproxy and starts it again with the same config: it comes back with every slot
    /// in `maint`, having forgotten every runtime change.
    pub fn restart(&mut self) {
        stop(&mut self.child);
        let _ = fs::remove_file(&self.socket);
        let _ = fs::remove_file(&self.operator_socket);
        self.child = spawn(&self.dir, &self.conf);
        assert!(wait_ready(&mut self.child, &self.socket), "haproxy did not start again:\n{}", self.logs());
    }

    /// The process id: unchanged while nothing restarted or reloaded haproxy.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One runtime command's answer.
    pub fn command(&self, line: &str) -> String {
        let mut stream = UnixStream::connect(&self.socket).expect("the stats socket");
        stream.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// What haproxy printed (warnings, alerts).
    pub fn logs(&self) -> String {
        logs(&self.dir)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        stop(&mut self.child);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The minimal configuration the README gives, on loopback (and an operator socket).
fn config(socket: &Path, operator: &Path, port: u16, backend: &str, slots: usize) -> String {
    format!(
        "# Written by tests/it/common/haproxy.rs.\n\
         global\n\
         \x20   stats socket {socket} mode 600 level admin\n\
         \x20   stats socket {operator} mode 600 level operator\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 30s\n\
         \x20   timeout server 30s\n\
         \x20   timeout http-keep-alive 30s\n\
         frontend web\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   default_backend {backend}\n\
         backend {backend}\n\
         \x20   balance roundrobin\n\
         \x20   server-template app 1-{slots} 127.0.0.1:1 disabled\n",
        socket = socket.display(),
        operator = operator.display(),
    )
}

fn spawn(dir: &Path, conf: &Path) -> Child {
    Command::new(HAPROXY)
        .arg("-db")
        .arg("-f")
        .arg(conf)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(dir.join("stdout.log")).unwrap())
        .stderr(fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .expect("starting haproxy")
}

/// SIGTERM (a hard stop: haproxy closes every connection), then SIGKILL after 5 s.
fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// True once the stats socket answers; false if haproxy exited first or 10 s passed.
fn wait_ready(child: &mut Child, socket: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut stream) = UnixStream::connect(socket) {
            let mut answer = String::new();
            if stream.write_all(b"show info\n").is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.contains("Name: HAProxy")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn logs(dir: &Path) -> String {
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("stdout:\n{}\nstderr:\n{}", read("stdout.log"), read("stderr.log"))
}

/// A tiny HTTP/1.1 server on loopback answering every request with `body` (keep-alive), for
/// switch tests that need no container.
pub struct Answerer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Answerer {
    pub fn start(body: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, body) = (Arc::clone(&stop), body.to_owned());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let body = body.clone();
                        std::thread::spawn(move || serve(stream, &body));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { addr, stop, thread: Some(thread) }
    }
}

impl Drop for Answerer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: std::net::TcpStream, body: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            buffer.drain(..end + 4);
            let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            if stream.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}
