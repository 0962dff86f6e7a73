//! The Docker Engine as a deploy target: a service's replicas are containers labelled with
//! their service, color, digest and deploy, created, started, inspected, stopped and removed
//! through the Engine API (bollard).
//!
//! The labels are the deploy's truth (see [`label`]): [`DockerEngine::replicas`] rebuilds
//! the picture of a service from the engine alone, so a run killed half-way can be reconciled.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, HealthConfig, HealthStatusEnum,
    HostConfig, NetworkConnectRequest, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::color::{Color, label};
use super::model::{ContainerState, Health, Healthcheck, Replica};
use crate::reference::Reference;
use crate::registry::credentials::RegistryCredential;

/// Where the engine listens when `DOCKER_HOST` is unset, as docker itself defaults.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// How long a stop may take beyond its grace period before the request is abandoned:
/// bollard's client timeout (2 minutes) also bounds `POST /stop`, which only answers once the
/// container is down.
const STOP_SLACK: Duration = Duration::from_secs(30);
/// bollard's default per-request timeout, restored after a long stop.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A failure talking to the Docker Engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine did not answer at all.
    #[error(
        "cannot reach the Docker Engine at {host}: {message}; check that dockerd is running and that DOCKER_HOST points at it"
    )]
    Unreachable {
        /// `DOCKER_HOST`, or docker's default socket.
        host: String,
        /// Why, from the transport.
        message: String,
    },
    /// The engine could not pull an image (registry unreachable, unauthorized, unknown digest).
    #[error("pulling {image} failed: {message}")]
    PullFailed {
        /// The image asked for.
        image: String,
        /// The engine's (or registry's) reason.
        message: String,
    },
    /// A container with that name already exists.
    #[error("a container named {name} already exists; remove it (docker rm -f {name}) or deploy again to reconcile")]
    NameInUse {
        /// The container name.
        name: String,
    },
    /// The engine has no such container, image or network.
    #[error("cannot {operation}: {message}")]
    NotFound {
        /// What was being done, e.g. `create container web-green-1`.
        operation: String,
        /// The engine's message, e.g. `No such image: ...`.
        message: String,
    },
    /// A container exists but does not carry imgctl's labels (or they are damaged).
    #[error("container {id} is not an imgctl replica: {reason}")]
    NotAReplica {
        /// The container id or name asked for.
        id: String,
        /// Which label is missing or invalid.
        reason: String,
    },
    /// The container spec cannot be expressed to the engine.
    #[error("cannot run container {container}: {reason}")]
    InvalidSpec {
        /// The container name.
        container: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The engine refused a request.
    #[error("the Docker Engine refused to {operation}: {message}")]
    Api {
        /// What was being done, e.g. `start container 3f2a...`.
        operation: String,
        /// The engine's message.
        message: String,
    },
}

/// A connection to the Docker Engine API.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    /// Where the engine was reached, for messages.
    host: String,
}

/// Registry credentials for a pull, sent as `X-Registry-Auth` (bollard's `DockerCredentials`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullAuth {
    /// The registry's server address as docker uses it (e.g. `127.0.0.1:5000`, or
    /// `https://index.docker.io/v1/`).
    pub server: String,
    /// Username and password, or an identity token.
    pub credential: RegistryCredential,
}

/// What to run for one replica.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerSpec {
    /// The container name, e.g. `web-green-1`.
    pub name: String,
    /// The image, `repo@sha256:...`.
    pub image: String,
    /// Labels, imgctl's own (see [`label`]) included.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Replaces the image's CMD.
    pub command: Option<Vec<String>>,
    /// Replaces the image's ENTRYPOINT.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's working directory.
    pub working_dir: Option<String>,
    /// Replaces the image's user.
    pub user: Option<String>,
    /// The container port the proxy talks to, published on 127.0.0.1 with a host port the
    /// engine picks. Other published ports are not supported on purpose: both colors run at
    /// once and would clash on fixed host ports.
    pub port: Option<u16>,
    /// The healthcheck; `None` keeps the image's.
    pub healthcheck: Option<Healthcheck>,
    /// Compose short syntax: `src:dst[:mode]` (absolute host path or named volume), or `dst`
    /// alone for an anonymous volume. Relative host paths must be resolved by the caller.
    pub volumes: Vec<String>,
    /// Networks: the first is the container's network mode, the others are connected before
    /// the container starts. Empty means the engine's default bridge.
    pub networks: Vec<String>,
    /// `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`.
    pub restart: Option<String>,
    /// compose `stop_signal` (e.g. `SIGQUIT` for nginx, `SIGKILL` for a server that ignores
    /// SIGTERM as PID 1); `None` keeps the image's.
    pub stop_signal: Option<String>,
}

impl DockerEngine {
    /// Connects to `DOCKER_HOST` (`unix://` or `tcp://`), else `/var/run/docker.sock`, and
    /// negotiates the API version down to the engine's.
    pub async fn connect() -> Result<Self, EngineError> {
        // bollard's connect_with_local_defaults ignores a tcp:// DOCKER_HOST and would
        // silently talk to the local socket instead; docker treats an empty one as unset.
        let host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| DEFAULT_HOST.into());
        let unreachable = |e: BollardError| EngineError::Unreachable { host: host.clone(), message: chain(&e) };
        let docker = Docker::connect_with_host(&host).map_err(unreachable)?;
        // bollard speaks its newest API version by default; an older engine (20.10 is 1.41)
        // answers that with "client version too new" until the version is negotiated.
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        Ok(Self { docker, host })
    }

    /// Every container (running or not) labelled `imgctl.service=SERVICE`, sorted by color
    /// and index. Containers with missing or damaged labels are not ours and are left out.
    pub async fn replicas(&self, service: &str) -> Result<Vec<Replica>, EngineError> {
        let filters = HashMap::from([("label", vec![format!("{}={service}", label::SERVICE)])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.fail(format!("list the containers of service {service}"), e))?;
        let mut replicas = Vec::with_capacity(summaries.len());
        for id in summaries.into_iter().filter_map(|summary| summary.id) {
            match self.inspect(&id).await {
                Ok(replica) => replicas.push(replica),
                // Removed since the listing, or not ours.
                Err(EngineError::NotFound { .. } | EngineError::NotAReplica { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        replicas.sort_by_key(|r| (r.color, r.index));
        Ok(replicas)
    }

    /// Whether the engine has IMAGE (`repo@sha256:...`) locally.
    pub async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(self.fail(format!("inspect image {image}"), e)),
        }
    }

    /// Pulls IMAGE (`repo@sha256:...`) unless the engine has it already, calling `progress`
    /// with each status line. The whole stream is consumed: an error inside it (the engine
    /// answers 200 and reports a failure later) is [`EngineError::PullFailed`] too.
    pub async fn pull(
        &self,
        image: &str,
        auth: Option<&PullAuth>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), EngineError> {
        if self.has_image(image).await? {
            return Ok(());
        }
        let failed = |message: String| EngineError::PullFailed { image: image.to_owned(), message };
        let reference: Reference = image.parse().map_err(|e| failed(format!("not an image reference: {e}")))?;
        // As the docker CLI sends it: a name, and the digest (or tag) apart. A bare name with
        // neither would make the engine pull every tag of the repository.
        let options = CreateImageOptionsBuilder::default()
            .from_image(&reference.name())
            .tag(&reference.manifest_reference())
            .build();
        let mut stream = self.docker.create_image(Some(options), None, auth.and_then(PullAuth::docker_credentials));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(line) = progress_line(&info) {
                        progress(&line);
                    }
                }
                Err(BollardError::DockerStreamError { error }) => return Err(failed(error)),
                Err(BollardError::DockerResponseServerError { message, .. }) => return Err(failed(message)),
                Err(e) => return Err(self.fail(format!("pull {image}"), e)),
            }
        }
        Ok(())
    }

    /// Creates (does not start) a container from SPEC, connected to all its networks, and
    /// returns its id.
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let body = create_body(spec)?;
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let operation = || format!("create container {}", spec.name);
        let created = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created,
            Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => {
                return Err(EngineError::NameInUse { name: spec.name.clone() });
            }
            Err(e) => return Err(self.fail(operation(), e)),
        };
        for network in spec.networks.iter().skip(1) {
            let request = NetworkConnectRequest { container: created.id.clone(), endpoint_config: None };
            if let Err(e) = self.docker.connect_network(network, request).await {
                // Half-wired containers would be started by a retry; take it back.
                let _ = self.remove(&created.id).await;
                return Err(self.fail(format!("connect container {} to network {network}", spec.name), e));
            }
        }
        Ok(created.id)
    }

    /// Starts a created or stopped container (one already running is fine).
    pub async fn start(&self, id: &str) -> Result<(), EngineError> {
        // 304 Not Modified (already started) is a success to bollard.
        self.docker.start_container(id, None).await.map_err(|e| self.fail(format!("start container {id}"), e))
    }

    /// The container's current state as a [`Replica`].
    pub async fn inspect(&self, id: &str) -> Result<Replica, EngineError> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.fail(format!("inspect container {id}"), e))?;
        replica_from_inspect(info).map_err(|reason| EngineError::NotAReplica { id: id.to_owned(), reason })
    }

    /// Stops the container: SIGTERM (or the image's stop signal), then SIGKILL after GRACE
    /// (whole seconds, rounded up). Already stopped or gone is fine.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let options = StopContainerOptionsBuilder::default().t(i32::try_from(seconds).unwrap_or(i32::MAX)).build();
        // The engine answers once the container is down, up to GRACE later.
        let docker = self.docker.clone().with_timeout(REQUEST_TIMEOUT.max(Duration::from_secs(seconds) + STOP_SLACK));
        match docker.stop_container(id, Some(options)).await {
            // 304 Not Modified (already stopped) is a success to bollard.
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.fail(format!("stop container {id}"), e)),
        }
    }

    /// Removes the container and its anonymous volumes, killing it if it runs. Gone already
    /// is fine.
    pub async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            // Another remove of the same container is under way: it ends as we want.
            Err(BollardError::DockerResponseServerError { status_code: 409, message })
                if message.contains("already in progress") =>
            {
                Ok(())
            }
            Err(e) => Err(self.fail(format!("remove container {id}"), e)),
        }
    }

    /// Sorts a bollard error into what the caller can act on.
    fn fail(&self, operation: String, error: BollardError) -> EngineError {
        classify(&self.host, operation, error)
    }
}

impl DockerEngine {
    /// The API client, for the swarm calls in the sibling module.
    pub(super) fn api(&self) -> &Docker {
        &self.docker
    }

    /// Sorts a bollard error for the caller, naming `operation`.
    pub(super) fn error(&self, operation: impl Into<String>, error: BollardError) -> EngineError {
        classify(&self.host, operation.into(), error)
    }
}

fn classify(host: &str, operation: String, error: BollardError) -> EngineError {
    match error {
        BollardError::DockerResponseServerError { status_code: 404, message } => {
            EngineError::NotFound { operation, message }
        }
        BollardError::DockerResponseServerError { message, .. } => EngineError::Api { operation, message },
        BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. }
        | BollardError::SocketNotFoundError(_)
        | BollardError::UnsupportedURISchemeError { .. }
        | BollardError::RequestTimeoutError => {
            EngineError::Unreachable { host: host.to_owned(), message: format!("{operation}: {}", chain(&error)) }
        }
        other => EngineError::Api { operation, message: chain(&other) },
    }
}

/// The error and its sources on one line: hyper's own message ("client error (Connect)")
/// hides the cause (no such socket, connection refused) in the chain.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl PullAuth {
    /// The `X-Registry-Auth` payload; `None` for anonymous pulls (no header at all).
    ///
    /// bollard takes it by value and serializes it into strings of its own (the JSON, then the
    /// base64 header), which it frees unwiped; no caller can wipe them. So it is built at the
    /// call and moved straight into bollard: imgctl keeps no copy of the secret besides its
    /// [`Secret`](crate::credential::Secret).
    pub(super) fn docker_credentials(&self) -> Option<DockerCredentials> {
        let serveraddress = Some(self.server.clone());
        match &self.credential {
            RegistryCredential::Anonymous => None,
            RegistryCredential::Basic { username, password } => Some(DockerCredentials {
                username: Some(username.clone()),
                password: Some(password.expose().to_owned()),
                serveraddress,
                ..Default::default()
            }),
            RegistryCredential::IdentityToken(token) => Some(DockerCredentials {
                identitytoken: Some(token.expose().to_owned()),
                serveraddress,
                ..Default::default()
            }),
        }
    }
}

/// `<layer>: <status> (<current>/<total>)`, or `None` for an item without a status.
fn progress_line(info: &bollard::models::CreateImageInfo) -> Option<String> {
    let status = info.status.as_deref()?;
    let mut line = match info.id.as_deref() {
        Some(id) if !id.is_empty() => format!("{id}: {status}"),
        _ => status.to_owned(),
    };
    if let Some(detail) = &info.progress_detail
        && let (Some(current), Some(total)) = (detail.current, detail.total)
        && total > 0
    {
        line.push_str(&format!(" ({current}/{total} bytes)"));
    }
    Some(line)
}

/// The engine's view of SPEC. Pure, so the mapping is tested without an engine.
fn create_body(spec: &ContainerSpec) -> Result<ContainerCreateBody, EngineError> {
    let invalid = |reason: String| EngineError::InvalidSpec { container: spec.name.clone(), reason };
    let (mut binds, mut anonymous) = (Vec::new(), Vec::new());
    for volume in &spec.volumes {
        match volume.split_once(':') {
            Some((source, _)) if source.starts_with('.') || source.starts_with('~') => {
                return Err(invalid(format!(
                    "volume {volume:?}: resolve the relative host path against the compose file's directory first"
                )));
            }
            Some(_) => binds.push(volume.clone()),
            None => anonymous.push(volume.clone()),
        }
    }
    let restart_policy = spec.restart.as_deref().map(restart_policy).transpose().map_err(invalid)?;
    let port_key = spec.port.map(|port| format!("{port}/tcp"));
    let port_bindings = port_key.as_ref().map(|key| {
        // HostPort "" lets the engine pick a free ephemeral port: two colors never clash.
        let binding = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) };
        HashMap::from([(key.clone(), Some(vec![binding]))])
    });
    let host_config = HostConfig {
        binds: Some(binds).filter(|b| !b.is_empty()),
        port_bindings,
        network_mode: spec.networks.first().cloned(),
        restart_policy,
        ..Default::default()
    };
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        labels: Some(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        env: Some(spec.env.clone()).filter(|e| !e.is_empty()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        working_dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        exposed_ports: port_key.map(|key| vec![key]),
        healthcheck: spec.healthcheck.as_ref().map(health_config),
        volumes: Some(anonymous).filter(|v| !v.is_empty()),
        stop_signal: spec.stop_signal.clone(),
        host_config: Some(host_config),
        ..Default::default()
    })
}

fn restart_policy(text: &str) -> Result<RestartPolicy, String> {
    let (name, retries) = match text.split_once(':') {
        Some(("on-failure", count)) => {
            let count: i64 = count.parse().map_err(|_| format!("restart {text:?}: the retry count is not a number"))?;
            (RestartPolicyNameEnum::ON_FAILURE, Some(count))
        }
        _ => match text {
            "no" => (RestartPolicyNameEnum::NO, None),
            "always" => (RestartPolicyNameEnum::ALWAYS, None),
            "unless-stopped" => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
            "on-failure" => (RestartPolicyNameEnum::ON_FAILURE, None),
            _ => {
                return Err(format!(
                    "restart {text:?}: expected no, always, unless-stopped, on-failure or on-failure:N"
                ));
            }
        },
    };
    Ok(RestartPolicy { name: Some(name), maximum_retry_count: retries })
}

pub(super) fn health_config(check: &Healthcheck) -> HealthConfig {
    // The API counts in nanoseconds.
    let nanos = |d: Option<Duration>| d.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    HealthConfig {
        test: Some(check.test.clone()),
        interval: nanos(check.interval),
        timeout: nanos(check.timeout),
        retries: check.retries.map(i64::from),
        start_period: nanos(check.start_period),
        start_interval: None,
    }
}

/// The replica an inspected container is, or why it is not one.
fn replica_from_inspect(info: ContainerInspectResponse) -> Result<Replica, String> {
    let labels = info.config.as_ref().and_then(|c| c.labels.as_ref());
    let get = |key: &str| labels.and_then(|l| l.get(key)).ok_or_else(|| format!("label {key} is missing"));
    let color_text = get(label::COLOR)?;
    let color = Color::parse(color_text).ok_or_else(|| format!("label {} is {color_text:?}", label::COLOR))?;
    let index_text = get(label::REPLICA)?;
    let index = index_text.parse().map_err(|_| format!("label {} is {index_text:?}", label::REPLICA))?;
    let (digest, deploy_id) = (get(label::DIGEST)?.clone(), get(label::DEPLOY_ID)?.clone());
    let status = info.state.as_ref().and_then(|s| s.status);
    let state = match status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        // "stopping" (API 1.52+) still has a live process.
        Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::STOPPING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
        Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
        Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removing,
        Some(ContainerStateStatusEnum::EMPTY) | None => return Err("the engine reports no state".into()),
    };
    let health = match info.state.as_ref().and_then(|s| s.health.as_ref()).and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => Health::Starting,
        Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) | None => Health::None,
    };
    let addr = if state == ContainerState::Running { published_addr(&info) } else { None };
    Ok(Replica {
        id: info.id.unwrap_or_default(),
        name: info.name.as_deref().unwrap_or_default().trim_start_matches('/').to_owned(),
        color,
        digest,
        deploy_id,
        index,
        state,
        health,
        addr,
        created: info.created.unwrap_or_default(),
    })
}

/// Where the engine published the container's one bound port. `HostConfig.PortBindings` says
/// which container port was asked for (with HostPort ""); `NetworkSettings.Ports` holds the
/// host port the engine actually picked, while the container runs.
fn published_addr(info: &ContainerInspectResponse) -> Option<SocketAddr> {
    let asked = info.host_config.as_ref()?.port_bindings.as_ref()?;
    let actual = info.network_settings.as_ref()?.ports.as_ref()?;
    let mut keys: Vec<&String> = asked.keys().filter(|k| k.ends_with("/tcp")).collect();
    keys.sort();
    let bindings = keys.into_iter().find_map(|key| actual.get(key)?.as_ref())?;
    let addrs = bindings.iter().filter_map(|binding| {
        let port: u16 = binding.host_port.as_deref()?.parse().ok().filter(|&p| p != 0)?;
        let ip = match binding.host_ip.as_deref() {
            None | Some("") => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(text) => match text.parse().ok()? {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            },
        };
        Some(SocketAddr::new(ip, port))
    });
    // Prefer IPv4 loopback: that is what the proxy is configured with.
    let addrs: Vec<SocketAddr> = addrs.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::Secret;
    use bollard::models::{ContainerConfig, NetworkSettings};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web-green-1".into(),
            image: "127.0.0.1:5000/web@sha256:aa".into(),
            labels: [(label::COLOR.to_owned(), "green".to_owned())].into(),
            env: vec!["A=1".into()],
            command: Some(vec!["serve".into()]),
            port: Some(8080),
            healthcheck: Some(Healthcheck {
                test: vec!["CMD".into(), "true".into()],
                interval: Some(Duration::from_secs(1)),
                timeout: Some(Duration::from_millis(500)),
                retries: Some(3),
                start_period: None,
            }),
            volumes: vec!["data:/data".into(), "/srv/conf:/conf:ro".into(), "/cache".into()],
            networks: vec!["front".into(), "back".into()],
            restart: Some("on-failure:5".into()),
            ..Default::default()
        }
    }

    #[test]
    fn spec_becomes_the_engine_body() {
        let body = create_body(&spec()).unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["Image"], "127.0.0.1:5000/web@sha256:aa");
        assert_eq!(json["Labels"]["imgctl.color"], "green");
        assert_eq!(json["Env"], serde_json::json!(["A=1"]));
        assert_eq!(json["Cmd"], serde_json::json!(["serve"]));
        assert!(json.get("Entrypoint").is_none(), "the image's entrypoint is kept");
        assert_eq!(json["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
        assert_eq!(
            json["HostConfig"]["PortBindings"],
            serde_json::json!({"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})
        );
        assert_eq!(
            json["Healthcheck"],
            serde_json::json!({"Test": ["CMD", "true"], "Interval": 1_000_000_000i64, "Timeout": 500_000_000, "Retries": 3})
        );
        assert_eq!(json["HostConfig"]["Binds"], serde_json::json!(["data:/data", "/srv/conf:/conf:ro"]));
        assert_eq!(json["Volumes"], serde_json::json!({"/cache": {}}));
        assert_eq!(json["HostConfig"]["NetworkMode"], "front");
        assert_eq!(
            json["HostConfig"]["RestartPolicy"],
            serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 5})
        );
    }

    #[test]
    fn a_minimal_spec_leaves_the_image_defaults_alone() {
        let body = create_body(&ContainerSpec { name: "a".into(), image: "i".into(), ..Default::default() }).unwrap();
        let json = serde_json::to_value(&body).unwrap();
        for key in ["Cmd", "Entrypoint", "Env", "ExposedPorts", "Healthcheck", "Volumes", "User", "WorkingDir"] {
            assert!(json.get(key).is_none(), "{key} set: {json}");
        }
        assert_eq!(json["HostConfig"], serde_json::json!({}));
    }

    #[test]
    fn restart_policies_follow_compose() {
        assert_eq!(restart_policy("always").unwrap().name, Some(RestartPolicyNameEnum::ALWAYS));
        assert_eq!(restart_policy("unless-stopped").unwrap().name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
        assert_eq!(restart_policy("no").unwrap().name, Some(RestartPolicyNameEnum::NO));
        assert_eq!(restart_policy("on-failure").unwrap().maximum_retry_count, None);
        assert!(restart_policy("sometimes").unwrap_err().contains("expected no, always"));
        assert!(restart_policy("on-failure:x").is_err());
    }

    #[test]
    fn relative_volume_sources_are_refused_not_turned_into_volume_names() {
        let spec = ContainerSpec { name: "w".into(), volumes: vec!["./data:/data".into()], ..Default::default() };
        let error = create_body(&spec).unwrap_err();
        assert!(matches!(error, EngineError::InvalidSpec { .. }), "{error:?}");
        assert!(error.to_string().contains("./data:/data"), "{error}");
    }

    fn inspected(labels: &[(&str, &str)], status: &str, health: Option<&str>) -> ContainerInspectResponse {
        let mut json = serde_json::json!({
            "Id": "abc123",
            "Name": "/web-green-1",
            "Created": "2024-05-01T10:00:00.123Z",
            "State": {"Status": status},
            "Config": {"Labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>()},
            "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
            "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]}},
        });
        if let Some(health) = health {
            json["State"]["Health"] = serde_json::json!({"Status": health, "FailingStreak": 0});
        }
        serde_json::from_value(json).unwrap()
    }

    const OURS: [(&str, &str); 5] = [
        (label::SERVICE, "web"),
        (label::COLOR, "green"),
        (label::DIGEST, "sha256:aa"),
        (label::DEPLOY_ID, "d1"),
        (label::REPLICA, "2"),
    ];

    #[test]
    fn an_inspected_container_becomes_a_replica() {
        let replica = replica_from_inspect(inspected(&OURS, "running", Some("healthy"))).unwrap();
        assert_eq!(
            replica,
            Replica {
                id: "abc123".into(),
                name: "web-green-1".into(),
                color: Color::Green,
                digest: "sha256:aa".into(),
                deploy_id: "d1".into(),
                index: 2,
                state: ContainerState::Running,
                health: Health::Healthy,
                addr: Some("127.0.0.1:49153".parse().unwrap()),
                created: "2024-05-01T10:00:00.123Z".into(),
            }
        );
        let json = serde_json::to_value(&replica).unwrap();
        assert_eq!((json["state"].as_str(), json["health"].as_str()), (Some("running"), Some("healthy")));
        assert_eq!(json["addr"], "127.0.0.1:49153");
    }

    #[test]
    fn a_stopped_replica_has_no_address_and_no_healthcheck_means_none() {
        let replica = replica_from_inspect(inspected(&OURS, "exited", None)).unwrap();
        assert_eq!((replica.state, replica.health, replica.addr), (ContainerState::Exited, Health::None, None));
    }

    #[test]
    fn containers_without_our_labels_are_not_replicas() {
        let no_color: Vec<_> = OURS.iter().copied().filter(|(k, _)| *k != label::COLOR).collect();
        assert!(replica_from_inspect(inspected(&no_color, "running", None)).unwrap_err().contains("imgctl.color"));
        let mut purple = OURS;
        purple[1] = (label::COLOR, "purple");
        assert!(replica_from_inspect(inspected(&purple, "running", None)).unwrap_err().contains("purple"));
        let mut bad_index = OURS;
        bad_index[4] = (label::REPLICA, "first");
        assert!(replica_from_inspect(inspected(&bad_index, "running", None)).is_err());
    }

    #[test]
    fn an_unspecified_host_ip_is_reached_on_loopback() {
        let mut info = inspected(&OURS, "running", None);
        info.network_settings = Some(NetworkSettings {
            ports: Some(HashMap::from([(
                "8080/tcp".to_owned(),
                Some(vec![
                    PortBinding { host_ip: Some("::".into()), host_port: Some("32768".into()) },
                    PortBinding { host_ip: Some("0.0.0.0".into()), host_port: Some("32768".into()) },
                ]),
            )])),
            ..Default::default()
        });
        assert_eq!(published_addr(&info), Some("127.0.0.1:32768".parse().unwrap()));
        info.config = Some(ContainerConfig::default());
        assert!(replica_from_inspect(info).is_err());
    }

    #[test]
    fn credentials_go_to_the_engine_but_never_into_debug() {
        let auth = PullAuth {
            server: "127.0.0.1:5000".into(),
            credential: RegistryCredential::Basic { username: "ci".into(), password: Secret::new("hunter2".into()) },
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        let sent = auth.docker_credentials().unwrap();
        assert_eq!(
            (sent.username.as_deref(), sent.password.as_deref(), sent.serveraddress.as_deref()),
            (Some("ci"), Some("hunter2"), Some("127.0.0.1:5000"))
        );
        let token = PullAuth { credential: RegistryCredential::IdentityToken(Secret::new("t0k".into())), ..auth };
        let sent = token.docker_credentials().unwrap();
        assert_eq!((sent.identitytoken.as_deref(), sent.password), (Some("t0k"), None));
        let anonymous = PullAuth { credential: RegistryCredential::Anonymous, ..token };
        assert_eq!(anonymous.docker_credentials(), None);
    }

    #[test]
    fn engine_errors_are_sorted_by_what_the_caller_can_do() {
        let status = |status_code, message: &str| BollardError::DockerResponseServerError {
            status_code,
            message: message.into(),
        };
        let host = "unix:///var/run/docker.sock";
        assert!(matches!(
            classify(host, "start container x".into(), status(404, "No such container: x")),
            EngineError::NotFound { .. }
        ));
        let refused = classify(host, "start container x".into(), status(500, "boom"));
        assert_eq!(refused.to_string(), "the Docker Engine refused to start container x: boom");
        let gone = classify(host, "list".into(), BollardError::SocketNotFoundError("/nope.sock".into()));
        assert!(matches!(gone, EngineError::Unreachable { .. }), "{gone:?}");
        assert!(gone.to_string().contains("DOCKER_HOST"), "{gone}");
    }

    #[test]
    fn progress_lines_name_the_layer_and_bytes() {
        let info = bollard::models::CreateImageInfo {
            id: Some("a1b2".into()),
            status: Some("Downloading".into()),
            progress_detail: Some(bollard::models::ProgressDetail { current: Some(10), total: Some(20) }),
            ..Default::default()
        };
        assert_eq!(progress_line(&info).as_deref(), Some("a1b2: Downloading (10/20 bytes)"));
        let bare = bollard::models::CreateImageInfo { status: Some("Pulling from web".into()), ..Default::default() };
        assert_eq!(progress_line(&bare).as_deref(), Some("Pulling from web"));
        assert_eq!(progress_line(&Default::default()), None);
    }
}
