//! A single-node Docker Swarm on this engine, kept on loopback, for the swarm deploy tests.
//!
//! What this machine allows, found by experiment (Docker Engine 20.10):
//! - `docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377
//!   --data-path-addr 127.0.0.1` keeps the raft port (2377) and gossip (7946 TCP and UDP) on
//!   127.0.0.1. The one listener that cannot be kept there is the kernel's VXLAN socket, UDP
//!   0.0.0.0:4789: libnetwork creates its vxlan devices without a local address whatever
//!   `--data-path-addr` says. It exists while an overlay network has a task or container on
//!   this node; a single node sends nothing through it.
//! - The routing mesh's `ingress` network would bind 4789 from the start and publishes service
//!   ports on every interface (swarm has no HostIP). A swarm initialized here has it removed,
//!   so a test that publishes a service port fails instead of listening on 0.0.0.0.
//! - The kernel has no IPVS (CONFIG_IP_VS is not set): a service's virtual IP resolves but
//!   never answers. Reach tasks through DNS round robin: `tasks.SERVICE` (or a service with
//!   endpoint mode dnsrr), resolved by the engine's DNS at 127.0.0.11 inside the overlay.
//! - `docker swarm leave --force` removes the swarm's networks and task containers but leaves
//!   `docker_gwbridge` behind, and plain containers on a removed overlay keep running without
//!   it; both are cleaned up here.
//!
//! Tests in several threads and several processes share one swarm: the first initializes it,
//! the last leaves it, and a swarm that was active before any test (someone's own) is never
//! left.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::load::read_response;
use super::web::WebImages;
use super::{assert_success, random_hex, require, stdout};

const SOCKET: &str = "/var/run/docker.sock";
/// Held exclusively while the swarm is initialized or left.
const STATE_LOCK: &str = "/tmp/imgctl-test-swarm.lock";
/// Held shared by every process that uses the swarm; exclusively only to find none does.
const USERS_LOCK: &str = "/tmp/imgctl-test-swarm.users";
/// Written when a test initialized the swarm: which cluster, and what to remove on leave.
const OWNER_FILE: &str = "/tmp/imgctl-test-swarm.owner";

/// This process's share of the swarm: how many [`Swarm`]s are alive, and the shared lock on
/// [`USERS_LOCK`] they hold together.
static PROCESS_SHARE: Mutex<Option<(usize, File)>> = Mutex::new(None);

/// The swarm, joined for one test, with an attachable overlay network of its own.
pub struct Swarm {
    /// Whether this handle ran `docker swarm init` (the swarm is left by whichever handle is
    /// the last user in any process).
    pub initialized_here: bool,
    /// The attachable overlay network: services and the nginx container join it.
    pub network: String,
    services: Mutex<Vec<String>>,
}

impl Swarm {
    /// Joins the swarm, initializing it loopback-only when the engine has none, and creates a
    /// network for this test.
    pub fn start() -> Self {
        require("docker", "docker.io");
        let initialized_here = join();
        let network = format!("imgctl-test-net-{}-{}", std::process::id(), random_hex(4));
        let out = docker(&["network", "create", "--driver", "overlay", "--attachable", &network]);
        let swarm = Self { initialized_here, network, services: Mutex::new(Vec::new()) };
        assert_success(&out, "docker network create --driver overlay");
        swarm
    }

    /// A service name unique to this test, removed with the swarm: `imgctl-test-BASE-xxxxxxxx`.
    pub fn service_name(&self, base: &str) -> String {
        let name = format!("imgctl-test-{base}-{}", random_hex(4));
        self.track(&name);
        name
    }

    /// Removes `name` when this swarm handle drops (a service the binary under test creates).
    pub fn track(&self, name: &str) {
        self.services.lock().unwrap_or_else(|e| e.into_inner()).push(name.to_owned());
    }

    /// Creates `service` through the Engine API on this swarm's network, pulling with `web`'s
    /// registry credential. The API, not `docker service create`: the CLI turns `--health-cmd`
    /// into CMD-SHELL, and the busybox images have no /bin/sh.
    pub fn create_service(&self, web: &WebImages, service: &WebService) {
        self.track(&service.name);
        let auth = serde_json::json!({
            "username": web.user, "password": web.password, "serveraddress": web.registry.addr,
        });
        let auth = base64::engine::general_purpose::URL_SAFE.encode(auth.to_string());
        let (status, answer) = engine("POST", "/services/create", Some(&service.spec(&self.network)), Some(&auth));
        assert_eq!(status, 201, "creating service {}: {answer}", service.name);
    }

    /// `docker service inspect NAME` as JSON.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let (status, answer) = engine("GET", &format!("/services/{name}"), None, None);
        assert_eq!(status, 200, "inspecting service {name}: {answer}");
        answer
    }

    /// `docker service inspect NAME` as JSON; None when the engine has no such service (or
    /// answers otherwise), for pollers that run before a service exists.
    pub fn try_inspect(&self, name: &str) -> Option<serde_json::Value> {
        let (status, answer) = engine("GET", &format!("/services/{name}"), None, None);
        (status == 200).then_some(answer)
    }

    /// [`Self::tasks`], or None when the engine refuses the listing (no such service).
    pub fn try_tasks(&self, name: &str) -> Option<Vec<serde_json::Value>> {
        let filters = serde_json::json!({ "service": [name] }).to_string();
        let (status, answer) = engine("GET", &format!("/tasks?filters={}", percent_encode(&filters)), None, None);
        (status == 200).then(|| answer.as_array().cloned().unwrap_or_default())
    }

    /// `UpdateStatus.State`: `updating`, `paused`, `completed`, `rollback_started`,
    /// `rollback_paused`, `rollback_completed`; None before the first update.
    pub fn update_state(&self, name: &str) -> Option<String> {
        self.inspect(name)["UpdateStatus"]["State"].as_str().map(str::to_owned)
    }

    /// Every task of `name` the swarm still remembers, newest history included.
    pub fn tasks(&self, name: &str) -> Vec<serde_json::Value> {
        let filters = serde_json::json!({ "service": [name] }).to_string();
        let (status, answer) = engine("GET", &format!("/tasks?filters={}", percent_encode(&filters)), None, None);
        assert_eq!(status, 200, "listing the tasks of {name}: {answer}");
        answer.as_array().cloned().unwrap_or_default()
    }

    /// The images of the tasks of `name` that are running and meant to run.
    pub fn running_images(&self, name: &str) -> Vec<String> {
        let mut images: Vec<String> = self
            .tasks(name)
            .iter()
            .filter(|t| t["DesiredState"] == "running" && t["Status"]["State"] == "running")
            .filter_map(|t| t["Spec"]["ContainerSpec"]["Image"].as_str().map(str::to_owned))
            .collect();
        images.sort();
        images
    }

    /// Waits until exactly `replicas` tasks of `name` run `image` and no other task is meant
    /// to run; returns how long that took. Panics after `timeout` with the tasks' states.
    pub fn wait_converged(&self, name: &str, image: &str, replicas: usize, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let tasks = self.tasks(name);
            let meant: Vec<&serde_json::Value> = tasks.iter().filter(|t| t["DesiredState"] == "running").collect();
            let converged = meant.len() == replicas
                && meant
                    .iter()
                    .all(|t| t["Status"]["State"] == "running" && t["Spec"]["ContainerSpec"]["Image"] == image);
            if converged {
                return started.elapsed();
            }
            if started.elapsed() > timeout {
                let states: Vec<String> = tasks
                    .iter()
                    .map(|t| {
                        format!(
                            "{} desired {} is {} {}",
                            t["Spec"]["ContainerSpec"]["Image"],
                            t["DesiredState"],
                            t["Status"]["State"],
                            t["Status"]["Err"]
                        )
                    })
                    .collect();
                panic!("{name} did not converge on {replicas} x {image} in {timeout:?}:\n{}", states.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let services = std::mem::take(&mut *self.services.lock().unwrap_or_else(|e| e.into_inner()));
        for service in &services {
            let _ = docker(&["service", "rm", service]);
            // The busybox httpd is PID 1 and ignores SIGTERM: without this its tasks hold the
            // network for the whole stop grace period.
            let filter = format!("label=com.docker.swarm.service.name={service}");
            let listed = docker(&["ps", "--all", "--quiet", "--filter", &filter]);
            let ids: Vec<&str> = std::str::from_utf8(&listed.stdout).unwrap_or_default().split_whitespace().collect();
            if !ids.is_empty() {
                let _ = Command::new("docker").args(["rm", "--force"]).args(&ids).output();
            }
        }
        // Until the last task container is gone the network has active endpoints.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !docker(&["network", "rm", &self.network]).status.success() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        leave();
    }
}

/// A busybox web service as the deploy tests run it: a healthcheck on `/health` every second
/// and the update and rollback settings of a compose `deploy:` section.
#[derive(Clone, Debug)]
pub struct WebService {
    pub name: String,
    /// `repo@sha256:…`
    pub image: String,
    pub replicas: u64,
    /// `start-first` or `stop-first`, for updates and rollbacks alike.
    pub order: String,
    /// `pause`, `continue` or `rollback`.
    pub failure_action: String,
    pub monitor: Duration,
    pub stop_grace_period: Duration,
}

impl WebService {
    /// Two replicas, start-first, rolled back on failure, monitored for 3 s.
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            replicas: 2,
            order: "start-first".to_owned(),
            failure_action: "rollback".to_owned(),
            monitor: Duration::from_secs(3),
            stop_grace_period: Duration::from_secs(10),
        }
    }

    /// The Engine API's ServiceSpec.
    pub fn spec(&self, network: &str) -> serde_json::Value {
        let nanos = |d: Duration| d.as_nanos() as u64;
        let update = |failure_action: &str| {
            serde_json::json!({
                "Parallelism": 1, "Delay": 0, "FailureAction": failure_action,
                "Monitor": nanos(self.monitor), "MaxFailureRatio": 0, "Order": self.order,
            })
        };
        serde_json::json!({
            "Name": self.name,
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": self.image,
                    "StopGracePeriod": nanos(self.stop_grace_period),
                    // Exec form: the image has no shell.
                    "Healthcheck": {
                        "Test": ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"],
                        "Interval": nanos(Duration::from_secs(1)),
                        "Timeout": nanos(Duration::from_secs(1)),
                        "Retries": 2,
                        "StartPeriod": 0,
                    },
                },
                "Networks": [{ "Target": network }],
            },
            "Mode": { "Replicated": { "Replicas": self.replicas } },
            "UpdateConfig": update(&self.failure_action),
            "RollbackConfig": update("pause"),
            "EndpointSpec": { "Mode": "dnsrr" },
        })
    }
}

/// Takes this process's share of the swarm, initializing it if the engine has none. True if
/// this call ran `docker swarm init`.
fn join() -> bool {
    let mut share = PROCESS_SHARE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((users, _)) = share.as_mut() {
        *users += 1;
        return false;
    }
    let state = lock_file(STATE_LOCK);
    state.lock().expect("locking the swarm state");
    let (node_state, _) = swarm_state();
    let initialized = match node_state.as_str() {
        "inactive" => {
            init();
            true
        }
        "active" => false,
        other => panic!("the engine's swarm is {other:?}: fix it (docker swarm leave --force) and run again"),
    };
    let users = lock_file(USERS_LOCK);
    users.lock_shared().expect("locking the swarm users");
    *share = Some((1, users));
    // Dropping `state` releases it only now, when this process is a counted user.
    initialized
}

/// `docker swarm init` on loopback, without the routing mesh; remembers what to undo.
fn init() {
    let gwbridge_existed = docker(&["network", "inspect", "docker_gwbridge"]).status.success();
    let out = docker(&[
        "swarm",
        "init",
        "--advertise-addr",
        "127.0.0.1",
        "--listen-addr",
        "127.0.0.1:2377",
        "--data-path-addr",
        "127.0.0.1",
    ]);
    assert_success(&out, "docker swarm init");
    let (_, cluster) = swarm_state();
    let owner = serde_json::json!({ "cluster": cluster, "gwbridge_existed": gwbridge_existed });
    fs::write(OWNER_FILE, owner.to_string()).unwrap();
    // The swarm creates `ingress` right after init; removing it needs no prompt on the API.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !docker(&["network", "inspect", "ingress"]).status.success() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, answer) = engine("DELETE", "/networks/ingress", None, None);
    assert!(status == 204 || status == 404, "removing the ingress network: {status} {answer}");
}

/// Gives back this process's share; the last user anywhere leaves a swarm a test initialized.
fn leave() {
    let mut share = PROCESS_SHARE.lock().unwrap_or_else(|e| e.into_inner());
    let Some((users, _)) = share.as_mut() else { return };
    *users -= 1;
    if *users > 0 {
        return;
    }
    drop(share.take());
    let state = lock_file(STATE_LOCK);
    if state.lock().is_err() {
        return;
    }
    let users = lock_file(USERS_LOCK);
    if users.try_lock().is_err() {
        // Another process still uses the swarm; it leaves.
        return;
    }
    let Some(owner) =
        fs::read_to_string(OWNER_FILE).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return;
    };
    let (node_state, cluster) = swarm_state();
    if node_state == "active" && owner["cluster"] == cluster.as_str() {
        let _ = docker(&["swarm", "leave", "--force"]);
        if owner["gwbridge_existed"] == false {
            let _ = docker(&["network", "rm", "docker_gwbridge"]);
        }
    }
    let _ = fs::remove_file(OWNER_FILE);
}

/// `(LocalNodeState, cluster ID)`: `("inactive", "")` when the engine is in no swarm.
fn swarm_state() -> (String, String) {
    let out = docker(&["info", "--format", "{{json .Swarm}}"]);
    assert_success(&out, "docker info");
    let swarm: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("docker info prints JSON");
    let state = swarm["LocalNodeState"].as_str().unwrap_or_default().to_owned();
    let cluster = swarm["Cluster"]["ID"].as_str().unwrap_or_default().to_owned();
    (state, cluster)
}

fn lock_file(path: &str) -> File {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(path))
        .unwrap_or_else(|e| panic!("opening {path}: {e}"))
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("running docker")
}

/// One Engine API call on the local socket: the status and the JSON answer (`null` if none).
fn engine(
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    registry_auth: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut stream = UnixStream::connect(SOCKET).unwrap_or_else(|e| panic!("connecting to {SOCKET}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(auth) = registry_auth {
        request.push_str(&format!("X-Registry-Auth: {auth}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let response = read_response(&mut BufReader::new(stream)).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let json = serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null);
    (response.status, json)
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
