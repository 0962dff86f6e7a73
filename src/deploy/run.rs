//! One run of `imgctl deploy | rollback`: the context every strategy works in (engine, nginx
//! switch, lock, hooks, step timings) and the effects they share.
//!
//! The rule that keeps requests flowing: containers leave nginx's upstream before they are
//! stopped (after a drain wait), and join it only after the health gate.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::child_env::ChildEnv;
use super::color::{Color, label};
use super::docker::{ContainerSpec, DockerEngine, EngineError, PullAuth};
use super::health::{self, HealthError};
use super::history::{self, Outcome, Record, StepTiming};
use super::hooks::{self, Hook, HookError};
use super::lock::{self, DeployLock, Holder, LockError};
use super::model::{ContainerState, Phase, Replica, Server, Traffic};
use super::nginx::{ProxyError, Switch};
use super::spec::{ServiceSpec, Strategy, Target};
use super::swarm_target;
use crate::digest::Digest;
use crate::reference::Reference;

/// An image pinned by digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedImage {
    /// The repository, as a reference without tag or digest.
    pub repository: Reference,
    /// The digest.
    pub digest: Digest,
}

impl PinnedImage {
    /// `repo@sha256:...`, as the engine pulls it.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.repository.name(), self.digest)
    }
}

/// What the run does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Deploy this image with the service's strategy.
    Deploy(PinnedImage),
    /// Resume a paused deploy (canary pause, `--no-auto-promote`, paused rolling update).
    Continue,
    /// Abandon a paused deploy: all traffic back on the stable color, the new one removed.
    Abort,
    /// Put the previous version back (or `to`, a digest the idle color or the history knows).
    Rollback {
        /// A digest to roll back to instead of the previous one.
        to: Option<Digest>,
    },
}

impl Action {
    /// `deploy`, `continue`, `abort` or `rollback`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Deploy(_) => "deploy",
            Self::Continue => "continue",
            Self::Abort => "abort",
            Self::Rollback { .. } => "rollback",
        }
    }
}

/// Where a run keeps its state and finds credentials.
#[derive(Clone, Debug)]
pub struct Options {
    /// Locks and history live here (`$XDG_STATE_HOME/imgctl/deploy` by default).
    pub state_dir: PathBuf,
    /// docker's config directory, for registry credentials.
    pub docker_dir: PathBuf,
    /// Who runs it (history, lock, hooks).
    pub performer: String,
    /// Stop before the switch and wait for `--continue`.
    pub no_auto_promote: bool,
}

/// What the binary is told while a run goes on.
pub trait Events {
    /// A step finished.
    fn step(&mut self, step: &str, elapsed: Duration);
    /// Something worth a line (a hook's output, a pull status, a reconcile).
    fn note(&mut self, text: &str);
}

/// A run could not start, or failed in a way that needs a person.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Another run holds the service's lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The Docker Engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The nginx switch failed.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The registry credential for the pull could not be read.
    #[error("reading the registry credential for {registry}: {source}")]
    Credentials {
        /// The registry.
        registry: String,
        /// Why.
        source: crate::registry::credentials::ResolveError,
    },
    /// A deploy waits for `--continue` or `--abort`.
    #[error(
        "{service} has a deploy in flight ({phase}): resume it with `imgctl deploy {service} --continue` or drop it with `--abort`"
    )]
    InFlight {
        /// The service.
        service: String,
        /// What is in flight.
        phase: String,
    },
    /// `--continue` or `--abort` with nothing in flight.
    #[error("{service} has no paused deploy to {action}")]
    NothingInFlight {
        /// The service.
        service: String,
        /// continue or abort.
        action: &'static str,
    },
    /// Nothing to roll back to.
    #[error("{service} has no previous version to roll back to{detail}")]
    NothingToRollBack {
        /// The service.
        service: String,
        /// More.
        detail: String,
    },
    /// `--no-auto-promote` on a service with no live version.
    #[error("{0} has no live version yet: its first deploy switches at once (drop --no-auto-promote)")]
    NoLiveVersion(String),
    /// The service targets swarm and this engine is not a swarm node.
    #[error(
        "x-imgctl.target is swarm, but this Docker Engine is not part of a swarm (docker swarm init, or point DOCKER_HOST at a manager)"
    )]
    NotASwarm,
    /// What an earlier run left could not be put right.
    #[error("cleaning up after an earlier run: {0}")]
    Reconcile(String),
    /// The history could not be written.
    #[error("writing the deploy history under {path}: {source}")]
    History {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: crate::jsonl::JsonlError,
    },
}

/// How a run ended, for the binary and `--output json`: its history record and the figures
/// that matter while it runs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// What the history recorded.
    #[serde(flatten)]
    pub record: Record,
    /// The live color before the run.
    pub previous_color: Option<Color>,
    /// The switch itself (write, `nginx -t`, reload), in milliseconds.
    pub switch_ms: Option<u64>,
    /// From the start to traffic on the new color, less the time spent in health gates.
    pub time_to_traffic_ms: Option<u64>,
    /// Where traffic goes now.
    pub live_color: Option<Color>,
}

/// The context of one run.
pub(super) struct Run<'a> {
    pub spec: &'a ServiceSpec,
    pub options: &'a Options,
    pub engine: DockerEngine,
    pub switch: Switch<'a>,
    pub events: &'a mut dyn Events,
    pub id: String,
    pub action: &'static str,
    /// An earlier run died holding the lock: what it left must be reconciled.
    pub took_over: bool,
    /// The registry credential for the image (swarm passes it to the nodes that pull).
    pub auth: Option<PullAuth>,
    lock: Option<DeployLock>,
    started: Instant,
    started_at: SystemTime,
    pub steps: Vec<StepTiming>,
    gate_time: Duration,
    pub switch_time: Option<Duration>,
    pub traffic_at: Option<Duration>,
}

impl<'a> Run<'a> {
    pub async fn start(
        spec: &'a ServiceSpec,
        options: &'a Options,
        action: &Action,
        events: &'a mut dyn Events,
    ) -> Result<Self, DeployError> {
        let what = match action {
            Action::Deploy(image) => format!("deploy {}", image.digest),
            other => other.name().to_owned(),
        };
        let lock =
            lock::acquire(&lock_dir(options), &spec.name, &Holder::this_process(what, options.performer.clone()))?;
        if let Some(dead) = &lock.taken_over {
            events.note(&format!(
                "took over the lock of a run that died ({dead}); reconciling from the containers' labels"
            ));
        }
        let engine = DockerEngine::connect().await?;
        Ok(Self {
            spec,
            options,
            engine,
            switch: Switch::new(&spec.settings.proxy, ChildEnv::inherit(&spec.settings.pass_env)),
            events,
            id: new_id(),
            action: action.name(),
            took_over: lock.taken_over.is_some(),
            auth: None,
            lock: Some(lock),
            started: Instant::now(),
            started_at: SystemTime::now(),
            steps: Vec::new(),
            gate_time: Duration::ZERO,
            switch_time: None,
            traffic_at: None,
        })
    }

    pub fn strategy(&self) -> Strategy {
        self.spec.settings.strategy
    }

    pub fn record(&mut self, step: impl Into<String>, since: Instant) {
        let step = step.into();
        let elapsed = since.elapsed();
        self.events.step(&step, elapsed);
        self.steps.push(StepTiming { step, ms: elapsed.as_millis() as u64 });
    }

    fn swarm(&self) -> bool {
        self.spec.settings.target == Target::Swarm
    }

    /// The service's replicas as the engine has them now: containers, or on swarm one per
    /// color service.
    pub async fn replicas(&self) -> Result<Vec<Replica>, DeployError> {
        Ok(replicas(&self.engine, self.spec).await?)
    }

    /// Starts a replica nginx points at again (on swarm: scales its color service back up).
    pub async fn start_replica(&mut self, replica: &Replica) -> Result<(), DeployError> {
        if self.swarm() {
            swarm_target::restart(self, std::slice::from_ref(replica)).await.map_err(DeployError::Reconcile)?;
            return Ok(());
        }
        Ok(self.engine.start(&replica.id).await?)
    }

    /// Removes a replica (on swarm: its color service).
    pub async fn remove_replica(&self, replica: &Replica) -> Result<(), DeployError> {
        if self.swarm() {
            return Ok(swarm_target::retire(self, replica, true).await?);
        }
        Ok(self.engine.remove(&replica.id).await?)
    }

    /// Whether a replica in traffic still runs and answers (a canary pause watches this).
    pub async fn check(&self, replica: &Replica) -> Result<(), String> {
        if self.swarm() {
            return swarm_target::check(self, replica).await;
        }
        let settings = &self.spec.settings.health;
        let inspected = self.engine.inspect(&replica.id).await.map_err(|e| e.to_string())?;
        if inspected.state != ContainerState::Running {
            return Err(format!("{} stopped running", replica.name));
        }
        if let (Some(path), Some(addr)) = (&settings.path, inspected.addr) {
            match health::probe(&addr.to_string(), path, settings.timeout).await {
                Ok(status) if (200..300).contains(&status) => {}
                Ok(status) => return Err(format!("{} answered {status} on {path}", replica.name)),
                Err(e) => return Err(format!("{}: {e}", replica.name)),
            }
        }
        Ok(())
    }

    /// The credential docker would send to `repository`'s registry (the engine pulls with it;
    /// on swarm it goes along to the nodes that pull).
    fn registry_auth(&self, repository: &Reference) -> Result<PullAuth, DeployError> {
        let registry = repository.registry().to_owned();
        let (credential, _) = crate::registry::credentials::resolve(&self.options.docker_dir, &registry)
            .map_err(|source| DeployError::Credentials { registry: registry.clone(), source })?;
        Ok(PullAuth { server: crate::registry::credentials::server_url_for(&registry), credential })
    }

    /// Pulls `image` with the credential docker would use for its registry.
    pub async fn pull(&mut self, image: &PinnedImage) -> Result<(), DeployError> {
        let since = Instant::now();
        let auth = self.registry_auth(&image.repository)?;
        self.auth = Some(auth.clone());
        if self.swarm() {
            // Each swarm node pulls for its tasks, with the credential passed along.
            return Ok(());
        }
        let events = &mut *self.events;
        let mut last = String::new();
        self.engine
            .pull(&image.reference(), Some(&auth), &mut |status| {
                if status != last {
                    events.note(status);
                    last = status.to_owned();
                }
            })
            .await?;
        self.record(format!("pull {}", image.digest), since);
        Ok(())
    }

    /// Creates and starts replicas `indices` of `color` running `image`, then waits for the
    /// health gate. On failure the replicas it made are removed.
    pub async fn build(
        &mut self,
        color: Color,
        image: &str,
        digest: &str,
        indices: &[u32],
    ) -> Result<Vec<Replica>, String> {
        if self.swarm() {
            let gate = Instant::now();
            let built = swarm_target::build_color(self, color, image, digest).await;
            self.gate_time += gate.elapsed();
            return built;
        }
        let since = Instant::now();
        let mut ids = Vec::new();
        for &index in indices {
            let spec = self.container_spec(color, image, digest, index);
            // A container left with this name by an earlier run goes first.
            if let Some(old) =
                self.replicas().await.map_err(|e| e.to_string())?.into_iter().find(|r| r.name == spec.name)
            {
                self.engine.remove(&old.id).await.map_err(|e| e.to_string())?;
            }
            let created = self.engine.create(&spec).await;
            let started = match created {
                Ok(id) => {
                    ids.push(id.clone());
                    self.engine.start(&id).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = started {
                self.remove_ids(&ids).await;
                return Err(format!("starting {}: {e}", spec.name));
            }
        }
        self.record(format!("start {color} x{}", indices.len()), since);
        let gate = Instant::now();
        let result = health::wait_healthy(&self.engine, &ids, &self.spec.settings.health).await;
        self.gate_time += gate.elapsed();
        self.record(format!("health gate {color}"), gate);
        match result {
            Ok(replicas) => Ok(replicas),
            Err(e) => {
                self.remove_ids(&ids).await;
                Err(match e {
                    HealthError::Engine(e) => e.to_string(),
                    other => format!("health check failed: {other}"),
                })
            }
        }
    }

    /// Starts stopped replicas again and waits for their health gate.
    pub async fn restart(&mut self, replicas: &[Replica]) -> Result<Vec<Replica>, String> {
        if self.swarm() {
            let gate = Instant::now();
            let back = swarm_target::restart(self, replicas).await;
            self.gate_time += gate.elapsed();
            return back;
        }
        let Some(first) = replicas.first() else { return Ok(Vec::new()) };
        let since = Instant::now();
        for replica in replicas.iter().filter(|r| r.state != ContainerState::Running) {
            self.engine.start(&replica.id).await.map_err(|e| format!("starting {}: {e}", replica.name))?;
        }
        self.record(format!("start {} x{}", first.color, replicas.len()), since);
        // Only the wait for health counts as gate time: starting is part of the way to traffic.
        let gate = Instant::now();
        let ids: Vec<String> = replicas.iter().map(|r| r.id.clone()).collect();
        let result = health::wait_healthy(&self.engine, &ids, &self.spec.settings.health).await;
        self.gate_time += gate.elapsed();
        self.record(format!("health gate {}", first.color), gate);
        result.map_err(|e| format!("health check failed: {e}"))
    }

    fn container_spec(&self, color: Color, image: &str, digest: &str, index: u32) -> ContainerSpec {
        let spec = self.spec;
        let mut labels = spec.labels.clone();
        labels.insert(label::SERVICE.into(), spec.name.clone());
        labels.insert(label::COLOR.into(), color.as_str().into());
        labels.insert(label::DIGEST.into(), digest.into());
        labels.insert(label::DEPLOY_ID.into(), self.id.clone());
        labels.insert(label::REPLICA.into(), index.to_string());
        ContainerSpec {
            name: format!("{}-{color}-{index}", spec.name),
            image: image.into(),
            labels,
            env: spec.environment.clone(),
            command: spec.command.clone(),
            entrypoint: spec.entrypoint.clone(),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            port: spec.settings.port,
            healthcheck: spec.healthcheck.clone(),
            volumes: spec.volumes.clone(),
            networks: spec.networks.clone(),
            restart: spec.restart.clone(),
            stop_signal: spec.stop_signal.clone(),
        }
    }

    /// nginx servers for `replicas`, each with `weight`.
    pub fn servers(&self, replicas: &[Replica], weight: u32) -> Vec<Server> {
        if self.swarm() {
            // tasks.NAME resolves to the tasks' addresses on the overlay network (swarm's VIP
            // needs IPVS in the kernel, which not every host has). Without a port (a rolling
            // worker) there is nothing to point nginx at.
            let Some(port) = self.spec.settings.port else { return Vec::new() };
            return replicas
                .iter()
                .map(|r| Server {
                    addr: format!("tasks.{}:{port}", r.name),
                    weight,
                    container: r.name.clone(),
                    color: r.color,
                })
                .collect();
        }
        let host = &self.spec.settings.proxy.host;
        replicas
            .iter()
            .filter_map(|r| {
                r.addr.map(|addr| Server {
                    addr: super::names::host_port(host, addr.port()),
                    weight,
                    container: r.name.clone(),
                    color: r.color,
                })
            })
            .collect()
    }

    /// The traffic state this run writes.
    pub fn traffic(&self, live: Color, live_digest: &str, phase: Phase, servers: Vec<Server>) -> Traffic {
        Traffic {
            service: self.spec.name.clone(),
            live,
            live_digest: live_digest.into(),
            deploy_id: self.id.clone(),
            phase,
            servers,
        }
    }

    /// Points nginx at `traffic`; the first switch that moves traffic to a new color is the
    /// one timed as "the switch".
    pub fn apply(&mut self, traffic: &Traffic, step: &str) -> Result<(), ProxyError> {
        let since = Instant::now();
        let took = self.switch.apply(traffic)?;
        self.record(step, since);
        if self.switch_time.is_none() {
            self.switch_time = Some(took);
            self.traffic_at = Some(self.started.elapsed().saturating_sub(self.gate_time));
        }
        Ok(())
    }

    /// Checks through nginx (`verify_url`) or, without one, on each new replica, that the new
    /// version answers after the switch.
    pub async fn verify(&mut self, replicas: &[Replica]) -> Result<(), String> {
        let since = Instant::now();
        let settings = &self.spec.settings;
        let deadline = settings.health.deadline.min(Duration::from_secs(30));
        let result = match (&settings.proxy.verify_url, &settings.health.path) {
            (Some(url), _) => health::verify(url, settings.proxy.verify_count, settings.health.timeout, deadline).await,
            (None, Some(path)) => {
                let mut result = Ok(());
                for replica in replicas {
                    let Some(addr) = replica.addr else { continue };
                    let url = format!("http://{addr}{path}");
                    if let Err(e) = health::verify(&url, 1, settings.health.timeout, deadline).await {
                        result = Err(format!("{}: {e}", replica.name));
                        break;
                    }
                }
                result
            }
            (None, None) => Ok(()),
        };
        self.record("verify", since);
        result
    }

    /// Runs a hook with the run's `IMGCTL_*` variables, the allowed part of imgctl's
    /// environment and `x-imgctl.pass_env`. What it prints goes to the events, for the
    /// person watching; the error, which the history keeps, says only how it ended.
    pub async fn hook(&mut self, hook: Hook, vars: &HookVars) -> Result<(), HookError> {
        let settings = &self.spec.settings;
        let dir = settings.hooks_dir.clone();
        let limit = settings.hook_timeout;
        let env = ChildEnv::inherit(&settings.pass_env).with(vars.env(self));
        let since = Instant::now();
        let ran = tokio::task::spawn_blocking(move || hooks::run(&dir, hook, &env, limit))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let output = match &ran {
            Ok(Some(ran)) => ran.output.text(),
            Ok(None) => return Ok(()),
            Err(e) => e.output(),
        };
        for line in output.lines() {
            self.events.note(&format!("{}: {line}", hook.file_name()));
        }
        self.record(format!("hook {}", hook.file_name()), since);
        ran.map(|_| ())
    }

    /// Waits `duration` (drains, keep-warm, canary pauses).
    pub async fn wait(&mut self, step: &str, duration: Duration) {
        if duration.is_zero() {
            return;
        }
        let since = Instant::now();
        tokio::time::sleep(duration).await;
        self.record(step, since);
    }

    /// Stops replicas (kept for a rollback) or removes them.
    pub async fn retire(&mut self, replicas: &[Replica], remove: bool) {
        if replicas.is_empty() {
            return;
        }
        let since = Instant::now();
        let grace = self.spec.settings.stop_grace;
        let this = &*self;
        // All at once: each stop may wait out its whole grace period.
        let results = futures_util::future::join_all(replicas.iter().map(|replica| async move {
            match (this.swarm(), remove) {
                (true, _) => swarm_target::retire(this, replica, remove).await,
                (false, true) => this.engine.remove(&replica.id).await,
                (false, false) => this.engine.stop(&replica.id, grace).await,
            }
        }))
        .await;
        let verb = match (self.swarm(), remove) {
            (_, true) => "remove",
            (true, false) => "scale to 0",
            (false, false) => "stop",
        };
        for (replica, result) in replicas.iter().zip(results) {
            if let Err(e) = result {
                self.events.note(&format!("could not {verb} {}: {e}", replica.name));
            }
        }
        self.record(format!("{verb} {} x{}", replicas[0].color, replicas.len()), since);
    }

    /// Removes the containers a failed build made, all at once.
    async fn remove_ids(&mut self, ids: &[String]) {
        let since = Instant::now();
        let engine = &self.engine;
        futures_util::future::join_all(ids.iter().map(|id| engine.remove(id))).await;
        self.record(format!("remove x{}", ids.len()), since);
    }

    /// Releases the lock (the keep-warm wait runs without it, so `imgctl rollback` is instant).
    pub fn unlock(&mut self) {
        self.lock = None;
    }

    /// Takes the lock again; `false` when another run has it now.
    pub fn relock(&mut self) -> bool {
        let holder =
            Holder::this_process(format!("{} (stopping the old color)", self.action), self.options.performer.clone());
        match lock::acquire(&lock_dir(self.options), &self.spec.name, &holder) {
            Ok(lock) => {
                self.lock = Some(lock);
                true
            }
            Err(_) => false,
        }
    }

    /// Appends the run to the history and builds its report.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &mut self,
        image: &str,
        digest: &str,
        color: Color,
        previous: Option<(Color, String)>,
        outcome: Outcome,
        reason: Option<String>,
        live: Option<Color>,
    ) -> Result<Report, DeployError> {
        let record = Record {
            id: self.id.clone(),
            action: self.action.into(),
            service: self.spec.name.clone(),
            strategy: self.strategy().as_str().into(),
            image: image.into(),
            digest: digest.into(),
            color,
            previous_digest: previous.as_ref().map(|p| p.1.clone()),
            outcome,
            reason: reason.clone(),
            performer: self.options.performer.clone(),
            started: crate::promote::audit::rfc3339(self.started_at),
            finished: crate::promote::audit::rfc3339(SystemTime::now()),
            steps: self.steps.clone(),
        };
        let dir = history_dir(self.options);
        history::append(&dir, &record).map_err(|source| DeployError::History { path: dir, source })?;
        Ok(Report {
            record,
            previous_color: previous.map(|p| p.0),
            switch_ms: self.switch_time.map(|d| d.as_millis() as u64),
            time_to_traffic_ms: self.traffic_at.map(|d| d.as_millis() as u64),
            live_color: live,
        })
    }
}

/// The `IMGCTL_*` variables hooks get.
#[derive(Clone, Debug, Default)]
pub struct HookVars {
    /// The image deployed.
    pub image: String,
    /// Its digest.
    pub digest: String,
    /// The color it runs in.
    pub new_color: Option<Color>,
    /// The color that served before.
    pub old_color: Option<Color>,
    /// The digest that served before.
    pub old_digest: Option<String>,
    /// The new replicas' addresses (`host:port,host:port`).
    pub new_addrs: Vec<String>,
    /// Why (for on-rollback).
    pub reason: Option<String>,
}

impl HookVars {
    fn env(&self, run: &Run<'_>) -> Vec<(String, String)> {
        let mut env = vec![
            ("IMGCTL_SERVICE".to_owned(), run.spec.name.clone()),
            ("IMGCTL_DEPLOY_ID".to_owned(), run.id.clone()),
            ("IMGCTL_ACTION".to_owned(), run.action.to_owned()),
            ("IMGCTL_STRATEGY".to_owned(), run.strategy().as_str().to_owned()),
            ("IMGCTL_IMAGE".to_owned(), self.image.clone()),
            ("IMGCTL_DIGEST".to_owned(), self.digest.clone()),
            ("IMGCTL_PERFORMER".to_owned(), run.options.performer.clone()),
            ("IMGCTL_NEW_ADDRS".to_owned(), self.new_addrs.join(",")),
            ("IMGCTL_HEALTH_PATH".to_owned(), run.spec.settings.health.path.clone().unwrap_or_default()),
            ("IMGCTL_COMPOSE_FILE".to_owned(), run.spec.compose_file.display().to_string()),
        ];
        let mut optional = |name: &str, value: Option<String>| env.push((name.to_owned(), value.unwrap_or_default()));
        optional("IMGCTL_NEW_COLOR", self.new_color.map(|c| c.to_string()));
        optional("IMGCTL_OLD_COLOR", self.old_color.map(|c| c.to_string()));
        optional("IMGCTL_OLD_DIGEST", self.old_digest.clone());
        optional("IMGCTL_REASON", self.reason.clone());
        optional("IMGCTL_PROXY_URL", run.spec.settings.proxy.verify_url.clone());
        env
    }
}

/// The service's replicas: its containers, or on swarm its color services.
pub async fn replicas(engine: &DockerEngine, spec: &ServiceSpec) -> Result<Vec<Replica>, EngineError> {
    match spec.settings.target {
        Target::Engine => engine.replicas(&spec.name).await,
        Target::Swarm => swarm_target::color_replicas(engine, spec).await,
    }
}

/// Where locks live.
pub fn lock_dir(options: &Options) -> PathBuf {
    options.state_dir.join("locks")
}

/// Where histories live.
pub fn history_dir(options: &Options) -> PathBuf {
    options.state_dir.join("history")
}

/// A run id: UTC time and a random suffix (`20261122T101500Z-3f9a`).
fn new_id() -> String {
    let time = crate::promote::audit::rfc3339(SystemTime::now()).replace(['-', ':'], "");
    let mut random = [0u8; 2];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random));
    format!(
        "{}-{:02x}{:02x}",
        time.trim_end_matches('Z').split('.').next().unwrap_or(&time).to_owned() + "Z",
        random[0],
        random[1]
    )
}
