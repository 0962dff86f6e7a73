//! The Docker Swarm target: services and their tasks through the Engine API.
//!
//! The image is always given to swarm as `repo@sha256:...`: swarm runs exactly that, and
//! docker CLI 29 no longer pins a tag on `service update` (docker/cli#7302), so a tag would
//! float. Updates carry the service's version index, so a concurrent change is refused
//! instead of overwritten.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::{
    NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, ServiceUpdateStatusStateEnum, TaskSpec,
    TaskSpecContainerSpec, TaskState,
};
use bollard::query_parameters::{ListTasksOptionsBuilder, UpdateServiceOptionsBuilder};

use super::docker::{DockerEngine, EngineError, PullAuth, health_config};
use super::model::{FailureAction, Order, UpdateConfig, Workload};

mod mounts;
mod raw;
mod runtime;

pub use mounts::{MOUNT_LABEL, object_name};

/// What a swarm service should be: a workload (built from the compose service), its image,
/// imgctl's labels and how many tasks run it.
///
/// Swarm is given the workload's command, environment, user, healthcheck, stop signal and
/// grace, networks, and the runtime keys a service can carry (resources, capabilities,
/// ulimits, hosts, DNS, tmpfs mounts, read-only root, init, sysctls, logging, hostname, tty,
/// stdin_open, group_add, placement, restart policy (`deploy.restart_policy`, else `restart`),
/// deploy.labels on the service; a runtime with keys it cannot carry is refused, see
/// `Runtime::refused_on_swarm`); its volumes and port are not passed on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SwarmServiceSpec {
    /// The service name.
    pub name: String,
    /// `repo@sha256:...`.
    pub image: String,
    /// imgctl's own labels, set over the workload's on the service and on its containers.
    pub labels: BTreeMap<String, String>,
    /// What each task runs; its networks are the overlay networks the service attaches to
    /// (nginx reaches the service by name on one of them).
    pub workload: Workload,
    /// Replicas.
    pub replicas: u64,
    /// One task on every node instead (compose `deploy.mode: global`).
    pub global: bool,
    /// compose `deploy.update_config`.
    pub update_config: UpdateConfig,
    /// compose `deploy.rollback_config`.
    pub rollback_config: UpdateConfig,
}

/// A swarm service as the engine reports it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ServiceState {
    /// The id.
    pub id: String,
    /// The name.
    pub name: String,
    /// The version index an update must name.
    pub version: u64,
    /// The image of its spec.
    pub image: String,
    /// The replicas it asks for (0 for a global service).
    pub replicas: u64,
    /// It runs one task on every node (global mode).
    pub global: bool,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// The update in progress or last finished.
    pub update: Option<UpdateState>,
}

/// A service's `UpdateStatus`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UpdateState {
    /// updating, paused, completed, rollback_started, rollback_paused, rollback_completed.
    pub state: String,
    /// Swarm's message ("update paused due to failure or early termination of task ...").
    pub message: String,
}

/// One task of a service.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TaskInfo {
    /// The task id.
    pub id: String,
    /// Its slot (replica number).
    pub slot: u64,
    /// The node it runs on.
    pub node: String,
    /// The image it runs.
    pub image: String,
    /// What swarm wants of it (running, shutdown).
    pub desired: String,
    /// What it is (new, pending, starting, running, failed, rejected, shutdown, ...).
    pub state: String,
    /// Swarm's message, and the error if it failed.
    pub message: String,
}

impl TaskInfo {
    /// A task that ended badly.
    pub fn failed(&self) -> bool {
        matches!(self.state.as_str(), "failed" | "rejected")
    }
}

impl DockerEngine {
    /// Whether this engine is an active swarm node.
    pub async fn swarm_active(&self) -> Result<bool, EngineError> {
        let info = self.api().info().await.map_err(|e| self.error("reading the engine's info", e))?;
        let state = info.swarm.and_then(|s| s.local_node_state).map(|s| s.to_string()).unwrap_or_default();
        Ok(state == "active")
    }

    /// The service called `name`, if it exists.
    pub async fn service(&self, name: &str) -> Result<Option<ServiceState>, EngineError> {
        match self.api().inspect_service(name, None).await {
            Ok(service) => Ok(Some(service_state(service))),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.error(format!("inspecting service {name}"), e)),
        }
    }

    /// Creates the service; returns its id.
    pub async fn create_service(
        &self,
        spec: &SwarmServiceSpec,
        auth: Option<&PullAuth>,
    ) -> Result<String, EngineError> {
        let credentials = auth.and_then(PullAuth::docker_credentials);
        let body = self.with_files(spec, service_spec(spec)?).await?;
        let created = self
            .api()
            .create_service(body, credentials)
            .await
            .map_err(|e| self.error(format!("creating service {}", spec.name), e))?;
        Ok(created.id.unwrap_or_default())
    }

    /// Replaces the service's spec at `version` (refused if the service changed since);
    /// returns swarm's warnings.
    pub async fn update_service(
        &self,
        spec: &SwarmServiceSpec,
        version: u64,
        auth: Option<&PullAuth>,
    ) -> Result<Vec<String>, EngineError> {
        let options = UpdateServiceOptionsBuilder::new().version(version as i32).build();
        let credentials = auth.and_then(PullAuth::docker_credentials);
        let body = self.with_files(spec, service_spec(spec)?).await?;
        let answer = self
            .api()
            .update_service(&spec.name, body, options, credentials)
            .await
            .map_err(|e| match e {
                // Swarm answers a stale version index with a 500, not a 409.
                bollard::errors::Error::DockerResponseServerError { message, .. } if message.contains("update out of sequence") => {
                    EngineError::Api {
                        operation: format!("updating service {}", spec.name),
                        message: format!(
                            "it changed after imgctl read it (version {version}): another update ran meanwhile; look at `imgctl status`, then deploy again ({message})"
                        ),
                    }
                }
                e => self.error(format!("updating service {}", spec.name), e),
            })?;
        Ok(answer.warnings.unwrap_or_default())
    }

    /// `body` with the secrets and configs of `spec`'s workload attached (their objects found
    /// or created first).
    async fn with_files(&self, spec: &SwarmServiceSpec, mut body: ServiceSpec) -> Result<ServiceSpec, EngineError> {
        let service = spec.labels.get(super::color::label::SERVICE).unwrap_or(&spec.name);
        let attached = self.attach(service, &spec.workload.files).await?;
        mounts::set(&mut body, attached);
        Ok(body)
    }

    /// Pins `image` in the live spec of a service someone else owns (a stack): the spec is
    /// read and written back at the version read, with only the image and `labels` (imgctl's,
    /// over the service's) changed, its secrets and configs the stack's; returns swarm's
    /// warnings.
    pub async fn pin_image(
        &self,
        spec: &SwarmServiceSpec,
        auth: Option<&PullAuth>,
    ) -> Result<Vec<String>, EngineError> {
        let (image, labels) = (spec.image.as_str(), &spec.labels);
        let credentials = auth.and_then(PullAuth::docker_credentials);
        self.respec(&spec.name, "updating", |live| pin(live, image, labels), Update::Change(credentials)).await
    }

    /// `spec` as bollard read it, with the healthcheck it cannot read put back (see `raw`): a
    /// spec that is written back keeps everything the service had.
    async fn live_spec(&self, name: &str, mut spec: ServiceSpec) -> Result<ServiceSpec, EngineError> {
        let api = self.api().client_version().to_string();
        let check = raw::healthcheck(name, &api).await.map_err(|message| EngineError::Api {
            operation: format!("reading the healthcheck of service {name}"),
            message,
        })?;
        if let Some(container) = spec.task_template.as_mut().and_then(|t| t.container_spec.as_mut()) {
            container.health_check = check;
        }
        Ok(spec)
    }

    /// Asks swarm to roll the service back to its previous spec (`rollback=previous`).
    pub async fn rollback_service(&self, name: &str) -> Result<(), EngineError> {
        self.respec(name, "rolling back", |_| {}, Update::Rollback).await.map(drop)
    }

    /// Sets the service's replicas (0 keeps it defined, with nothing running).
    pub async fn scale_service(&self, name: &str, replicas: u64) -> Result<(), EngineError> {
        self.respec(name, "scaling", |spec| spec.mode = Some(replicated(replicas)), Update::Change(None))
            .await
            .map(drop)
    }

    /// Reads the service's spec and version, changes the spec, and writes it back at that
    /// version; returns swarm's warnings.
    async fn respec(
        &self,
        name: &str,
        doing: &str,
        change: impl FnOnce(&mut ServiceSpec),
        update: Update,
    ) -> Result<Vec<String>, EngineError> {
        let service = self
            .api()
            .inspect_service(name, None)
            .await
            .map_err(|e| self.error(format!("inspecting service {name}"), e))?;
        let version = service.version.and_then(|v| v.index).unwrap_or_default();
        let mut spec = self.live_spec(name, service.spec.unwrap_or_default()).await?;
        change(&mut spec);
        let mut options = UpdateServiceOptionsBuilder::new().version(version as i32);
        let credentials = match update {
            Update::Change(credentials) => credentials,
            Update::Rollback => {
                options = options.rollback("previous");
                None
            }
        };
        let answer = self
            .api()
            .update_service(name, spec, options.build(), credentials)
            .await
            .map_err(|e| self.error(format!("{doing} service {name}"), e))?;
        Ok(answer.warnings.unwrap_or_default())
    }

    /// Removes the service (already gone is fine).
    pub async fn remove_service(&self, name: &str) -> Result<(), EngineError> {
        match self.api().delete_service(name).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.error(format!("removing service {name}"), e)),
        }
    }

    /// The service's tasks, newest first per slot.
    pub async fn tasks(&self, service: &str) -> Result<Vec<TaskInfo>, EngineError> {
        let filters = HashMap::from([("service", vec![service])]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        let tasks = self
            .api()
            .list_tasks(Some(options))
            .await
            .map_err(|e| self.error(format!("listing the tasks of {service}"), e))?;
        let mut tasks: Vec<(String, TaskInfo)> = tasks
            .into_iter()
            .map(|t| {
                let status = t.status.unwrap_or_default();
                let message = match (status.message.unwrap_or_default(), status.err.unwrap_or_default()) {
                    (m, e) if e.is_empty() => m,
                    (m, e) => format!("{m}: {e}"),
                };
                let updated = t.updated_at.map(|d| d.to_string()).unwrap_or_default();
                let info = TaskInfo {
                    id: t.id.unwrap_or_default(),
                    slot: t.slot.unwrap_or_default().max(0) as u64,
                    node: t.node_id.unwrap_or_default(),
                    image: t.spec.and_then(|s| s.container_spec).and_then(|c| c.image).unwrap_or_default(),
                    desired: t.desired_state.map(|s| task_state(&s)).unwrap_or_default(),
                    state: status.state.map(|s| task_state(&s)).unwrap_or_default(),
                    message,
                };
                (updated, info)
            })
            .collect();
        tasks.sort_by(|a, b| a.1.slot.cmp(&b.1.slot).then(b.0.cmp(&a.0)));
        Ok(tasks.into_iter().map(|(_, t)| t).collect())
    }
}

/// `spec` with its task's image set to `image` and `labels` set over the service's own labels;
/// everything else (the container's labels among it) as it was.
fn pin(spec: &mut ServiceSpec, image: &str, labels: &BTreeMap<String, String>) {
    let task = spec.task_template.get_or_insert_with(Default::default);
    task.container_spec.get_or_insert_with(Default::default).image = Some(image.to_owned());
    let own = spec.labels.get_or_insert_with(Default::default);
    own.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
}

/// How many tasks a service runs when it has converged: `replicas`, or for a global service
/// one per node swarm schedules it on, which is how many tasks swarm wants running.
pub fn wanted_tasks(tasks: &[TaskInfo], replicas: u64, global: bool) -> u64 {
    if global { (tasks.iter().filter(|t| t.desired == "running").count() as u64).max(1) } else { replicas }
}

/// Whether `tasks` show the service converged on `image` with `replicas` running.
pub fn converged(tasks: &[TaskInfo], image: &str, replicas: u64) -> bool {
    let wanted: Vec<_> = tasks.iter().filter(|t| t.desired == "running").collect();
    wanted.len() as u64 == replicas && wanted.iter().all(|t| t.state == "running" && t.image == image)
}

/// Why tasks failed, from the newest failures (for a deploy that swarm rolled back).
pub fn failure_reason(tasks: &[TaskInfo]) -> Option<String> {
    let mut reasons: Vec<String> = tasks
        .iter()
        .filter(|t| t.failed())
        .map(|t| format!("task {} (slot {}): {}", short(&t.id), t.slot, t.message))
        .collect();
    reasons.dedup();
    reasons.truncate(3);
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn task_state(state: &TaskState) -> String {
    serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// How [`DockerEngine::respec`] writes the spec back: changed (with the registry credential
/// the nodes pull with, if any), or as swarm's own `rollback=previous`.
enum Update {
    Change(Option<bollard::auth::DockerCredentials>),
    Rollback,
}

fn replicated(replicas: u64) -> ServiceSpecMode {
    ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated { replicas: Some(replicas as i64) }),
        ..Default::default()
    }
}

fn nanos(duration: Duration) -> i64 {
    duration.as_nanos().min(i64::MAX as u128) as i64
}

fn service_state(service: bollard::models::Service) -> ServiceState {
    let spec = service.spec.unwrap_or_default();
    let image = |spec: &ServiceSpec| {
        spec.task_template.as_ref().and_then(|t| t.container_spec.as_ref()).and_then(|c| c.image.clone())
    };
    ServiceState {
        id: service.id.unwrap_or_default(),
        name: spec.name.clone().unwrap_or_default(),
        version: service.version.and_then(|v| v.index).unwrap_or_default(),
        image: image(&spec).unwrap_or_default(),
        replicas: spec
            .mode
            .as_ref()
            .and_then(|m| m.replicated.as_ref())
            .and_then(|r| r.replicas)
            .unwrap_or_default()
            .max(0) as u64,
        global: spec.mode.as_ref().is_some_and(|m| m.global.is_some()),
        labels: spec.labels.clone().unwrap_or_default(),
        update: service.update_status.map(|u| UpdateState {
            state: u.state.map(|s| update_state(&s)).unwrap_or_default(),
            message: u.message.unwrap_or_default(),
        }),
    }
}

fn update_state(state: &ServiceUpdateStatusStateEnum) -> String {
    serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The Engine API's service spec for `spec`; refused when its runtime has keys a service
/// cannot carry (the compose reader refuses them first, naming them).
fn service_spec(spec: &SwarmServiceSpec) -> Result<ServiceSpec, EngineError> {
    let workload = &spec.workload;
    let refused = workload.runtime.refused_on_swarm();
    if !refused.is_empty() {
        let keys: Vec<String> = refused.iter().map(ToString::to_string).collect();
        return Err(EngineError::InvalidSpec { container: format!("service {}", spec.name), reason: keys.join("; ") });
    }
    let runtime = &workload.runtime;
    let update = &spec.update_config;
    let rollback = &spec.rollback_config;
    let networks: Vec<NetworkAttachmentConfig> = workload
        .networks
        .iter()
        .map(|n| NetworkAttachmentConfig { target: Some(n.clone()), ..Default::default() })
        .collect();
    // imgctl's labels win: they are how the deploy finds its services again.
    let labels: HashMap<String, String> =
        workload.labels.iter().chain(&spec.labels).map(|(k, v)| (k.clone(), v.clone())).collect();
    // compose `deploy.labels` label the service alone, as `docker stack deploy` has it.
    let service_labels: HashMap<String, String> = workload
        .labels
        .iter()
        .chain(&runtime.scheduling.labels)
        .chain(&spec.labels)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(service_labels),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(spec.image.clone()),
                labels: Some(labels).filter(|l| !l.is_empty()),
                command: workload.entrypoint.clone(),
                args: workload.command.clone(),
                env: Some(workload.environment.clone()).filter(|e| !e.is_empty()),
                dir: workload.working_dir.clone(),
                user: workload.user.clone(),
                health_check: workload.healthcheck.as_ref().map(health_config),
                stop_signal: workload.stop_signal.clone(),
                stop_grace_period: Some(nanos(workload.stop_grace)),
                ..runtime::container_spec(runtime)
            }),
            networks: Some(networks).filter(|n| !n.is_empty()),
            resources: runtime::resources(runtime),
            log_driver: runtime::log_driver(runtime),
            placement: runtime::placement(runtime),
            restart_policy: runtime::restart_policy(runtime, workload.restart.as_deref()),
            ..Default::default()
        }),
        mode: Some(if spec.global {
            ServiceSpecMode { global: Some(Default::default()), ..Default::default() }
        } else {
            replicated(spec.replicas)
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(i64::from(update.parallelism)),
            delay: Some(nanos(update.delay)),
            failure_action: Some(match update.failure_action {
                FailureAction::Pause => ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
                FailureAction::Continue => ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
                FailureAction::Rollback => ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
            }),
            monitor: Some(nanos(update.monitor)),
            max_failure_ratio: Some(update.max_failure_ratio),
            order: Some(match update.order {
                Order::StopFirst => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
                Order::StartFirst => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
            }),
        }),
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(i64::from(rollback.parallelism)),
            delay: Some(nanos(rollback.delay)),
            // A rollback that fails can only pause or continue.
            failure_action: Some(match rollback.failure_action {
                FailureAction::Continue => ServiceSpecRollbackConfigFailureActionEnum::CONTINUE,
                _ => ServiceSpecRollbackConfigFailureActionEnum::PAUSE,
            }),
            monitor: Some(nanos(rollback.monitor)),
            max_failure_ratio: Some(rollback.max_failure_ratio),
            order: Some(match rollback.order {
                Order::StopFirst => ServiceSpecRollbackConfigOrderEnum::STOP_FIRST,
                Order::StartFirst => ServiceSpecRollbackConfigOrderEnum::START_FIRST,
            }),
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
