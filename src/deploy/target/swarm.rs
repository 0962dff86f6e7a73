//! Colors on Docker Swarm: each color is one service, `SERVICE-blue` or `SERVICE-green`, on
//! the overlay network the proxy shares with it. The proxy reaches a color as
//! `tasks.SERVICE-color` (the tasks' own addresses: a VIP needs IPVS in the host's kernel),
//! resolved when nginx reloads, so a color is one replica however many tasks it has: started,
//! scaled to zero when retired, removed when orphaned.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use super::{Started, Target, TargetError};
use crate::deploy::color::{Color, label};
use crate::deploy::docker::{DockerEngine, PullAuth};
use crate::deploy::events::Events;
use crate::deploy::model::{ContainerState, Health, PinnedImage, Replica};
use crate::deploy::spec::ServiceSpec;
use crate::deploy::swarm::{ServiceState, SwarmServiceSpec, TaskInfo, converged, failure_reason};

/// A swarm service and its tasks (`imgctl status`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServiceTasks {
    /// The service as swarm reports it.
    #[serde(flatten)]
    pub service: ServiceState,
    /// Its tasks that run or failed.
    pub tasks: Vec<TaskInfo>,
}

/// The swarm colors of one service.
#[derive(Debug)]
pub struct SwarmColors<'a> {
    pub(super) engine: DockerEngine,
    pub(super) spec: &'a ServiceSpec,
    /// The registry credential the nodes pull with.
    pub(super) auth: Option<PullAuth>,
}

impl<'a> SwarmColors<'a> {
    /// The colors of `spec` on `engine`.
    pub fn new(engine: DockerEngine, spec: &'a ServiceSpec) -> Self {
        Self { engine, spec, auth: None }
    }

    fn color_service(&self, color: Color) -> String {
        format!("{}-{color}", self.spec.name)
    }

    /// The color services and their tasks.
    pub async fn services(&self) -> Result<Vec<ServiceTasks>, TargetError> {
        let names = [self.color_service(Color::Blue), self.color_service(Color::Green)];
        services(&self.engine, &names).await
    }

    async fn existing(&self, name: &str) -> Result<ServiceState, TargetError> {
        self.engine.service(name).await?.ok_or_else(|| TargetError::Gone(name.to_owned()))
    }
}

/// The services among `names` that exist, with their running or failed tasks.
pub(super) async fn services(engine: &DockerEngine, names: &[String]) -> Result<Vec<ServiceTasks>, TargetError> {
    let mut found = Vec::new();
    for name in names {
        if let Some(service) = engine.service(name).await? {
            let tasks =
                engine.tasks(name).await?.into_iter().filter(|t| t.desired == "running" || t.failed()).collect();
            found.push(ServiceTasks { service, tasks });
        }
    }
    Ok(found)
}

fn as_replica(service: &ServiceState, color: Color) -> Replica {
    Replica {
        id: service.name.clone(),
        name: service.name.clone(),
        color,
        digest: service.labels.get(label::DIGEST).cloned().unwrap_or_default(),
        deploy_id: service.labels.get(label::DEPLOY_ID).cloned().unwrap_or_default(),
        index: 1,
        state: if service.replicas > 0 { ContainerState::Running } else { ContainerState::Exited },
        health: Health::None,
        addr: None,
        created: String::new(),
        source: crate::deploy::model::Source::Imgctl,
    }
}

/// The swarm service spec for `name` running `image`.
pub(super) fn service_spec(
    spec: &ServiceSpec,
    name: &str,
    image: &PinnedImage,
    deploy_id: &str,
    color: Option<Color>,
) -> SwarmServiceSpec {
    let mut labels = BTreeMap::from([
        (label::SERVICE.to_owned(), spec.name.clone()),
        (label::DIGEST.to_owned(), image.digest.to_string()),
        (label::DEPLOY_ID.to_owned(), deploy_id.to_owned()),
    ]);
    if let Some(color) = color {
        labels.insert(label::COLOR.into(), color.as_str().into());
    }
    let mut workload = spec.workload.clone();
    if let Some(network) = spec.settings.swarm.network.as_ref().filter(|n| !workload.networks.contains(n)) {
        workload.networks.push(network.clone());
    }
    SwarmServiceSpec {
        name: name.into(),
        image: image.reference(),
        labels,
        workload,
        replicas: u64::from(spec.replicas),
        global: spec.global,
        update_config: spec.update_config.clone(),
        rollback_config: spec.rollback_config.clone(),
    }
}

impl Target for SwarmColors<'_> {
    async fn observe(&self) -> Result<Vec<Replica>, TargetError> {
        let mut replicas = Vec::new();
        for color in [Color::Blue, Color::Green] {
            if let Some(service) = self.engine.service(&self.color_service(color)).await? {
                replicas.push(as_replica(&service, color));
            }
        }
        Ok(replicas)
    }

    async fn prepare(
        &mut self,
        _image: &PinnedImage,
        auth: PullAuth,
        _events: &mut dyn Events,
    ) -> Result<bool, TargetError> {
        // An external secret or config that is missing stops the run before anything changes.
        self.engine.externals(&self.spec.workload.files).await?;
        // Each node pulls for its tasks, with the credential passed along.
        self.auth = Some(auth);
        Ok(false)
    }

    /// Creates or updates the color's service at full scale and waits until its tasks run the
    /// image (swarm starts a task's traffic only once its healthcheck passes). On failure the
    /// color's service is removed.
    async fn start(
        &mut self,
        color: Color,
        image: &PinnedImage,
        _indices: &[u32],
        deploy_id: &str,
        events: &mut dyn Events,
    ) -> Result<Started, TargetError> {
        let name = self.color_service(color);
        let since = Instant::now();
        let spec = service_spec(self.spec, &name, image, deploy_id, Some(color));
        let known = task_ids(&self.engine, &name).await;
        let applied = match self.engine.service(&name).await? {
            Some(existing) => self.engine.update_service(&spec, existing.version, self.auth.as_ref()).await.map(|_| ()),
            None => self.engine.create_service(&spec, self.auth.as_ref()).await.map(|_| ()),
        };
        if let Err(source) = applied {
            let _ = self.engine.remove_service(&name).await;
            return Err(TargetError::Start { replica: name, source });
        }
        let deadline = self.spec.settings.health.deadline;
        let replicas = u64::from(self.spec.replicas);
        if let Err(e) = wait_converged(&self.engine, &name, &spec.image, replicas, deadline, &known, events).await {
            let _ = self.engine.remove_service(&name).await;
            return Err(e);
        }
        let service = self.existing(&name).await?;
        prune_files(&self.engine, &self.spec.name, events).await;
        Ok(Started { replicas: vec![as_replica(&service, color)], gate: since.elapsed() })
    }

    /// Scales the color services to the compose replica count and waits for them.
    async fn resume(&mut self, replicas: &[Replica], events: &mut dyn Events) -> Result<Started, TargetError> {
        let since = Instant::now();
        let count = u64::from(self.spec.replicas);
        let mut back = Vec::new();
        for replica in replicas {
            let service = self.existing(&replica.name).await?;
            let known = task_ids(&self.engine, &replica.name).await;
            if service.replicas != count {
                self.engine.scale_service(&replica.name, count).await?;
            }
            let deadline = self.spec.settings.health.deadline;
            wait_converged(&self.engine, &replica.name, &service.image, count, deadline, &known, events).await?;
            back.push(Replica { state: ContainerState::Running, ..replica.clone() });
        }
        Ok(Started { replicas: back, gate: since.elapsed() })
    }

    async fn retire(&self, replica: &Replica, remove: bool) -> Result<(), TargetError> {
        if remove {
            Ok(self.engine.remove_service(&replica.name).await?)
        } else {
            Ok(self.engine.scale_service(&replica.name, 0).await?)
        }
    }

    /// Whether the color service still runs all its tasks.
    async fn open_connections(&self, _replica: &Replica) -> Option<u32> {
        // A color's tasks may run on any node: their connections are not countable here.
        None
    }

    async fn check(&self, replica: &Replica) -> Result<(), TargetError> {
        let service = self.existing(&replica.name).await?;
        if service.replicas == 0 {
            return Err(TargetError::TasksDown { name: replica.name.clone(), why: "scaled to zero".into() });
        }
        let tasks = self.engine.tasks(&replica.name).await?;
        if converged(&tasks, &service.image, service.replicas) {
            return Ok(());
        }
        let why = failure_reason(&tasks).unwrap_or_else(|| "not all its tasks run".into());
        Err(TargetError::TasksDown { name: replica.name.clone(), why })
    }

    /// `tasks.NAME:port`: the tasks' addresses on the overlay network. Without a port (a
    /// worker) there is nothing to point a proxy at.
    fn address(&self, replica: &Replica) -> Option<String> {
        self.spec.workload.port.map(|port| format!("tasks.{}:{port}", replica.name))
    }

    fn probe_address(&self, _replica: &Replica) -> Option<String> {
        None
    }

    fn noun(&self) -> &'static str {
        "color service(s)"
    }

    fn stop_verb(&self) -> &'static str {
        "scale to 0"
    }
}

/// Removes the secrets and configs of imgctl's own for `service` that no service spec, current
/// or previous, uses any more (see `swarm::mounts`), saying which. A failure to look is only
/// noted: the deploy itself succeeded.
pub(super) async fn prune_files(engine: &DockerEngine, service: &str, events: &mut dyn Events) {
    match engine.prune_files(service).await {
        Ok(removed) => {
            for object in removed {
                events.note(&format!("removed {object}: no service spec, current or previous, uses it"));
            }
        }
        Err(e) => events.note(&format!("old secrets and configs of {service} were not removed: {e}")),
    }
}

/// Polls until the service runs `replicas` tasks of `image`, or `limit` passes.
pub(super) async fn wait_converged(
    engine: &DockerEngine,
    name: &str,
    image: &str,
    replicas: u64,
    limit: Duration,
    known: &HashSet<String>,
    events: &mut dyn Events,
) -> Result<(), TargetError> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let tasks = engine.tasks(name).await?;
        if converged(&tasks, image, replicas) {
            return Ok(());
        }
        let tasks = new_tasks(tasks, known);
        let progress = progress(&tasks, image, replicas);
        if progress != last {
            events.note(&format!("{name}: {progress}"));
            last = progress;
        }
        if started.elapsed() >= limit {
            let why = failure_reason(&tasks).unwrap_or_else(|| last.clone());
            return Err(TargetError::NotConverged { name: name.to_owned(), limit, why });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The ids of the service's tasks now: failures among them belong to earlier runs.
pub(super) async fn task_ids(engine: &DockerEngine, name: &str) -> HashSet<String> {
    engine.tasks(name).await.map(|tasks| tasks.into_iter().map(|t| t.id).collect()).unwrap_or_default()
}

/// The tasks this run's change made (not in `known`): the only ones whose failures are its own.
pub(super) fn new_tasks(tasks: Vec<TaskInfo>, known: &HashSet<String>) -> Vec<TaskInfo> {
    tasks.into_iter().filter(|t| !known.contains(&t.id)).collect()
}

pub(super) fn progress(tasks: &[TaskInfo], image: &str, replicas: u64) -> String {
    let on_new = tasks.iter().filter(|t| t.desired == "running" && t.state == "running" && t.image == image).count();
    let failed = tasks.iter().filter(|t| t.failed() && t.image == image).count();
    let mut text = format!("{on_new}/{replicas} tasks running the new digest");
    if failed > 0 {
        text.push_str(&format!(", {failed} failed"));
    }
    text
}
