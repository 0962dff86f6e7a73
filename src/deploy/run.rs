//! The interpreter of one run of `imgctl deploy | rollback`: takes the lock, observes, asks
//! the [`core`](super::core) for steps and carries each out against the service's target and
//! traffic switch, timing them, until the core says the run is over.
//!
//! The rule that keeps requests flowing: replicas leave the switch before they are stopped
//! (after a drain wait), and join it only after their health gate. Every switch is built from
//! the addresses the replicas have at that moment, so a restart that gave a container a new
//! port never leaves the proxy pointing at the old one.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::child_env::ChildEnv;
use super::color::Color;
use super::core::{Action, HookFacts, Machine, Observed, Past, Refusal, Route, Settings, Share, Step, Verdict};
use super::docker::PullAuth;
use super::events::Events;
use super::failure::StepError;
use super::health;
use super::history::{self, Outcome, Record, StepTiming};
use super::hooks::{self, Hook};
use super::lock::{self, DeployLock, Holder, LockError};
use super::model::{ContainerState, Replica, Server, Traffic};
use super::nginx::canary_weights;
use super::spec::ServiceSpec;
use super::switch::{AnySwitch, SwitchError, TrafficSwitch};
use super::target::{self, AnyTarget, Placement, RollsItself, Target, TargetError};
use crate::reference::Reference;

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

/// A run could not start (nothing was changed), or could not record how it ended.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Another run holds the service's lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The run cannot start as asked.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The place the replicas run could not be reached or asked.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The traffic switch's state could not be read.
    #[error(transparent)]
    Proxy(#[from] SwitchError),
    /// The history could not be read or written.
    #[error("the deploy history under {path}: {source}")]
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
    /// How a failed run failed: `before-switch`, `switched-back`, `switch-back-failed`,
    /// `first-deploy`, `not-restored` or `update`.
    pub failure: Option<&'static str>,
    /// Traffic is on a version that failed a check, and could not be moved back.
    pub needs_a_person: bool,
}

/// Runs `action` on `spec`'s service: takes the lock, observes, and carries out the core's
/// steps. A run that started and failed is recorded and reported with [`Outcome::Failed`];
/// `Err` means it could not start, and nothing was changed.
pub async fn execute(
    spec: &ServiceSpec,
    options: &Options,
    action: Action,
    events: &mut dyn Events,
) -> Result<Report, DeployError> {
    let what = match &action {
        Action::Deploy(image) => format!("deploy {}", image.digest),
        other => other.name().to_owned(),
    };
    let lock = lock::acquire(&lock_dir(options), &spec.name, &Holder::this_process(what, options.performer.clone()))?;
    if let Some(dead) = &lock.taken_over {
        events.note(&format!("took over the lock of a run that died ({dead}); reconciling from what runs"));
    }
    let took_over = lock.taken_over.is_some();
    let switch = AnySwitch::of(spec);
    let placement = target::open(spec).await?;
    let observed = observe(spec, options, &switch, &placement, took_over).await?;
    let id = new_id();
    let settings = Settings::of(spec, options.no_auto_promote, placement.rolls_itself(), placement.noun());
    let machine = Machine::new(settings, &action, observed)?;
    let mut run = Run {
        spec,
        options,
        placement,
        switch,
        events,
        id,
        action: action.name(),
        lock: Some(lock),
        started: Instant::now(),
        started_at: SystemTime::now(),
        steps: Vec::new(),
        gate_time: Duration::ZERO,
        switch_time: None,
        traffic_at: None,
        report: None,
    };
    run.drive(machine).await
}

/// What `action` would do now, step by step, without doing any of it (and without the lock:
/// a dry run never stands in a deploy's way).
pub async fn preview(spec: &ServiceSpec, options: &Options, action: &Action) -> Result<Vec<String>, DeployError> {
    let switch = AnySwitch::of(spec);
    let placement = target::open(spec).await?;
    let observed = observe(spec, options, &switch, &placement, false).await?;
    let settings = Settings::of(spec, options.no_auto_promote, placement.rolls_itself(), placement.noun());
    let mut lines = Vec::new();
    if let Some(holder) = lock::holder(&lock_dir(options), &spec.name) {
        lines.push(format!("would be refused now: the lock is held ({holder})"));
    }
    let machine = match Machine::new(settings, action, observed) {
        Ok(machine) => machine,
        Err(refusal) => {
            lines.push(format!("would be refused: {refusal}"));
            return Ok(lines);
        }
    };
    for step in machine.preview() {
        lines.push(match (&step, &placement) {
            (Step::Update { image }, Placement::RollsItself(rolling)) => rolling.describe_update(image),
            (Step::Switch { route, label, .. }, _) => format!("{label}: {route} ({})", switch.describe()),
            (Step::Record(_), _) => continue,
            _ => step.to_string(),
        });
    }
    Ok(lines)
}

/// What the core needs to know before a run.
async fn observe(
    spec: &ServiceSpec,
    options: &Options,
    switch: &AnySwitch<'_>,
    placement: &Placement<'_>,
    took_over: bool,
) -> Result<Observed, DeployError> {
    let traffic = switch.read()?;
    let (replicas, rolling_digest) = match placement {
        Placement::Colors(target) => (target.observe().await?, None),
        Placement::RollsItself(rolling) => (Vec::new(), rolling.current().await?),
    };
    let dir = history_dir(options);
    let history = history::read(&dir, &spec.name)
        .map_err(|source| DeployError::History { path: dir, source })?
        .into_iter()
        .map(|r| Past { image: r.image, digest: r.digest, succeeded: r.outcome == Outcome::Succeeded })
        .collect();
    Ok(Observed { traffic, replicas, took_over, history, rolling_digest })
}

/// The context of one run.
struct Run<'a> {
    spec: &'a ServiceSpec,
    options: &'a Options,
    placement: Placement<'a>,
    switch: AnySwitch<'a>,
    events: &'a mut dyn Events,
    id: String,
    action: &'static str,
    lock: Option<DeployLock>,
    started: Instant,
    started_at: SystemTime,
    steps: Vec<StepTiming>,
    gate_time: Duration,
    switch_time: Option<Duration>,
    traffic_at: Option<Duration>,
    report: Option<Report>,
}

impl<'a> Run<'a> {
    async fn drive(&mut self, mut machine: Machine) -> Result<Report, DeployError> {
        let mut last = Ok(());
        while let Some(step) = machine.next(last) {
            for note in machine.take_notes() {
                self.events.note(&note);
            }
            last = match step {
                Step::Record(verdict) => {
                    self.record(*verdict)?;
                    Ok(())
                }
                step => self.carry_out(step).await,
            };
        }
        for note in machine.take_notes() {
            self.events.note(&note);
        }
        let mut report = self.report.take().expect("every run ends with its record");
        // Steps after the record (keep-warm, the post-deploy hook) belong to the report too.
        report.record.steps = self.steps.clone();
        Ok(report)
    }

    fn timed(&mut self, step: impl Into<String>, elapsed: Duration) {
        let step = step.into();
        self.events.step(&step, elapsed);
        self.steps.push(StepTiming { step, ms: elapsed.as_millis() as u64 });
    }

    fn colors(&mut self) -> &mut AnyTarget<'a> {
        match &mut self.placement {
            Placement::Colors(target) => target,
            Placement::RollsItself(_) => unreachable!("the core asks for colors only of a target of colors"),
        }
    }

    /// The running replicas of `color` (of `indices`, when given).
    async fn running(&mut self, color: Color, indices: Option<&[u32]>) -> Result<Vec<Replica>, StepError> {
        Ok(self.of_color(color, indices).await?.into_iter().filter(|r| r.state == ContainerState::Running).collect())
    }

    async fn of_color(&mut self, color: Color, indices: Option<&[u32]>) -> Result<Vec<Replica>, StepError> {
        let replicas = self.colors().observe().await?;
        Ok(replicas.into_iter().filter(|r| r.color == color && indices.is_none_or(|i| i.contains(&r.index))).collect())
    }

    async fn carry_out(&mut self, step: Step) -> Result<(), StepError> {
        let since = Instant::now();
        match step {
            Step::Resume { color, indices } => {
                let replicas = self.of_color(color, indices.as_deref()).await?;
                if replicas.is_empty() {
                    return Err(TargetError::Gone(format!("{} {color}", self.spec.name)).into());
                }
                let events = &mut *self.events;
                let started = match &mut self.placement {
                    Placement::Colors(target) => target.resume(&replicas, events).await?,
                    Placement::RollsItself(_) => unreachable!("the core resumes only colors"),
                };
                self.gated(format!("start {color} x{}", replicas.len()), since, started.gate, color);
            }
            Step::Retire { color, indices, remove } => {
                let mut replicas = self.of_color(color, indices.as_deref()).await?;
                if !remove {
                    replicas.retain(|r| r.state == ContainerState::Running);
                }
                if replicas.is_empty() {
                    return Ok(());
                }
                let target = self.colors();
                let verb = if remove { "remove" } else { target.stop_verb() };
                // All at once: each stop may wait out its whole grace period.
                let results = futures_util::future::join_all(replicas.iter().map(|r| target.retire(r, remove))).await;
                self.timed(format!("{verb} {color} x{}", replicas.len()), since.elapsed());
                for result in results {
                    result?;
                }
            }
            Step::Reload => {
                self.switch.reload()?;
                self.timed("reload", since.elapsed());
            }
            Step::Hook { hook, facts } => self.hook(hook, &facts).await?,
            Step::Pull { image } => {
                let auth = self.registry_auth(&image.repository)?;
                let events = &mut *self.events;
                let pulled = match &mut self.placement {
                    Placement::Colors(target) => target.prepare(&image, auth, events).await?,
                    Placement::RollsItself(rolling) => rolling.prepare(&image, auth).await.map(|()| false)?,
                };
                if pulled {
                    self.timed(format!("pull {}", image.digest), since.elapsed());
                }
            }
            Step::Start { color, image, indices } => {
                let id = self.id.clone();
                let events = &mut *self.events;
                let started = match &mut self.placement {
                    Placement::Colors(target) => target.start(color, &image, &indices, &id, events).await,
                    Placement::RollsItself(_) => unreachable!("the core starts only colors"),
                };
                let started = match started {
                    Ok(started) => started,
                    Err(e) => {
                        self.timed(format!("start {color} x{}", indices.len()), since.elapsed());
                        return Err(e.into());
                    }
                };
                self.gated(format!("start {color} x{}", indices.len()), since, started.gate, color);
            }
            Step::Switch { route, label, moves } => {
                let traffic = self.traffic(&route).await?;
                let took = self.switch.apply(&traffic)?;
                self.timed(label, since.elapsed());
                if moves && self.switch_time.is_none() {
                    self.switch_time = Some(took);
                    self.traffic_at = Some(self.started.elapsed().saturating_sub(self.gate_time));
                }
            }
            Step::Verify { color } => {
                let result = self.verify(color).await;
                self.timed("verify", since.elapsed());
                result?;
            }
            Step::Watch { color, indices, duration, label } => {
                let result = self.watch(color, indices.as_deref(), duration).await;
                self.timed(label, since.elapsed());
                result?;
            }
            Step::Wait { label, duration } => {
                if !duration.is_zero() {
                    tokio::time::sleep(duration).await;
                    self.timed(label, since.elapsed());
                }
            }
            Step::KeepWarm { old, new, duration } => self.keep_warm(old, new, duration).await?,
            Step::Update { image } => {
                let id = self.id.clone();
                let events = &mut *self.events;
                let result = match &mut self.placement {
                    Placement::RollsItself(rolling) => rolling.update(&image, &id, events).await,
                    Placement::Colors(_) => {
                        unreachable!("the core updates in place only a target that rolls by itself")
                    }
                };
                self.timed("swarm update", since.elapsed());
                result?;
            }
            Step::Revert => {
                let events = &mut *self.events;
                let result = match &mut self.placement {
                    Placement::RollsItself(rolling) => rolling.revert(events).await,
                    Placement::Colors(_) => unreachable!("the core reverts only a target that rolls by itself"),
                };
                self.timed("swarm rollback", since.elapsed());
                result?;
            }
            Step::Record(_) => unreachable!("recorded by the loop"),
        }
        Ok(())
    }

    /// Times a start: the start itself, then its health gate (which does not count towards
    /// the time to traffic).
    fn gated(&mut self, step: String, since: Instant, gate: Duration, color: Color) {
        self.timed(step, since.elapsed().saturating_sub(gate));
        self.gate_time += gate;
        self.timed(format!("health gate {color}"), gate);
    }

    /// The traffic `route` stands for now: each member's running replicas at the addresses
    /// they have at this moment.
    async fn traffic(&mut self, route: &Route) -> Result<Traffic, StepError> {
        let mut members = Vec::new();
        for member in &route.members {
            let replicas = self.running(member.color, member.indices.as_deref()).await?;
            let target = self.colors();
            let backends: Vec<(String, String)> =
                replicas.iter().filter_map(|r| target.address(r).map(|addr| (addr, r.name.clone()))).collect();
            members.push((member, backends));
        }
        let count =
            |color: Color| members.iter().filter(|(m, _)| m.color == color).map(|(_, b)| b.len()).sum::<usize>();
        let (live_count, other_count) = (count(route.live), count(route.live.other()));
        let mut servers = Vec::new();
        for (member, backends) in members {
            let weight = match member.share {
                Share::Even => 1,
                Share::Canary(percent) => {
                    let (stable, new) = canary_weights(percent, live_count, other_count);
                    if member.color == route.live { stable } else { new }
                }
            };
            if weight == 0 {
                continue;
            }
            servers.extend(backends.into_iter().map(|(addr, container)| Server {
                addr,
                weight,
                container,
                color: member.color,
            }));
        }
        Ok(Traffic {
            service: self.spec.name.clone(),
            live: route.live,
            live_digest: route.live_digest.clone(),
            deploy_id: self.id.clone(),
            phase: route.phase.clone(),
            servers,
        })
    }

    /// Checks through the proxy (`verify_url`) or, without one, on each new replica, that the
    /// new version answers after the switch.
    async fn verify(&mut self, color: Color) -> Result<(), StepError> {
        let settings = &self.spec.settings;
        let deadline = settings.health.deadline.min(Duration::from_secs(30));
        let (timeout, count) = (settings.health.timeout, settings.proxy.verify_count);
        match (settings.proxy.verify_url.clone(), settings.health.path.clone()) {
            (Some(url), _) => health::verify(&url, count, timeout, deadline).await.map_err(StepError::Verify),
            (None, Some(path)) => {
                let replicas = self.running(color, None).await?;
                for replica in replicas {
                    let Some(addr) = self.colors().probe_address(&replica) else { continue };
                    let url = format!("http://{addr}{path}");
                    health::verify(&url, 1, timeout, deadline)
                        .await
                        .map_err(|e| StepError::Verify(format!("{}: {e}", replica.name)))?;
                }
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    /// Checks the replicas every health interval for `duration`; the first failure ends it.
    async fn watch(&mut self, color: Color, indices: Option<&[u32]>, duration: Duration) -> Result<(), StepError> {
        let since = Instant::now();
        let interval = self.spec.settings.health.interval;
        let replicas = self.of_color(color, indices).await?;
        loop {
            for replica in &replicas {
                self.colors().check(replica).await?;
            }
            if since.elapsed() >= duration {
                return Ok(());
            }
            tokio::time::sleep(interval.min(duration.saturating_sub(since.elapsed()))).await;
        }
    }

    /// After a switch: the old color stays warm without the lock (so `imgctl rollback` is
    /// instant), then is stopped and kept for a later rollback, unless traffic changed
    /// meanwhile.
    async fn keep_warm(&mut self, old: Color, new: Color, duration: Duration) -> Result<(), StepError> {
        let running = self.running(old, None).await?;
        if running.is_empty() {
            return Ok(());
        }
        self.lock = None;
        if !duration.is_zero() {
            let since = Instant::now();
            tokio::time::sleep(duration).await;
            self.timed("keep warm", since.elapsed());
        }
        let holder =
            Holder::this_process(format!("{} (stopping the old color)", self.action), self.options.performer.clone());
        match lock::acquire(&lock_dir(self.options), &self.spec.name, &holder) {
            Ok(lock) => self.lock = Some(lock),
            Err(_) => {
                self.events.note("another run took the lock during keep-warm; it decides about the old color");
                return Ok(());
            }
        }
        match self.switch.read() {
            Ok(Some(now)) if now.deploy_id == self.id && now.live == new => {
                Box::pin(self.carry_out(Step::Retire { color: old, indices: None, remove: false })).await
            }
            _ => {
                self.events.note("traffic changed during keep-warm (a rollback?); the old color was left running");
                Ok(())
            }
        }
    }

    /// Runs a hook with the run's `IMGCTL_*` variables, the allowed part of imgctl's
    /// environment and `x-imgctl.pass_env`. What it prints goes to the events, for the person
    /// watching; the error, which the history keeps, says only how it ended.
    async fn hook(&mut self, hook: Hook, facts: &HookFacts) -> Result<(), StepError> {
        let settings = &self.spec.settings;
        let dir = settings.hooks_dir.clone();
        if !dir.join(hook.file_name()).exists() {
            return Ok(());
        }
        let new_addrs = match facts.new_color {
            Some(color) if matches!(hook, Hook::PreSwitch | Hook::PostSwitch | Hook::PostDeploy) => {
                let replicas = self.running(color, None).await?;
                let target = self.colors();
                replicas.iter().filter_map(|r| target.address(r)).collect()
            }
            _ => Vec::new(),
        };
        let limit = self.spec.settings.hook_timeout;
        let env = ChildEnv::inherit(&self.spec.settings.pass_env).with(self.hook_env(facts, &new_addrs));
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
        self.timed(format!("hook {}", hook.file_name()), since.elapsed());
        ran.map(|_| ()).map_err(StepError::from)
    }

    fn hook_env(&self, facts: &HookFacts, new_addrs: &[String]) -> Vec<(String, String)> {
        let settings = &self.spec.settings;
        let mut env = vec![
            ("IMGCTL_SERVICE".to_owned(), self.spec.name.clone()),
            ("IMGCTL_DEPLOY_ID".to_owned(), self.id.clone()),
            ("IMGCTL_ACTION".to_owned(), self.action.to_owned()),
            ("IMGCTL_STRATEGY".to_owned(), settings.strategy.as_str().to_owned()),
            ("IMGCTL_IMAGE".to_owned(), facts.image.clone()),
            ("IMGCTL_DIGEST".to_owned(), facts.digest.clone()),
            ("IMGCTL_PERFORMER".to_owned(), self.options.performer.clone()),
            ("IMGCTL_NEW_ADDRS".to_owned(), new_addrs.join(",")),
            ("IMGCTL_HEALTH_PATH".to_owned(), settings.health.path.clone().unwrap_or_default()),
            ("IMGCTL_COMPOSE_FILE".to_owned(), self.spec.compose_file.display().to_string()),
        ];
        let mut optional = |name: &str, value: Option<String>| env.push((name.to_owned(), value.unwrap_or_default()));
        optional("IMGCTL_NEW_COLOR", facts.new_color.map(|c| c.to_string()));
        optional("IMGCTL_OLD_COLOR", facts.old_color.map(|c| c.to_string()));
        optional("IMGCTL_OLD_DIGEST", facts.old_digest.clone());
        optional("IMGCTL_REASON", facts.reason.clone());
        optional("IMGCTL_PROXY_URL", settings.proxy.verify_url.clone());
        env
    }

    /// The credential docker would send to `repository`'s registry (the engine pulls with it;
    /// on swarm it goes along to the nodes that pull).
    fn registry_auth(&self, repository: &Reference) -> Result<PullAuth, StepError> {
        let registry = repository.registry().to_owned();
        let (credential, _) = crate::registry::credentials::resolve(&self.options.docker_dir, &registry)
            .map_err(|source| StepError::Credentials { registry: registry.clone(), source })?;
        Ok(PullAuth { server: crate::registry::credentials::server_url_for(&registry), credential })
    }

    /// Appends the run to the history and keeps its report.
    fn record(&mut self, verdict: Verdict) -> Result<(), DeployError> {
        let Verdict { action, outcome, image, digest, color, previous, reason, failure, live } = verdict;
        let record = Record {
            id: self.id.clone(),
            action: action.into(),
            service: self.spec.name.clone(),
            strategy: self.spec.settings.strategy.as_str().into(),
            image,
            digest,
            color,
            previous_digest: previous.as_ref().map(|p| p.1.clone()),
            outcome,
            reason,
            performer: self.options.performer.clone(),
            started: crate::promote::audit::rfc3339(self.started_at),
            finished: crate::promote::audit::rfc3339(SystemTime::now()),
            steps: self.steps.clone(),
        };
        let dir = history_dir(self.options);
        history::append(&dir, &record).map_err(|source| DeployError::History { path: dir, source })?;
        if let Some(failure) = &failure
            && failure.needs_a_person()
        {
            self.events.note(&format!("NEEDS A PERSON: {failure}"));
        }
        self.report = Some(Report {
            record,
            previous_color: previous.map(|p| p.0),
            switch_ms: self.switch_time.map(|d| d.as_millis() as u64),
            time_to_traffic_ms: self.traffic_at.map(|d| d.as_millis() as u64),
            live_color: live,
            failure: failure.as_ref().map(|f| f.kind()),
            needs_a_person: failure.as_ref().is_some_and(|f| f.needs_a_person()),
        });
        Ok(())
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
