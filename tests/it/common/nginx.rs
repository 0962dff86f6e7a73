//! A real nginx (Debian nginx-light) on a loopback port, run by the test as its own master
//! process with its own prefix directory, never the system service. Deploys switch its
//! traffic by rewriting the upstream file and running the test and reload commands.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::random_hex;
use super::registry::free_port;
use super::require;

const NGINX: &str = "/usr/sbin/nginx";
/// Worker processes of every test nginx (a reload retires this many).
pub const WORKERS: usize = 2;

pub struct Nginx {
    /// The prefix directory: config, pid, logs and temp paths all live here.
    pub dir: PathBuf,
    pub port: u16,
    /// Included by nginx.conf: `upstream NAME { … }`, the file a deploy rewrites.
    pub upstream_file: PathBuf,
    pub conf: PathBuf,
    pub upstream_name: String,
    child: Child,
}

impl Nginx {
    /// Starts nginx with a placeholder upstream (`127.0.0.1:9`, where nothing listens, so
    /// requests answer 502 until a deploy writes real servers).
    pub fn start(upstream_name: &str) -> Self {
        require("nginx", "nginx-light");
        let dir = std::env::temp_dir().join(format!("imgctl-nginx-{}-{}", std::process::id(), random_hex(4)));
        fs::create_dir_all(&dir).unwrap();
        let upstream_file = dir.join("upstream.conf");
        fs::write(&upstream_file, format!("upstream {upstream_name} {{ server 127.0.0.1:9; }}\n")).unwrap();
        let conf = dir.join("nginx.conf");
        let mut last_log = String::new();
        // free_port() can lose a race with another test between its probe and nginx's bind.
        for _ in 0..3 {
            let port = free_port();
            fs::write(&conf, config(&dir, port, upstream_name)).unwrap();
            let mut child = Command::new(NGINX)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                // Before it reads its config, Debian's nginx logs to stderr.
                .stderr(fs::File::create(dir.join("stderr.log")).unwrap())
                .spawn()
                .expect("starting nginx");
            if wait_ready(&mut child, port) {
                let upstream_name = upstream_name.to_owned();
                return Self { dir, port, upstream_file, conf, upstream_name, child };
            }
            // It exited (a lost port race, a config error) or never answered.
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
            last_log = logs(&dir);
        }
        let _ = fs::remove_dir_all(&dir);
        panic!("nginx did not start; its logs:\n{last_log}");
    }

    /// `nginx -t -q` for this instance: what a deployer runs before it reloads.
    pub fn test_command(&self) -> Vec<String> {
        let mut argv = vec![NGINX.to_owned(), "-t".to_owned(), "-q".to_owned()];
        argv.extend(self.instance_args());
        argv
    }

    /// `nginx -s reload` for this instance: nginx reads the pid file named in nginx.conf
    /// (DIR/nginx.pid) and sends that master SIGHUP.
    pub fn reload_command(&self) -> Vec<String> {
        let mut argv = vec![NGINX.to_owned()];
        argv.extend(self.instance_args());
        argv.extend(["-s".to_owned(), "reload".to_owned()]);
        argv
    }

    /// How many reloads the master has received so far (each SIGHUP is in the error log).
    pub fn reloads(&self) -> usize {
        reloads_in(&self.error_log())
    }

    /// Waits until the master has received at least `reloads` reloads and every one has taken
    /// over; see [`wait_for_reloads`]. Use: `let n = nginx.reloads(); …reload…;
    /// nginx.wait_reloaded(n + 1)`.
    pub fn wait_reloaded(&self, reloads: usize) {
        wait_for_reloads(|| self.error_log(), reloads, || self.logs());
    }

    /// `http://127.0.0.1:PORT/path`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, path.trim_start_matches('/'))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The error log (notice level: reloads and worker exits are in it) and stderr, for
    /// assertion messages.
    pub fn logs(&self) -> String {
        logs(&self.dir)
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The access log: `STATUS UPSTREAM_ADDR REQUEST` a line.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    fn instance_args(&self) -> [String; 4] {
        ["-p".to_owned(), path(&self.dir), "-c".to_owned(), path(&self.conf)]
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT is a graceful stop; SIGTERM a fast one; SIGKILL of the master alone would
        // leave its workers running and holding the port.
        for signal in ["-QUIT", "-TERM"] {
            let _ = Command::new("kill").arg(signal).arg(self.child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    let _ = fs::remove_dir_all(&self.dir);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn config(dir: &Path, port: u16, upstream_name: &str) -> String {
    let d = dir.display();
    // A master started as root switches its workers to `nobody`, which cannot enter this
    // root-owned 0700 temp dir: proxy buffering to DIR/proxy would fail with EACCES once a
    // response outgrows memory. As root, keep the workers root; as anyone else nginx runs
    // everything as that user and warns if `user` is set.
    let user = if is_root() { "user root;\n" } else { "" };
    format!(
        "# Written by tests/it/common/nginx.rs.\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes {WORKERS};\n\
         {user}\
         pid {d}/nginx.pid;\n\
         lock_file {d}/nginx.lock;\n\
         error_log {d}/error.log notice;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20   log_format upstream '$status $upstream_addr \"$request\"';\n\
         \x20   access_log {d}/access.log upstream;\n\
         \x20   client_body_temp_path {d}/client_body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   include {upstream};\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://{upstream_name};\n\
         \x20           proxy_next_upstream error timeout http_502 http_503;\n\
         \x20           proxy_connect_timeout 2s;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        upstream = dir.join("upstream.conf").display(),
    )
}

/// True once nginx answers HTTP on `port`; false if the master exited first or 10 s passed.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if answers_http(SocketAddr::from(([127, 0, 0, 1], port))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// One `GET /` to `addr`: true when an HTTP/1.1 answer comes back (docker-proxy, for one,
/// accepts connections before nginx behind it listens).
pub fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 ")
}

/// The SIGHUPs an nginx master logged in `error_log`.
pub fn reloads_in(error_log: &str) -> usize {
    error_log.matches("(SIGHUP) received").count()
}

/// Polls an nginx error log until the master has received `reloads` reloads and retired the old
/// workers of each. Both steps are asynchronous: `nginx -s reload` returns once the signal is
/// sent, before the master has handled it, and until the old workers get their stop signal they
/// still accept connections and answer from the old upstream. An old worker logs "gracefully
/// shutting down" once it has closed its listening socket; `WORKERS` retire per reload. Panics
/// after 10 s with `logs()` (a reload whose config nginx refused keeps the old workers: run the
/// test command first).
pub fn wait_for_reloads(error_log: impl Fn() -> String, reloads: usize, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = error_log();
        let received = reloads_in(&log);
        let retired = log.matches("gracefully shutting down").count();
        if received >= reloads && retired >= WORKERS * received {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {reloads} reloads: {received} received, {retired} workers retired; {}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn logs(dir: &Path) -> String {
    let error_log = fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    let stderr = fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    format!("error.log:\n{error_log}\nstderr:\n{stderr}")
}

fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn path(p: &Path) -> String {
    p.to_str().expect("a UTF-8 temp path").to_owned()
}
