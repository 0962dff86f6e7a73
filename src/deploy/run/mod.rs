//! The interpreter of one run of `imgctl deploy | rollback`: takes the lock, observes, asks
//! the [`core`](super::core) for steps and carries each out against the service's target and
//! traffic switch, timing them, until the core says the run is over.
//!
//! The rule that keeps requests flowing: replicas leave the switch before they are stopped
//! (after a drain wait), and join it only after their health gate. Every switch is built from
//! the addresses the replicas have at that moment, so a restart that gave a container a new
//! port never leaves the proxy pointing at the old one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::admission::Admission;
use super::color::Color;
use super::core::{self, Action, Done, Drained, Machine, Observed, Past, Refusal, Settings, Starts, Step, Verdict};
use super::events::Events;
use super::failure::StepError;
use super::history::{self, Outcome, Record, StepTiming};
use super::lock::{self, DeployLock, Holder, LockError};
use super::model::{ContainerState, Replica};
use super::spec::ServiceSpec;
use super::switch::{AnySwitch, SwitchError, TrafficSwitch};
use super::target::{self, AnyRolling, AnyTarget, Placement, RollsItself, Target, TargetError};

mod steps;

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
    /// The signature policy a rollback's digest must pass before anything starts (`None`: no
    /// policy; a deploy's digest is checked by the caller, before it is pulled).
    pub admission: Option<Arc<Admission>>,
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
    /// The signature policy does not accept what a rollback would start (or the signatures
    /// could not be read): nothing was started.
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
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
    /// Each drain of replicas that left traffic: how many connections were still open when
    /// they were stopped (`open`, `cut`; `null`: they could not be counted).
    pub drains: Vec<Drained>,
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
    let holder = Holder::this_process(what, options.performer.clone());
    let lock = lock::acquire_for(upstream_file(spec), &lock_dir(options), &spec.record_name(), &holder)?;
    if let Some(dead) = &lock.taken_over {
        events.note(&format!("took over the lock of a run that died ({dead}); reconciling from what runs"));
    }
    let took_over = lock.taken_over.is_some();
    let switch = AnySwitch::of(spec);
    // What the switch's state alone refuses is refused without connecting to Docker.
    let early = Settings::of(spec, options.no_auto_promote, target::rolls_itself(spec), "");
    if let Some(refusal) = core::refusal(&early, &action, switch.read()?.as_ref()) {
        return Err(refusal.into());
    }
    let placement = target::open(spec).await?;
    let observed = observe(spec, options, &switch, &placement, took_over).await?;
    let id = new_id();
    let settings = Settings::of(spec, options.no_auto_promote, placement.rolls_itself(), placement.noun());
    let machine = Machine::new(settings, &action, observed)?;
    if let (Some(admission), Action::Rollback { .. }) = (&options.admission, &action) {
        admit(spec, admission, &machine, events).await?;
    }
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

/// Refuses a rollback whose digest the policy does not accept now, before any step runs
/// (so before any replica starts). The image is the one the history names, else the compose
/// image's repository at that digest.
async fn admit(
    spec: &ServiceSpec,
    admission: &Admission,
    machine: &Machine,
    events: &mut dyn Events,
) -> Result<(), DeployError> {
    let refused =
        |what: String| DeployError::Refused(Refusal::UnverifiableRollback { service: spec.name.clone(), what });
    let (image, digest) = match machine.starts() {
        Starts::Nothing => return Ok(()),
        Starts::Image { image, digest } => (image, digest),
        Starts::TargetsPrevious => {
            return Err(refused("swarm's previous spec, whose digest imgctl's history does not hold".into()));
        }
    };
    let pinned = match core::pinned(image) {
        Some(pinned) => pinned,
        None => {
            let repository = spec.image.as_deref().and_then(|i| i.parse::<crate::reference::Reference>().ok());
            match (repository, digest.parse::<crate::digest::Digest>().ok()) {
                (Some(repository), Some(digest)) => {
                    let repository = repository.name().parse().unwrap_or(repository);
                    super::PinnedImage { repository, digest }
                }
                _ => {
                    return Err(refused(format!(
                        "{digest}, and neither its history nor the compose file names its repository"
                    )));
                }
            }
        }
    };
    let accepted = admission.admit(&pinned).await?;
    events.note(&format!("signature policy {} accepts {}", accepted.policy.display(), pinned.reference()));
    Ok(())
}

/// What `action` would do now, step by step, without doing any of it (and without the lock:
/// a dry run never stands in a deploy's way).
pub async fn preview(spec: &ServiceSpec, options: &Options, action: &Action) -> Result<Vec<String>, DeployError> {
    let switch = AnySwitch::of(spec);
    let placement = target::open(spec).await?;
    let observed = observe(spec, options, &switch, &placement, false).await?;
    let settings = Settings::of(spec, options.no_auto_promote, placement.rolls_itself(), placement.noun());
    let mut lines = Vec::new();
    if let Some(holder) = lock::holder_for(upstream_file(spec), &lock_dir(options), &spec.record_name()) {
        lines.push(format!("would be refused now: the lock is held ({holder})"));
    }
    let mut machine = match Machine::new(settings, action, observed) {
        Ok(machine) => machine,
        Err(refusal) => {
            lines.push(format!("would be refused: {refusal}"));
            return Ok(lines);
        }
    };
    // What the plan itself says: compose's containers taken over, a choice it made.
    lines.extend(machine.take_notes());
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
    // compose's containers matter while imgctl has no traffic state (they may be taken over),
    // and while they are a color (a rollback to them names their image).
    let compose = match placement {
        Placement::Colors(target)
            if traffic.is_none() || replicas.iter().any(|r| r.source == super::model::Source::Compose) =>
        {
            target.compose().await?
        }
        _ => None,
    };
    let dir = history_dir(options);
    let history = history::read(&dir, &spec.record_name())
        .map_err(|source| DeployError::History { path: dir, source })?
        .into_iter()
        .map(|r| Past { image: r.image, digest: r.digest, succeeded: r.outcome == Outcome::Succeeded })
        .collect();
    Ok(Observed { traffic, replicas, took_over, history, rolling_digest, compose })
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
        let mut last = Ok(Done::Done);
        while let Some(step) = machine.next(last) {
            for note in machine.take_notes() {
                self.events.note(&note);
            }
            last = match step {
                Step::Record(verdict) => {
                    self.record(*verdict)?;
                    Ok(Done::Done)
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
        report.drains = machine.drains().to_vec();
        Ok(report)
    }

    fn timed(&mut self, step: impl Into<String>, elapsed: Duration) {
        let step = step.into();
        self.events.step(&step, elapsed);
        self.steps.push(StepTiming { step, ms: elapsed.as_millis() as u64 });
    }

    fn colors(&mut self) -> &mut AnyTarget<'a> {
        self.colors_and_events().0
    }

    /// The target of colors and the events, borrowed together (a start reports progress).
    fn colors_and_events(&mut self) -> (&mut AnyTarget<'a>, &mut dyn Events) {
        match &mut self.placement {
            Placement::Colors(target) => (target, &mut *self.events),
            Placement::RollsItself(_) => unreachable!("the core asks for colors only of a target of colors"),
        }
    }

    /// The target that rolls by itself and the events, borrowed together.
    fn rolling_and_events(&mut self) -> (&mut AnyRolling<'a>, &mut dyn Events) {
        match &mut self.placement {
            Placement::RollsItself(rolling) => (rolling, &mut *self.events),
            Placement::Colors(_) => unreachable!("the core updates in place only a target that rolls by itself"),
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

    /// Appends the run to the history and keeps its report.
    fn record(&mut self, verdict: Verdict) -> Result<(), DeployError> {
        let Verdict { action, outcome, image, digest, color, previous, reason, failure, live, adopted } = verdict;
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
            adopted,
        };
        let dir = history_dir(self.options);
        history::append(&dir, &self.spec.record_name(), &record)
            .map_err(|source| DeployError::History { path: dir, source })?;
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
            drains: Vec::new(),
        });
        Ok(())
    }
}

/// The file the lock goes beside: every run that switches it meets the same lock, whoever
/// runs it and whatever its state directory.
fn upstream_file(spec: &ServiceSpec) -> Option<&std::path::Path> {
    spec.settings.proxy.upstream_file.as_deref()
}

/// Where locks live when there is no upstream file and no host-wide lock directory.
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
