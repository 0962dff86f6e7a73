//! The Docker Engine as a deploy target: a service's replicas are containers labelled with
//! their service, color, digest and deploy, created, started, inspected, stopped and removed
//! through the Engine API (bollard).
//!
//! The labels are the deploy's truth (see [`label`]): [`DockerEngine::replicas`] rebuilds
//! the picture of a service from the engine alone, so a run killed half-way can be reconciled.
//!
//! - `container`: what to run for one replica, and the engine's body for it (pure).
//! - `pull`: pulling an image with the registry's credentials.
//! - `compose`: the containers `docker-compose up -d` runs, read as replicas to take over.

mod compose;
mod container;
mod pull;

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::NetworkConnectRequest;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};

use super::color::label;
use super::model::Replica;
use container::{create_body, replica_from_inspect};

pub use compose::{ComposeReplica, label as compose_label};
pub use container::ContainerSpec;
pub(super) use container::health_config;
pub(in crate::deploy) use container::runtime::{sysctls, ulimits};
pub use pull::PullAuth;

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
    /// A secret or config the compose file names as `external` does not exist on the swarm.
    #[error(
        "{at}: the external {noun} {name:?} does not exist on this swarm: create it first (docker {noun} create {name} FILE), or give the {noun} as a file"
    )]
    MissingExternal {
        /// `secrets.KEY` or `configs.KEY`.
        at: String,
        /// `secret` or `config`.
        noun: &'static str,
        /// The object's name.
        name: String,
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

    /// Creates (does not start) a container from SPEC, connected to all its networks, with
    /// the secrets and configs that are copied (not bind-mounted) in place, and returns its id.
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let body = create_body(spec)?;
        let archive = container::mounts::archive(&spec.workload)
            .map_err(|reason| EngineError::InvalidSpec { container: spec.name.clone(), reason })?;
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let operation = || format!("create container {}", spec.name);
        let created = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created,
            Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => {
                return Err(EngineError::NameInUse { name: spec.name.clone() });
            }
            Err(e) => return Err(self.fail(operation(), e)),
        };
        for network in spec.workload.networks.iter().skip(1) {
            let request = NetworkConnectRequest { container: created.id.clone(), endpoint_config: None };
            if let Err(e) = self.docker.connect_network(network, request).await {
                // Half-wired containers would be started by a retry; take it back.
                let _ = self.remove(&created.id).await;
                return Err(self.fail(format!("connect container {} to network {network}", spec.name), e));
            }
        }
        if let Some(archive) = archive {
            // Unpacked at `/`: each file at its absolute target, with its owner and mode.
            let options = UploadToContainerOptionsBuilder::default().path("/").build();
            // bollard takes the body by value: this copy of the content is not wiped.
            let body = bollard::body_full(bytes::Bytes::copy_from_slice(&archive));
            if let Err(e) = self.docker.upload_to_container(&created.id, Some(options), body).await {
                let _ = self.remove(&created.id).await;
                return Err(self.fail(format!("copy the secrets and configs into container {}", spec.name), e));
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

    /// The host ports the containers of `service` (running or not) are configured to
    /// publish on: a stopped one takes its port back when it starts again.
    pub async fn host_ports(&self, service: &str) -> Result<std::collections::BTreeSet<u16>, EngineError> {
        let filters = HashMap::from([("label", vec![format!("{}={service}", label::SERVICE)])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.fail(format!("list the containers of service {service}"), e))?;
        let mut ports = std::collections::BTreeSet::new();
        for id in summaries.into_iter().filter_map(|summary| summary.id) {
            let info = match self.docker.inspect_container(&id, None).await {
                Ok(info) => info,
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => continue,
                Err(e) => return Err(self.fail(format!("inspect container {id}"), e)),
            };
            let bindings = info.host_config.and_then(|h| h.port_bindings).unwrap_or_default();
            let configured = bindings.into_values().flatten().flatten().filter_map(|b| b.host_port?.parse().ok());
            ports.extend(configured.filter(|&p: &u16| p != 0));
        }
        Ok(ports)
    }

    /// The container's IP address on `network` (`None`: not connected, or not running).
    pub async fn network_ip(&self, id: &str, network: &str) -> Result<Option<std::net::IpAddr>, EngineError> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.fail(format!("inspect container {id}"), e))?;
        let networks = info.network_settings.and_then(|n| n.networks).unwrap_or_default();
        let endpoint = networks.get(network);
        let ip =
            endpoint.and_then(|e| e.ip_address.as_deref().filter(|ip| !ip.is_empty()).and_then(|ip| ip.parse().ok()));
        Ok(ip)
    }

    /// The host process id of the container's main process while it runs, when the engine
    /// runs on this host (`None` over `tcp://`: a pid there means nothing here).
    pub async fn local_pid(&self, id: &str) -> Result<Option<u32>, EngineError> {
        if !self.host.starts_with("unix://") {
            return Ok(None);
        }
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.fail(format!("inspect container {id}"), e))?;
        let pid = info.state.and_then(|s| s.pid).filter(|&p| p > 0);
        Ok(pid.and_then(|p| u32::try_from(p).ok()))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
