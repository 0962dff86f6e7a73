//! nginx in a plain container on a swarm's overlay network, published on a loopback port: the
//! proxy in front of swarm services. Swarm publishes service ports on every interface (it has
//! no HostIP), so the services publish nothing and nginx reaches their tasks by DNS inside the
//! overlay. There is no nginx image to pull: [`ProxyImage`] is the host's own nginx
//! (Debian nginx-light) with its shared libraries, imported as an image.
//!
//! The config directory is bind-mounted from the host (the directory, not the file: a deploy
//! that replaces the upstream file by rename is then seen inside), and reloads are
//! `docker exec NAME nginx -s reload`.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::swarm::Swarm;
use super::{assert_success, random_hex, require, run_with_stdin, stdout};

const NGINX: &str = "/usr/sbin/nginx";
/// Where the host directory is mounted in the container.
const CONF_DIR: &str = "/etc/imgctl-nginx";
use super::nginx::WORKERS;

/// The host's nginx as an image, tagged uniquely and removed on drop.
pub struct ProxyImage {
    pub tag: String,
}

impl ProxyImage {
    /// Imports a rootfs of /usr/sbin/nginx, the libraries `ldd` names and the loader.
    pub fn build() -> Self {
        require("nginx", "nginx-light");
        let ldd = Command::new("ldd").arg(NGINX).output().expect("running ldd");
        assert_success(&ldd, "ldd /usr/sbin/nginx");
        let root = std::env::temp_dir().join(format!("imgctl-nginx-rootfs-{}", random_hex(4)));
        let mut files = vec![PathBuf::from(NGINX)];
        // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`.
        files.extend(stdout(&ldd).split_whitespace().filter(|word| word.starts_with('/')).map(PathBuf::from));
        for file in &files {
            let target = root.join(file.strip_prefix("/").unwrap());
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            // fs::copy follows the library symlinks: the image holds the files themselves.
            fs::copy(file, &target).unwrap_or_else(|e| panic!("copying {}: {e}", file.display()));
        }
        for dir in ["etc/imgctl-nginx", "var/lib/nginx", "var/log/nginx", "run", "tmp"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534::/:/sbin/nologin\n",
        )
        .unwrap();
        fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        fs::write(root.join("etc/nsswitch.conf"), "hosts: files dns\n").unwrap();
        let tar = Command::new("tar").arg("-C").arg(&root).args(["-cf", "-", "."]).output().unwrap();
        fs::remove_dir_all(&root).unwrap();
        assert_success(&tar, "tar");
        let tag = format!("imgctl-test-nginx:{}-{}", std::process::id(), random_hex(4));
        let cmd = format!(r#"CMD ["{NGINX}","-c","{CONF_DIR}/nginx.conf"]"#);
        let out = run_with_stdin(Command::new("docker").args(["import", "--change", &cmd, "-", &tag]), &tar.stdout);
        assert_success(&out, "docker import of the nginx rootfs");
        Self { tag }
    }
}

impl Drop for ProxyImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.tag]).output();
    }
}

/// When nginx turns the service name in the upstream file into task addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// At start and at each reload: `upstream NAME { server HOST:PORT; }`, the single-engine
    /// target's file. `nginx -t` refuses a service that does not exist ("host not found in
    /// upstream"), but the addresses go stale when swarm replaces a task.
    AtReload,
    /// At request time through the engine's DNS (127.0.0.11, cached 1 s):
    /// `map "" $NAME { default HOST:PORT; }` and `proxy_pass http://$NAME`. Follows a rolling
    /// update without a reload; a missing service is a 502 at request time, not an `nginx -t`
    /// error.
    PerRequest,
}

/// A running nginx container; removed, with its config directory, on drop. Drop it before the
/// [`Swarm`] whose network it is on (declare the swarm first).
pub struct NginxContainer {
    pub name: String,
    /// Host directory mounted at /etc/imgctl-nginx: nginx.conf, upstream.conf, the logs.
    pub dir: PathBuf,
    pub upstream_name: String,
    pub resolution: Resolution,
    addr: SocketAddr,
}

impl NginxContainer {
    /// Starts nginx on `swarm`'s network with a placeholder upstream (127.0.0.1:9 inside the
    /// container, where nothing listens: 502 until an upstream is written).
    pub fn start(swarm: &Swarm, image: &ProxyImage, upstream_name: &str, resolution: Resolution) -> Self {
        Self::start_on(&swarm.network, image, upstream_name, resolution)
    }

    /// Starts nginx on the docker network `network` (a swarm's overlay, or a user-defined
    /// bridge: the compose layout of a proxy container beside the app's).
    pub fn start_on(network: &str, image: &ProxyImage, upstream_name: &str, resolution: Resolution) -> Self {
        let name = format!("imgctl-test-nginx-{}-{}", std::process::id(), random_hex(4));
        let dir = std::env::temp_dir().join(&name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("nginx.conf"), config(upstream_name, resolution)).unwrap();
        let mut nginx = Self {
            name,
            dir,
            upstream_name: upstream_name.to_owned(),
            resolution,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        fs::write(nginx.upstream_file(), nginx.upstream_config("127.0.0.1:9")).unwrap();
        let volume = format!("{}:{CONF_DIR}", nginx.dir.display());
        let out = Command::new("docker")
            .args(["run", "--detach", "--name", &nginx.name, "--network", network])
            .args(["--publish", "127.0.0.1::80", "--volume", &volume, &image.tag])
            .output()
            .unwrap();
        assert_success(&out, "docker run nginx");
        let port = Command::new("docker").args(["port", &nginx.name, "80/tcp"]).output().unwrap();
        assert_success(&port, "docker port");
        nginx.addr =
            stdout(&port).lines().next().unwrap_or_default().trim().parse().expect("docker port prints ADDR:PORT");
        assert!(nginx.addr.ip().is_loopback(), "nginx published on {}, not loopback only", nginx.addr);
        assert!(wait_ready(nginx.addr), "nginx did not answer on {}; {}", nginx.addr, nginx.logs());
        nginx
    }

    /// The file a deploy rewrites (on the host; the container sees the same directory).
    pub fn upstream_file(&self) -> PathBuf {
        self.dir.join("upstream.conf")
    }

    /// What the upstream file holds to send traffic to `target` (`tasks.SERVICE:8080`), in
    /// this container's [`Resolution`].
    pub fn upstream_config(&self, target: &str) -> String {
        let name = &self.upstream_name;
        match self.resolution {
            Resolution::AtReload => format!("upstream {name} {{ server {target}; }}\n"),
            Resolution::PerRequest => format!("map \"\" ${name} {{ default {target}; }}\n"),
        }
    }

    /// Writes the upstream file for `target`, tests the config and reloads, and waits until
    /// the new workers took over.
    pub fn switch_to(&self, target: &str) {
        fs::write(self.upstream_file(), self.upstream_config(target)).unwrap();
        let test = run(&self.test_command());
        assert_success(&test, "nginx -t in the container");
        let before = self.reloads();
        assert_success(&run(&self.reload_command()), "nginx -s reload in the container");
        self.wait_reloaded(before + 1);
    }

    /// `docker exec NAME nginx -c … -s reload`.
    pub fn reload_command(&self) -> Vec<String> {
        self.exec(&["-s", "reload"])
    }

    /// `docker exec NAME nginx -c … -t -q`: exit status 1 and `[emerg]` on stderr for a bad
    /// upstream file.
    pub fn test_command(&self) -> Vec<String> {
        self.exec(&["-t", "-q"])
    }

    /// `127.0.0.1:PORT`, published by docker.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many reloads the master has received so far.
    pub fn reloads(&self) -> usize {
        super::nginx::reloads_in(&self.error_log())
    }

    /// Waits until the master received `reloads` reloads and retired the old workers of each
    /// (see [`super::nginx::wait_for_reloads`]); panics after 10 s.
    pub fn wait_reloaded(&self, reloads: usize) {
        super::nginx::wait_for_reloads(|| self.error_log(), reloads, || self.logs());
    }

    /// The access log: `STATUS UPSTREAM_ADDR REQUEST` a line.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// The error log and the container's output, for assertion messages.
    pub fn logs(&self) -> String {
        let output = Command::new("docker").args(["logs", "--tail", "50", &self.name]).output();
        let output =
            output.map(|o| format!("{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr))).unwrap_or_default();
        format!("error.log:\n{}\ndocker logs:\n{output}", self.error_log())
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn exec(&self, args: &[&str]) -> Vec<String> {
        let mut argv: Vec<String> = ["docker", "exec", &self.name, NGINX, "-c"].map(str::to_owned).into();
        argv.push(format!("{CONF_DIR}/nginx.conf"));
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }
}

impl Drop for NginxContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "--force", &self.name]).output();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn config(upstream_name: &str, resolution: Resolution) -> String {
    let proxy_pass = match resolution {
        Resolution::AtReload => format!("http://{upstream_name}"),
        Resolution::PerRequest => format!("http://${upstream_name}"),
    };
    // The master is root in the container; workers stay root too so they can write the temp
    // paths and logs in the root-owned mounted directory.
    format!(
        "# Written by tests/it/common/nginx_container.rs.\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes {WORKERS};\n\
         user root;\n\
         pid /run/nginx.pid;\n\
         error_log {CONF_DIR}/error.log notice;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20   log_format upstream '$status $upstream_addr \"$request\"';\n\
         \x20   access_log {CONF_DIR}/access.log upstream;\n\
         \x20   # The engine's DNS inside the overlay; only PerRequest resolution asks it at run time.\n\
         \x20   resolver 127.0.0.11 valid=1s ipv6=off;\n\
         \x20   resolver_timeout 2s;\n\
         \x20   include {CONF_DIR}/upstream.conf;\n\
         \x20   server {{\n\
         \x20       listen 80;\n\
         \x20       location / {{\n\
         \x20           proxy_pass {proxy_pass};\n\
         \x20           proxy_next_upstream error timeout http_502 http_503;\n\
         \x20           proxy_connect_timeout 2s;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n"
    )
}

/// True once nginx answers HTTP on `addr` (docker-proxy accepts before nginx listens); false
/// after 10 s.
fn wait_ready(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if super::nginx::answers_http(addr) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn run(argv: &[String]) -> std::process::Output {
    Command::new(&argv[0]).args(&argv[1..]).output().unwrap()
}
