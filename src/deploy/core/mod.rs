//! The pure core of a run: from what was observed and what is asked, the steps to take, one
//! at a time, each chosen knowing how the last one ended. No I/O: the interpreter
//! ([`super::run`]) carries the steps out against a target and a traffic switch, `--dry-run`
//! prints the steps this machine yields when every step succeeds, and the unit tests feed it
//! failures.
//!
//! The rule that keeps a failed run harmless lives in one place, [`Machine::fail`]: a failure
//! before traffic moves removes what the run started of the new version; a failure after it
//! moved sends traffic back first, then removes the new version, then reports.

mod adopt;
mod flows;
mod input;
mod rolling;
mod step;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

pub use adopt::AdoptRefusal;
pub use flows::{describe, refusal};
pub use input::{Observed, Past, Settings};
pub use step::{Done, Drained, HookFacts, Member, Route, Share, Starts, Step, Verdict};

use super::color::Color;
use super::failure::{RunFailure, StepError};
use super::history::Outcome;
use super::hooks::Hook;
use super::model::PinnedImage;
use crate::digest::Digest;

/// What a run is asked to do.
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
    /// Start what the switch points at and point it at the replicas' addresses now (after a
    /// reboot, `docker restart` or a crash gave them new ports).
    Repair,
    /// Point the switch at the containers `docker-compose up -d` runs for the service, which
    /// become its live color (nothing is started or stopped).
    Adopt,
}

impl Action {
    /// `deploy`, `continue`, `abort`, `rollback` or `repair`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Deploy(_) => "deploy",
            Self::Continue => "continue",
            Self::Abort => "abort",
            Self::Rollback { .. } => "rollback",
            Self::Repair => "repair",
            Self::Adopt => "adopt",
        }
    }
}

/// The run cannot start as asked; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
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
        /// What was asked, and why it cannot be.
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
    /// A rollback under a signature policy to a version imgctl cannot name as an image to
    /// verify (swarm's own "previous spec", which imgctl's history does not hold).
    #[error(
        "{service}: a signature policy is in force, and this rollback would start {what}: deploy the version wanted with `imgctl deploy {service} --digest sha256:...` (the policy checks it)"
    )]
    UnverifiableRollback {
        /// The service.
        service: String,
        /// What it would start, and why it cannot be verified.
        what: String,
    },
    /// `--repair` on a service imgctl never switched.
    #[error("{0} has no traffic state to repair: it was never deployed behind a switch")]
    NothingToRepair(String),
    /// compose's containers of the service cannot be taken over.
    #[error(transparent)]
    Adopt(#[from] AdoptRefusal),
    /// `--adopt` with no compose container of the service running.
    #[error("{service} has no running container to take over{detail}")]
    NothingToAdopt {
        /// The service.
        service: String,
        /// Where imgctl looked.
        detail: String,
    },
    /// `--adopt` on a service imgctl already switches.
    #[error("{0} is already deployed by imgctl (its switch has traffic state): there is nothing to take over")]
    AlreadyDeployed(String),
}

/// What a failure of the current step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    /// Nothing of the new version exists: a failure ends the run.
    Nothing,
    /// The new color runs and traffic has not moved: a failure removes it.
    Built(Color),
    /// Traffic moved to `new`: a failure moves it back to `back` first.
    Moved {
        /// The new color.
        new: Color,
    },
    /// A rolling update (or the way back from one) is under way: a failure restores every
    /// replica of the old color, batch by batch.
    Rolling,
    /// Traffic is being moved back: a failure now needs a person.
    SwitchingBack {
        /// Where traffic is.
        on: Color,
    },
    /// The run's end is recorded: a failure is reported only.
    Recorded,
}

/// The bookkeeping a step's end triggers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum On {
    /// Nothing beyond the guard it runs under.
    Plain,
    /// A failure is reported and the run goes on (hooks after the fact, retiring, waits).
    Soft,
    /// It started the new color: from now on a failure removes it.
    Built(Color),
    /// It moved traffic to `new`.
    Moved(Color),
    /// A rolling step (see [`rolling`]).
    Roll(rolling::Event),
    /// A target that rolls by itself updates (or rolls back): a failure is its update's.
    Updating,
    /// Keep-warm of the old color: a failure is tolerated, and when the old color is left
    /// running ([`Done::LeftRunning`]) its drain and stop are dropped.
    Warm(Color),
}

/// An entry of the machine's queue.
#[derive(Debug)]
enum Item {
    /// A step for the interpreter.
    Do(Step, On),
    /// A decision the machine makes when the steps before it have ended.
    Decide(rolling::Decision),
    /// The run's end; its failure, if any, comes from [`Machine::failure`].
    End(End),
}

/// How a run ends.
#[derive(Debug)]
enum End {
    Succeeded {
        live: Option<Color>,
    },
    Paused {
        reason: String,
        live: Option<Color>,
    },
    Aborted {
        reason: String,
        live: Color,
    },
    /// Failed: the failure is built from the pending cause.
    Failed(Ending),
}

/// Which [`RunFailure`] a failed run ends with.
#[derive(Clone, Copy, Debug)]
enum Ending {
    BeforeSwitch,
    SwitchedBack(Color),
    FirstDeploy(Color),
    Update,
}

/// The image and versions a run is about.
#[derive(Clone, Debug)]
struct Subject {
    /// The image the run puts in place (`repo@sha256:...`).
    image: String,
    /// Its digest.
    digest: String,
    /// The color it goes into.
    color: Color,
    /// The color and digest that served before.
    previous: Option<(Color, String)>,
}

/// The state machine of one run.
#[derive(Debug)]
pub struct Machine {
    settings: Settings,
    action: &'static str,
    subject: Subject,
    /// Where traffic goes back to after a failure (`None`: the first deploy, nowhere).
    back: Option<Route>,
    queue: VecDeque<Item>,
    on: On,
    guard: Guard,
    rolling: Option<rolling::Rolling>,
    /// The failure the run is ending with, and the step that failed.
    failure: Option<(String, StepError)>,
    /// The label of the step handed out last.
    current: String,
    notes: Vec<String>,
    /// How each drain ended, in order.
    drains: Vec<Drained>,
    /// The compose project whose containers the run takes over as the live color.
    adopted: Option<String>,
}

impl Machine {
    /// The machine for `action` given what was observed, or why the run cannot start.
    pub fn new(settings: Settings, action: &Action, observed: Observed) -> Result<Self, Refusal> {
        let subject = Subject { image: String::new(), digest: String::new(), color: Color::Blue, previous: None };
        let mut machine = Self {
            settings,
            action: action.name(),
            subject,
            back: None,
            queue: VecDeque::new(),
            on: On::Plain,
            guard: Guard::Nothing,
            rolling: None,
            failure: None,
            current: String::new(),
            notes: Vec::new(),
            drains: Vec::new(),
            adopted: None,
        };
        flows::plan(&mut machine, action, observed)?;
        Ok(machine)
    }

    /// What the planned steps start of the version the run puts in place, for a gate to
    /// check before the first step: its pull, start, update, or the resume of its stopped
    /// replicas. An abort starts nothing new (it goes back to what serves).
    pub fn starts(&self) -> Starts<'_> {
        let subject = &self.subject;
        let mut starts = false;
        for item in &self.queue {
            let Item::Do(step, _) = item else { continue };
            match step {
                Step::Revert => return Starts::TargetsPrevious,
                Step::Pull { image } | Step::Start { image, .. } | Step::Update { image } => {
                    starts |= image.digest.to_string() == subject.digest;
                }
                Step::Resume { color, .. } => starts |= *color == subject.color && !subject.digest.is_empty(),
                _ => {}
            }
        }
        if starts { Starts::Image { image: &subject.image, digest: &subject.digest } } else { Starts::Nothing }
    }

    /// The next step, given how the last one ended (`Ok(Done::Done)` before the first);
    /// `None` when the run is over.
    pub fn next(&mut self, last: Result<Done, StepError>) -> Option<Step> {
        let on = std::mem::replace(&mut self.on, On::Plain);
        match last {
            Ok(done) => {
                self.took(&on, done);
                self.succeeded(on);
            }
            Err(cause) => self.fail(on, cause),
        }
        loop {
            match self.queue.pop_front()? {
                Item::Do(step, on) => {
                    self.current = step.label();
                    self.on = on;
                    return Some(step);
                }
                Item::Decide(decision) => rolling::decide(self, decision),
                Item::End(end) => {
                    self.guard = Guard::Recorded;
                    self.on = On::Soft;
                    self.current = "record".into();
                    return Some(Step::Record(Box::new(self.verdict(end))));
                }
            }
        }
    }

    /// What the machine has to say since it was last asked (a tolerated failure, a choice).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// How the run's drains ended so far, in order (a drain after the record too).
    pub fn drains(&self) -> &[Drained] {
        &self.drains
    }

    /// The steps of the run if every one succeeds: what `--dry-run` shows.
    pub fn preview(mut self) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some(step) = self.next(Ok(Done::Done)) {
            steps.push(step);
        }
        steps
    }

    /// What a step's outcome says beyond success: a drain's counts are kept; an old color
    /// left running after keep-warm is not drained nor stopped by this run.
    fn took(&mut self, on: &On, done: Done) {
        match (on, done) {
            (_, Done::Done) => {}
            // A color with nothing running had nothing to drain: not worth a line.
            (_, Done::Drained(drained)) if drained.replicas == 0 => {}
            (_, Done::Drained(drained)) => self.drains.push(drained),
            (On::Warm(old), Done::LeftRunning) => {
                let old = *old;
                self.queue.retain(|item| {
                    !matches!(item, Item::Do(Step::Drain { color, .. } | Step::Retire { color, remove: false, .. }, _)
                        if *color == old)
                });
            }
            (_, Done::LeftRunning) => {}
        }
    }

    fn succeeded(&mut self, on: On) {
        match on {
            On::Plain | On::Soft | On::Updating | On::Warm(_) => {}
            On::Built(color) => self.guard = Guard::Built(color),
            On::Moved(new) => self.guard = Guard::Moved { new },
            On::Roll(event) => rolling::succeeded(self, event),
        }
    }

    /// The one place a failure is handled: tolerated, or the run ends, undoing what must be
    /// undone first.
    fn fail(&mut self, on: On, cause: StepError) {
        let step = std::mem::take(&mut self.current);
        if matches!(on, On::Soft | On::Warm(_)) || self.guard == Guard::Recorded {
            self.notes.push(format!("{step}: {cause} (the run goes on)"));
            return;
        }
        if let On::Roll(event) = &on
            && rolling::tolerated(self, event.clone(), &step, &cause)
        {
            return;
        }
        self.queue.clear();
        match self.guard {
            Guard::Nothing if on == On::Updating => {
                if cause.rolled_back_by_target() {
                    self.push(self.hook(Hook::OnRollback, Some(cause.to_string())), On::Soft);
                }
                self.failure = Some((step, cause));
                self.queue.push_back(Item::End(End::Failed(Ending::Update)));
            }
            Guard::Nothing => {
                self.failure = Some((step, cause));
                self.queue.push_back(Item::End(End::Failed(Ending::BeforeSwitch)));
            }
            Guard::Built(color) => {
                self.failure = Some((step, cause));
                self.queue.push_back(Item::Do(Step::Retire { color, indices: None, remove: true }, On::Soft));
                self.queue.push_back(Item::End(End::Failed(Ending::BeforeSwitch)));
            }
            Guard::Moved { new } => {
                let reason = cause.to_string();
                self.failure = Some((step, cause));
                match self.back.clone() {
                    None => self.queue.push_back(Item::End(End::Failed(Ending::FirstDeploy(new)))),
                    Some(back) => {
                        let to = back.live;
                        self.guard = Guard::SwitchingBack { on: new };
                        self.push(Step::Switch { route: back, label: "switch back".into(), moves: false }, On::Plain);
                        self.push(self.hook(Hook::OnRollback, Some(reason)), On::Soft);
                        let drain = Step::Drain { color: new, indices: None, deadline: self.settings.drain };
                        self.push(drain, On::Soft);
                        self.push(Step::Retire { color: new, indices: None, remove: true }, On::Soft);
                        self.queue.push_back(Item::End(End::Failed(Ending::SwitchedBack(to))));
                    }
                }
            }
            Guard::Rolling => {
                let reason = cause.to_string();
                self.failure = Some((step, cause));
                rolling::restore(self, Some(reason));
            }
            Guard::SwitchingBack { on } => {
                self.guard = Guard::Recorded;
                let failure = match self.failure.take() {
                    Some((step, first)) => RunFailure::SwitchBackFailed { step, cause: first, back: cause, on },
                    // An abort: nothing failed before this.
                    None => RunFailure::NotRestored { step, cause, on },
                };
                let verdict = self.failed_verdict(failure, Some(on));
                self.queue.push_back(Item::Do(Step::Record(Box::new(verdict)), On::Soft));
            }
            Guard::Recorded => unreachable!("handled above"),
        }
    }

    fn push(&mut self, step: Step, on: On) {
        self.queue.push_back(Item::Do(step, on));
    }

    /// A hook step with the run's facts.
    fn hook(&self, hook: Hook, reason: Option<String>) -> Step {
        let s = &self.subject;
        Step::Hook {
            hook,
            facts: HookFacts {
                image: s.image.clone(),
                digest: s.digest.clone(),
                new_color: Some(s.color),
                old_color: s.previous.as_ref().map(|p| p.0),
                old_digest: s.previous.as_ref().map(|p| p.1.clone()),
                reason,
            },
        }
    }

    fn verdict(&mut self, end: End) -> Verdict {
        match end {
            End::Succeeded { live } => self.plain_verdict(Outcome::Succeeded, None, live),
            End::Paused { reason, live } => self.plain_verdict(Outcome::Paused, Some(reason), live),
            End::Aborted { reason, live } => self.plain_verdict(Outcome::Aborted, Some(reason), Some(live)),
            End::Failed(ending) => {
                let (step, cause) = self.failure.take().expect("a failed end follows a failure");
                let previous = self.subject.previous.as_ref().map(|p| p.0);
                let (failure, live) = match ending {
                    Ending::BeforeSwitch => (RunFailure::BeforeSwitch { step, cause }, previous),
                    Ending::SwitchedBack(to) => (RunFailure::SwitchedBack { step, cause, to }, Some(to)),
                    Ending::FirstDeploy(on) => (RunFailure::FirstDeploy { step, cause, on }, Some(on)),
                    Ending::Update => (RunFailure::Update { step, cause }, None),
                };
                self.failed_verdict(failure, live)
            }
        }
    }

    fn plain_verdict(&self, outcome: Outcome, reason: Option<String>, live: Option<Color>) -> Verdict {
        let s = &self.subject;
        Verdict {
            action: self.action,
            outcome,
            image: s.image.clone(),
            digest: s.digest.clone(),
            color: s.color,
            previous: s.previous.clone(),
            reason,
            failure: None,
            live,
            adopted: self.adopted.clone(),
        }
    }

    fn failed_verdict(&self, failure: RunFailure, live: Option<Color>) -> Verdict {
        let mut verdict = self.plain_verdict(Outcome::Failed, Some(failure.to_string()), live);
        verdict.failure = Some(failure);
        verdict
    }

    /// The traffic route that sends everything to `color`'s running replicas.
    fn all_on(&self, color: Color, digest: &str) -> Route {
        Route {
            live: color,
            live_digest: digest.to_owned(),
            phase: super::model::Phase::Stable,
            members: vec![Member { color, indices: None, share: Share::Even }],
        }
    }
}

/// A pinned image from the text the history keeps (`repo@sha256:...`), if it is one.
pub fn pinned(image: &str) -> Option<PinnedImage> {
    let reference: crate::reference::Reference = image.parse().ok()?;
    let digest = reference.digest().cloned()?;
    Some(PinnedImage { repository: reference, digest })
}
