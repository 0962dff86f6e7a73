//! The rolling update on colors: the live color's replicas replaced batch by batch with
//! compose's `deploy.update_config`, and the way back (`--abort`, a failure, `failure_action:
//! rollback`), batch by batch with `rollback_config`. Until the last switch the state keeps
//! its in-flight phase, so a run cut off anywhere is resumed by `--continue` or undone by
//! `--abort`.

use std::collections::BTreeSet;

use super::{End, Ending, Guard, Item, Machine, Member, On, Route, Share, Step};
use crate::deploy::color::Color;
use crate::deploy::failure::StepError;
use crate::deploy::hooks::Hook;
use crate::deploy::model::{Order, Phase, PinnedImage, Replica, Traffic};
use crate::deploy::plan::{self, AfterBatch};

/// A step of the update whose end the rolling state follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Event {
    /// The batch's new replicas started and passed their gate.
    Started,
    /// The batch's new replicas were watched for `monitor`.
    Watched,
    /// Stop-first: the batch's old replicas came back after its new ones failed.
    Restored,
    /// On the way back: old replicas `batch` started again.
    BroughtBack(Vec<u32>),
}

/// What the machine decides once the steps before it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// A batch ended: go on, pause or roll back (swarm's rule, [`plan::after_batch`]).
    AfterBatch,
    /// Every old replica that could come back did: the last switch back.
    FinishRestore,
}

/// Where the update stands.
#[derive(Debug)]
pub(super) struct Rolling {
    new: Color,
    old: Color,
    old_digest: String,
    phase: Phase,
    image: Option<PinnedImage>,
    batches: std::collections::VecDeque<Vec<u32>>,
    /// Old replicas in traffic.
    on_old: BTreeSet<u32>,
    /// New replicas in traffic.
    on_new: BTreeSet<u32>,
    /// Old replicas that exist (running or stopped).
    old_present: BTreeSet<u32>,
    failed: u32,
    started_batches: usize,
    batch: Vec<u32>,
    stop_first: bool,
    old_batch: Vec<u32>,
    /// `--abort` (or a rollback of an in-flight deploy), not a failure.
    aborting: bool,
}

impl Rolling {
    fn new(m: &Machine, traffic: &Traffic, replicas: &[Replica], image: Option<PinnedImage>) -> Self {
        let new = m.subject.color;
        let old = traffic.live;
        let in_traffic = |color: Color| -> BTreeSet<u32> {
            replicas
                .iter()
                .filter(|r| r.color == color && traffic.servers.iter().any(|s| s.container == r.name))
                .map(|r| r.index)
                .collect()
        };
        Self {
            new,
            old,
            old_digest: traffic.live_digest.clone(),
            phase: match &traffic.phase {
                Phase::Stable => {
                    Phase::Rolling { color: new, image: m.subject.image.clone(), digest: m.subject.digest.clone() }
                }
                phase => phase.clone(),
            },
            image,
            batches: Default::default(),
            on_old: in_traffic(old),
            on_new: in_traffic(new),
            old_present: replicas.iter().filter(|r| r.color == old).map(|r| r.index).collect(),
            failed: 0,
            started_batches: 0,
            batch: Vec::new(),
            stop_first: false,
            old_batch: Vec::new(),
            aborting: false,
        }
    }

    /// The route with the replicas in traffic now, in the in-flight phase.
    fn route(&self) -> Route {
        let member = |color, set: &BTreeSet<u32>| Member {
            color,
            indices: Some(set.iter().copied().collect()),
            share: Share::Even,
        };
        Route {
            live: self.old,
            live_digest: self.old_digest.clone(),
            phase: self.phase.clone(),
            members: vec![member(self.old, &self.on_old), member(self.new, &self.on_new)],
        }
    }
}

/// Starts the update from `traffic` (stable, or a paused rolling update to resume: its
/// servers say which replicas are already replaced).
pub(super) fn start(m: &mut Machine, traffic: &Traffic, image: &PinnedImage, replicas: &[Replica]) {
    let mut rolling = Rolling::new(m, traffic, replicas, Some(image.clone()));
    let todo: Vec<u32> = (1..=m.settings.replicas).filter(|i| !rolling.on_new.contains(i)).collect();
    rolling.batches = plan::batches(&todo, m.settings.update_config.parallelism).into_iter().collect();
    m.guard = Guard::Rolling;
    m.rolling = Some(rolling);
    next_batch(m);
}

/// `--abort`: everything back on the stable color.
pub(super) fn abort(m: &mut Machine, traffic: &Traffic, replicas: &[Replica]) {
    let mut rolling = Rolling::new(m, traffic, replicas, None);
    rolling.aborting = true;
    m.rolling = Some(rolling);
    restore(m, None);
}

fn next_batch(m: &mut Machine) {
    let settings = m.settings.clone();
    let Some(r) = m.rolling.as_mut() else { return };
    let Some(batch) = r.batches.pop_front() else { return finish(m) };
    let mut steps = Vec::new();
    if r.started_batches > 0 && !settings.update_config.delay.is_zero() {
        steps.push((Step::Wait { label: "delay", duration: settings.update_config.delay }, On::Soft));
    }
    r.started_batches += 1;
    let old_batch: Vec<u32> = batch.iter().copied().filter(|i| r.old_present.contains(i)).collect();
    let serving_without = r.on_old.iter().any(|i| !batch.contains(i)) || !r.on_new.is_empty();
    // Stop-first with nothing else serving would point the switch at nothing: start first then.
    r.stop_first = settings.update_config.order == Order::StopFirst && serving_without;
    if r.stop_first && !old_batch.is_empty() {
        r.on_old.retain(|i| !batch.contains(i));
        steps.push((Step::Switch { route: r.route(), label: "take out".into(), moves: false }, On::Plain));
        let drain = Step::Drain { color: r.old, indices: Some(old_batch.clone()), deadline: settings.drain };
        steps.push((drain, On::Soft));
        steps.push((Step::Retire { color: r.old, indices: Some(old_batch.clone()), remove: false }, On::Soft));
    }
    let image = r.image.clone().expect("an update has an image");
    steps.push((Step::Start { color: r.new, image, indices: batch.clone() }, On::Roll(Event::Started)));
    r.batch = batch;
    r.old_batch = old_batch;
    for (step, on) in steps {
        m.push(step, on);
    }
}

/// Every batch is replaced: the new color becomes the live one.
fn finish(m: &mut Machine) {
    let Some(r) = m.rolling.as_ref() else { return };
    let (new, digest) = (r.new, m.subject.digest.clone());
    m.push(Step::Switch { route: m.all_on(new, &digest), label: "switch".into(), moves: true }, On::Plain);
    m.push(Step::Verify { color: new }, On::Plain);
    m.queue.push_back(Item::End(End::Succeeded { live: Some(new) }));
    m.push(m.hook(Hook::PostDeploy, None), On::Soft);
}

/// A rolling step succeeded.
pub(super) fn succeeded(m: &mut Machine, event: Event) {
    let monitor = m.settings.update_config.monitor;
    let drain = m.settings.drain;
    let Some(r) = m.rolling.as_mut() else { return };
    match event {
        Event::Started => {
            r.on_new.extend(r.batch.iter().copied());
            if !r.stop_first {
                let batch = r.batch.clone();
                r.on_old.retain(|i| !batch.contains(i));
            }
            let mut steps =
                vec![(Step::Switch { route: r.route(), label: "switch batch".into(), moves: true }, On::Plain)];
            if !r.stop_first && !r.old_batch.is_empty() {
                let drain = Step::Drain { color: r.old, indices: Some(r.old_batch.clone()), deadline: drain };
                steps.push((drain, On::Soft));
                steps
                    .push((Step::Retire { color: r.old, indices: Some(r.old_batch.clone()), remove: false }, On::Soft));
            }
            if !monitor.is_zero() {
                let watch = Step::Watch {
                    color: r.new,
                    indices: Some(r.batch.clone()),
                    duration: monitor,
                    label: "monitor".into(),
                };
                steps.push((watch, On::Roll(Event::Watched)));
            }
            for (step, on) in steps {
                m.push(step, on);
            }
            m.queue.push_back(Item::Decide(Decision::AfterBatch));
        }
        Event::Watched => {}
        Event::Restored => {
            r.on_old.extend(r.old_batch.iter().copied());
            let route = r.route();
            m.queue
                .push_front(Item::Do(Step::Switch { route, label: "restore batch".into(), moves: false }, On::Plain));
        }
        Event::BroughtBack(batch) => {
            r.on_old.extend(batch.iter().copied());
            r.on_new.retain(|i| !batch.contains(i));
            let route = r.route();
            m.queue
                .push_front(Item::Do(Step::Switch { route, label: "roll back batch".into(), moves: false }, On::Plain));
        }
    }
}

/// A rolling step failed: `true` when the update takes it in its stride (a failed batch
/// counts against `max_failure_ratio`; an old replica that cannot come back is noted).
pub(super) fn tolerated(m: &mut Machine, event: Event, step: &str, cause: &StepError) -> bool {
    let Some(r) = m.rolling.as_mut() else { return false };
    match event {
        Event::Started => {
            m.notes.push(format!("batch {:?} failed ({step}): {cause}", r.batch));
            r.failed += r.batch.len() as u32;
            if r.stop_first && !r.old_batch.is_empty() {
                // Put the batch's old replicas back so capacity is kept.
                let resume = Step::Resume { color: r.old, indices: Some(r.old_batch.clone()) };
                m.queue.push_back(Item::Do(resume, On::Roll(Event::Restored)));
            }
            m.queue.push_back(Item::Decide(Decision::AfterBatch));
            true
        }
        Event::Watched => {
            m.notes.push(format!("batch {:?} failed while monitored: {cause}", r.batch));
            r.failed += r.batch.len() as u32;
            true
        }
        Event::Restored => {
            m.notes.push(format!("could not bring back replicas {:?}: {cause}", r.old_batch));
            true
        }
        Event::BroughtBack(batch) => {
            m.notes.push(format!("could not bring back replicas {batch:?}: {cause}"));
            true
        }
    }
}

/// A decision once the steps queued before it ended.
pub(super) fn decide(m: &mut Machine, decision: Decision) {
    match decision {
        Decision::AfterBatch => {
            let total = m.settings.replicas;
            let Some(r) = m.rolling.as_ref() else { return };
            let failed = r.failed;
            match plan::after_batch(failed, total, &m.settings.update_config) {
                AfterBatch::Proceed => next_batch(m),
                AfterBatch::Pause => {
                    let reason = format!(
                        "{failed} of {total} replicas failed: paused (failure_action pause); `imgctl deploy {0} --continue` goes on, `--abort` rolls back",
                        m.settings.service
                    );
                    let live = Some(r.old);
                    m.queue.push_back(Item::End(End::Paused { reason, live }));
                }
                AfterBatch::Rollback => {
                    let cause = StepError::TooManyFailed { failed, total };
                    let reason = cause.to_string();
                    m.failure = Some(("rolling".into(), cause));
                    restore(m, Some(reason));
                }
            }
        }
        Decision::FinishRestore => {
            let Some(r) = m.rolling.as_ref() else { return };
            if r.on_old.is_empty() {
                let color = r.old;
                m.fail(On::Plain, StepError::NothingCameBack { color });
                return;
            }
            let (old, new, aborting) = (r.old, r.new, r.aborting);
            let route = m.all_on(old, &r.old_digest.clone());
            m.push(Step::Switch { route, label: "switch back".into(), moves: false }, On::Plain);
            m.push(Step::Drain { color: new, indices: None, deadline: m.settings.drain }, On::Soft);
            m.push(Step::Retire { color: new, indices: None, remove: true }, On::Soft);
            if aborting {
                let reason = format!("aborted: all traffic on {old}");
                m.push(m.hook(Hook::OnRollback, Some(reason.clone())), On::Soft);
                m.queue.push_back(Item::End(End::Aborted { reason, live: old }));
            } else {
                let reason = m.failure.as_ref().map(|f| f.1.to_string());
                m.push(m.hook(Hook::OnRollback, reason), On::Soft);
                m.queue.push_back(Item::End(End::Failed(Ending::SwitchedBack(old))));
            }
        }
    }
}

/// The way back: the old color's stopped replicas started again in batches of
/// `rollback_config.parallelism`, each batch into traffic as it passes its gate, then all
/// traffic on the old color and the new one removed.
pub(super) fn restore(m: &mut Machine, _reason: Option<String>) {
    m.queue.clear();
    let parallelism = m.settings.rollback_config.parallelism;
    let Some(r) = m.rolling.as_ref() else { return };
    m.guard = Guard::SwitchingBack { on: r.new };
    let stopped: Vec<u32> = r.old_present.iter().copied().filter(|i| !r.on_old.contains(i)).collect();
    let old = r.old;
    for batch in plan::batches(&stopped, parallelism).into_iter().filter(|b| !b.is_empty()) {
        let resume = Step::Resume { color: old, indices: Some(batch.clone()) };
        m.queue.push_back(Item::Do(resume, On::Roll(Event::BroughtBack(batch))));
    }
    m.queue.push_back(Item::Decide(Decision::FinishRestore));
}
