//! The Engine target's side of taking over a service `docker-compose up -d` runs: compose's
//! containers of the service in its project are the color [`ADOPTED`] while imgctl has no
//! container of that color, so the core can switch away from them, drain them and stop them
//! (kept for `imgctl rollback`) like any color; and the facts the core decides on whether it
//! can ([`ComposeSeen`]).

use super::TargetError;
use crate::deploy::docker::{DockerEngine, EngineError};
use crate::deploy::model::{ADOPTED, ComposeContainer, ComposeSeen, ContainerState, Replica};
use crate::deploy::spec::ServiceSpec;

/// compose's containers of `spec`'s service in `spec`'s project, as replicas of [`ADOPTED`].
pub(super) async fn replicas(engine: &DockerEngine, spec: &ServiceSpec) -> Result<Vec<Replica>, TargetError> {
    let found = engine.compose_replicas(&spec.name, spec.workload.port, ADOPTED).await?;
    Ok(found.into_iter().filter(|c| c.project == spec.project.name).map(|c| c.replica).collect())
}

/// Every container compose runs for `spec`'s service, in any project, and what the core needs
/// to know of each.
pub(super) async fn seen(engine: &DockerEngine, spec: &ServiceSpec) -> Result<ComposeSeen, TargetError> {
    let mut containers = Vec::new();
    for found in engine.compose_replicas(&spec.name, spec.workload.port, ADOPTED).await? {
        let replica = &found.replica;
        let reachable = match &spec.settings.proxy.network {
            Some(network) => {
                replica.state == ContainerState::Running && engine.network_ip(&replica.id, network).await?.is_some()
            }
            None => replica.addr.is_some(),
        };
        containers.push(ComposeContainer {
            name: replica.name.clone(),
            project: found.project,
            state: replica.state,
            image: found.image,
            pinned: found.pinned,
            named: found.named,
            reachable,
        });
    }
    let upstream_missing = spec.settings.proxy.upstream_file.as_ref().filter(|path| !path.exists()).cloned();
    Ok(ComposeSeen {
        project: spec.project.name.clone(),
        project_from: spec.project.from.to_string(),
        containers,
        upstream_missing,
    })
}

/// Container `id` as a replica, whether imgctl made it or compose did.
pub(super) async fn inspect(engine: &DockerEngine, spec: &ServiceSpec, id: &str) -> Result<Replica, EngineError> {
    match engine.inspect(id).await {
        Err(not_ours @ EngineError::NotAReplica { .. }) => {
            match engine.compose_replica(id, spec.workload.port, ADOPTED).await? {
                Some(found) if found.project == spec.project.name => Ok(found.replica),
                _ => Err(not_ours),
            }
        }
        other => other,
    }
}
