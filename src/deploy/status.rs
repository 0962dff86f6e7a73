//! What a service runs now (`imgctl status`) and its history: reads only, no lock taken.

use serde::Serialize;

use super::color::Color;
use super::core::describe;
use super::history::{self, Record};
use super::lock::{self, Holder};
use super::model::Replica;
use super::run::{DeployError, Options, history_dir, lock_dir};
use super::spec::ServiceSpec;
use super::switch::{AnySwitch, TrafficSwitch};
use super::target::{self, swarm::ServiceTasks};

/// A replica and its share of traffic.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicaStatus {
    /// The container.
    #[serde(flatten)]
    pub replica: Replica,
    /// Its weight in the switch, when it is in traffic.
    pub weight: Option<u32>,
    /// It is in the switch at an address it no longer has (a restart gave it a new port), or
    /// it is in the switch and not running: `imgctl deploy SERVICE --repair` fixes both.
    pub stale: bool,
}

/// `imgctl status SERVICE`.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The service.
    pub service: String,
    /// The live color.
    pub live: Option<Color>,
    /// Its digest.
    pub live_digest: Option<String>,
    /// What is in flight, in words.
    pub phase: String,
    /// Every replica of the service.
    pub replicas: Vec<ReplicaStatus>,
    /// On swarm: the services (the rolling service, or the color services) and their tasks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceTasks>,
    /// Who holds the lock now.
    pub lock: Option<Holder>,
    /// The last runs, newest last.
    pub recent: Vec<Record>,
}

/// Reads the service's state from its target, its switch, the lock and the history.
pub async fn status(spec: &ServiceSpec, options: &Options) -> Result<Status, DeployError> {
    let traffic = AnySwitch::of(spec).read()?;
    let inventory = target::inventory(spec).await?;
    let server = |r: &Replica| traffic.as_ref().and_then(|t| t.servers.iter().find(|s| s.container == r.name));
    let mut recent = history(options, &spec.record_name())?;
    recent.drain(..recent.len().saturating_sub(5));
    let replicas = inventory
        .replicas
        .into_iter()
        .map(|(replica, addr)| {
            let server = server(&replica);
            let stale = server.is_some_and(|s| {
                replica.state != super::model::ContainerState::Running || addr.as_ref().is_some_and(|a| *a != s.addr)
            });
            ReplicaStatus { weight: server.map(|s| s.weight), stale, replica }
        })
        .collect();
    Ok(Status {
        service: spec.name.clone(),
        live: traffic.as_ref().map(|t| t.live),
        live_digest: traffic.as_ref().map(|t| t.live_digest.clone()),
        phase: traffic.as_ref().map(|t| describe(&t.phase)).unwrap_or_else(|| "never deployed".into()),
        replicas,
        services: inventory.services,
        lock: lock::holder_for(spec.settings.proxy.upstream_file.as_deref(), &lock_dir(options), &spec.record_name()),
        recent,
    })
}

/// The service's history, oldest first.
pub fn history(options: &Options, service: &str) -> Result<Vec<Record>, DeployError> {
    let dir = history_dir(options);
    history::read(&dir, service).map_err(|source| DeployError::History { path: dir, source })
}
