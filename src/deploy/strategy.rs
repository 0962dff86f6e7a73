//! The flows of a run: blue/green, canary and rolling deploys, `--continue`, `--abort` and
//! rollback. Each failure before traffic moves removes the new color; each failure after it
//! moves traffic back first.

use std::time::{Duration, Instant};

use super::color::Color;
use super::history::{self, Outcome};
use super::hooks::Hook;
use super::model::{ContainerState, Phase, Replica, Traffic};
use super::nginx::canary_weights;
use super::plan;
use super::rolling;
use super::run::{Action, DeployError, Events, HookVars, Options, PinnedImage, Report, Run, history_dir};
use super::spec::{ServiceSpec, Strategy, Target};
use super::swarm_target;
use crate::digest::Digest;

/// Runs `action` on `spec`'s service: takes the lock, reconciles what an earlier run left, and
/// executes. A run that started and failed is recorded and reported with [`Outcome::Failed`];
/// `Err` means it could not start or needs a person.
pub async fn execute(
    spec: &ServiceSpec,
    options: &Options,
    action: Action,
    events: &mut dyn Events,
) -> Result<Report, DeployError> {
    let mut run = Run::start(spec, options, &action, events).await?;
    if spec.settings.target == Target::Swarm {
        if !run.engine.swarm_active().await? {
            return Err(DeployError::NotASwarm);
        }
        if spec.settings.strategy == Strategy::Rolling {
            return swarm_rolling(&mut run, action).await;
        }
    }
    let traffic = run.switch.read()?;
    match action {
        Action::Deploy(image) => deploy(&mut run, image, traffic).await,
        Action::Continue => resume(&mut run, traffic).await,
        Action::Abort => abort(&mut run, traffic).await,
        Action::Rollback { to } => rollback(&mut run, traffic, to).await,
    }
}

fn spec_is_swarm(run: &Run<'_>) -> bool {
    run.spec.settings.target == Target::Swarm
}

/// Swarm's own rolling update: deploy and rollback through the service; nothing to continue.
async fn swarm_rolling(run: &mut Run<'_>, action: Action) -> Result<Report, DeployError> {
    match action {
        Action::Deploy(image) => {
            let live = run.engine.service(&run.spec.name).await?;
            let previous =
                live.map(|s| (Color::Blue, s.labels.get(super::color::label::DIGEST).cloned().unwrap_or_default()));
            let start = Start { image: image.reference(), digest: image.digest.to_string(), previous, old: None };
            let vars = start.vars(Color::Blue);
            if let Err(e) = run.hook(Hook::PreDeploy, &vars).await {
                return failed(run, &start, Color::Blue, e.to_string());
            }
            run.pull(&image).await?;
            swarm_target::rolling(run, &start, Color::Blue).await
        }
        Action::Rollback { to: None } => swarm_target::rollback(run).await,
        Action::Rollback { to: Some(_) } => Err(DeployError::NothingToRollBack {
            service: run.spec.name.clone(),
            detail: " to a chosen digest on a swarm rolling service: deploy that digest instead".into(),
        }),
        Action::Continue => Err(DeployError::NothingInFlight {
            service: run.spec.name.clone(),
            action: "continue (swarm runs the update itself)",
        }),
        Action::Abort => Err(DeployError::NothingInFlight {
            service: run.spec.name.clone(),
            action: "abort (swarm runs the update itself; imgctl rollback goes back)",
        }),
    }
}

/// The state every flow starts from.
pub(super) struct Start {
    pub(super) image: String,
    pub(super) digest: String,
    pub(super) previous: Option<(Color, String)>,
    pub(super) old: Option<Traffic>,
}

impl Start {
    fn live(&self) -> Option<Color> {
        self.previous.as_ref().map(|p| p.0)
    }

    pub(super) fn vars(&self, new_color: Color) -> HookVars {
        HookVars {
            image: self.image.clone(),
            digest: self.digest.clone(),
            new_color: Some(new_color),
            old_color: self.live(),
            old_digest: self.previous.as_ref().map(|p| p.1.clone()),
            ..HookVars::default()
        }
    }
}

/// Records the run's end in the history.
pub(super) fn end(
    run: &mut Run<'_>,
    start: &Start,
    color: Color,
    outcome: Outcome,
    reason: Option<String>,
    live: Option<Color>,
) -> Result<Report, DeployError> {
    run.finish(&start.image, &start.digest, color, start.previous.clone(), outcome, reason, live)
}

/// Records a failed run: traffic is on the version that was live before.
pub(super) fn failed(run: &mut Run<'_>, start: &Start, color: Color, reason: String) -> Result<Report, DeployError> {
    end(run, start, color, Outcome::Failed, Some(reason), start.live())
}

async fn deploy(run: &mut Run<'_>, image: PinnedImage, traffic: Option<Traffic>) -> Result<Report, DeployError> {
    if let Some(phase) = plan::in_flight(traffic.as_ref()) {
        return Err(DeployError::InFlight { service: run.spec.name.clone(), phase: describe(phase) });
    }
    if run.options.no_auto_promote && traffic.is_none() {
        return Err(DeployError::NoLiveVersion(run.spec.name.clone()));
    }
    reconcile(run, traffic.as_ref()).await?;
    let start = Start {
        image: image.reference(),
        digest: image.digest.to_string(),
        previous: traffic.as_ref().map(|t| (t.live, t.live_digest.clone())),
        old: traffic,
    };
    let color = start.live().map(Color::other).unwrap_or(Color::Blue);
    let mut vars = start.vars(color);
    if let Err(e) = run.hook(Hook::PreDeploy, &vars).await {
        return failed(run, &start, color, e.to_string());
    }
    if let Err(e) = run.pull(&image).await {
        return failed(run, &start, color, e.to_string());
    }
    if run.strategy() == Strategy::Rolling && start.old.is_some() {
        return rolling::rolling(run, &start, color).await;
    }
    let indices: Vec<u32> = (1..=run.spec.replicas).collect();
    let new = match run.build(color, &start.image, &start.digest, &indices).await {
        Ok(new) => new,
        Err(reason) => return failed(run, &start, color, format!("{reason}; traffic never left the old version")),
    };
    vars.new_addrs = run.servers(&new, 1).into_iter().map(|s| s.addr).collect();
    if let Err(e) = run.hook(Hook::PreSwitch, &vars).await {
        run.retire(&new, true).await;
        return failed(run, &start, color, format!("{e}; traffic never left the old version"));
    }
    match (&start.old, run.options.no_auto_promote) {
        (Some(old), true) => {
            let phase = Phase::AwaitingPromotion { color, image: start.image.clone(), digest: start.digest.clone() };
            let waiting = run.traffic(old.live, &old.live_digest, phase, old.servers.clone());
            run.switch.apply(&waiting)?;
            let reason = format!(
                "{color} is healthy and waits: `imgctl deploy {0} --continue` switches, `--abort` drops it",
                run.spec.name
            );
            end(run, &start, color, Outcome::Paused, Some(reason), start.live())
        }
        (Some(_), false) if run.strategy() == Strategy::Canary => canary(run, &start, new, 0).await,
        _ => promote(run, &start, new).await,
    }
}

/// Removes what an earlier run left (orphans, the previous generation) and restarts what
/// nginx points at.
async fn reconcile(run: &mut Run<'_>, traffic: Option<&Traffic>) -> Result<(), DeployError> {
    let replicas = run.replicas().await?;
    let decision = plan::reconcile(traffic, &replicas);
    let since = Instant::now();
    let find = |id: &String| replicas.iter().find(|r| &r.id == id).cloned();
    for replica in decision.start.iter().filter_map(find) {
        run.start_replica(&replica).await?;
    }
    for replica in decision.remove.iter().filter_map(find) {
        run.remove_replica(&replica).await?;
    }
    if !decision.start.is_empty() || !decision.remove.is_empty() {
        let what = if spec_is_swarm(run) { "color service(s)" } else { "container(s)" };
        run.events.note(&format!(
            "reconciled: {} {what} nginx points at started again, {} idle or orphaned {what} removed",
            decision.start.len(),
            decision.remove.len()
        ));
        run.record("reconcile", since);
    }
    // A run that died between writing the upstream file and reloading left nginx on the old
    // file. (Only then: a reload closes idle keep-alive connections.)
    if traffic.is_some() && run.took_over {
        run.switch.reload()?;
    }
    Ok(())
}

/// All traffic to `new`; then verify, post-switch hook, keep-warm, and the old color stopped.
async fn promote(run: &mut Run<'_>, start: &Start, new: Vec<Replica>) -> Result<Report, DeployError> {
    let color = new.first().map(|r| r.color).unwrap_or(Color::Blue);
    let live = run.traffic(color, &start.digest, Phase::Stable, run.servers(&new, 1));
    if let Err(e) = run.apply(&live, "switch") {
        run.retire(&new, true).await;
        return failed(run, start, color, format!("{e}; traffic never left the old version"));
    }
    let mut vars = start.vars(color);
    vars.new_addrs = live.servers.iter().map(|s| s.addr.clone()).collect();
    let checked = match run.verify(&new).await {
        Ok(()) => run.hook(Hook::PostSwitch, &vars).await.map_err(|e| e.to_string()),
        Err(e) => Err(format!("verify after the switch failed: {e}")),
    };
    if let Err(reason) = checked {
        return switch_back(run, start, new, reason).await;
    }
    let mut report = end(run, start, color, Outcome::Succeeded, None, Some(color))?;
    retire_old_color(run, color).await;
    if let Err(e) = run.hook(Hook::PostDeploy, &vars).await {
        run.events.note(&format!("{e} (the deploy stands)"));
    }
    report.record.steps = run.steps.clone();
    Ok(report)
}

/// After a switch: the old color stays warm (without the lock, so `imgctl rollback` is
/// instant), then is stopped and kept for a later rollback, unless traffic changed meanwhile.
async fn retire_old_color(run: &mut Run<'_>, new_color: Color) {
    let Ok(replicas) = run.replicas().await else { return };
    let old: Vec<Replica> =
        replicas.into_iter().filter(|r| r.color != new_color && r.state == ContainerState::Running).collect();
    if old.is_empty() {
        return;
    }
    let settings = &run.spec.settings;
    let wait = settings.keep_warm.max(settings.drain);
    run.unlock();
    run.wait("keep warm", wait).await;
    if !run.relock() {
        run.events.note("another run took the lock during keep-warm; it decides about the old color");
        return;
    }
    match run.switch.read() {
        Ok(Some(now)) if now.deploy_id == run.id && now.live == new_color => run.retire(&old, false).await,
        _ => run.events.note("traffic changed during keep-warm (a rollback?); the old color was left running"),
    }
}

/// A check after the switch failed: traffic back to the old color, the new one removed.
async fn switch_back(
    run: &mut Run<'_>,
    start: &Start,
    new: Vec<Replica>,
    reason: String,
) -> Result<Report, DeployError> {
    let color = new.first().map(|r| r.color).unwrap_or(Color::Blue);
    let Some(old) = &start.old else {
        // A first deploy has nothing to go back to: nginx keeps the only version there is.
        return failed(run, start, color, format!("{reason}; this was the first deploy, so {color} keeps the traffic"));
    };
    let mut back = old.clone();
    back.deploy_id = run.id.clone();
    back.phase = Phase::Stable;
    if let Err(e) = run.apply(&back, "switch back") {
        return failed(
            run,
            start,
            color,
            format!("{reason}; switching back failed too ({e}): traffic is still on {color}"),
        );
    }
    let mut vars = start.vars(color);
    vars.reason = Some(reason.clone());
    if let Err(e) = run.hook(Hook::OnRollback, &vars).await {
        run.events.note(&e.to_string());
    }
    run.wait("drain", run.spec.settings.drain).await;
    run.retire(&new, true).await;
    failed(run, start, color, format!("{reason}; traffic is back on {}", old.live))
}

/// Canary steps from `from`: weights on the old and new color, pauses watched for health.
async fn canary(run: &mut Run<'_>, start: &Start, new: Vec<Replica>, from: usize) -> Result<Report, DeployError> {
    let old = start.old.clone().expect("a canary starts from a live version");
    let color = new.first().map(|r| r.color).unwrap_or(old.live.other());
    let stable: Vec<_> = old.servers.iter().filter(|s| s.color == old.live).cloned().collect();
    let steps = run.spec.settings.canary_steps.clone();
    for (index, step) in steps.iter().enumerate().skip(from) {
        if step.weight >= 100 {
            return promote(run, start, new).await;
        }
        let (ws, wn) = canary_weights(step.weight, stable.len(), new.len());
        let mut servers: Vec<_> = stable
            .iter()
            .cloned()
            .map(|mut s| {
                s.weight = ws;
                s
            })
            .collect();
        servers.extend(run.servers(&new, wn));
        let phase = Phase::Canary {
            color,
            image: start.image.clone(),
            digest: start.digest.clone(),
            step: index,
            weight: step.weight,
        };
        let traffic = run.traffic(old.live, &old.live_digest, phase, servers);
        if let Err(e) = run.apply(&traffic, &format!("canary {}%", step.weight)) {
            return switch_back(run, start, new, e.to_string()).await;
        }
        match step.pause {
            None => {
                let reason = format!(
                    "canary at {}% on {color}: `imgctl deploy {1} --continue` goes on, `imgctl deploy {1} --abort` drops it",
                    step.weight, run.spec.name
                );
                return end(run, start, color, Outcome::Paused, Some(reason), Some(old.live));
            }
            Some(pause) => {
                if let Err(reason) = watch(run, &new, pause, &format!("pause at {}%", step.weight)).await {
                    return switch_back(run, start, new, format!("the canary failed at {}%: {reason}", step.weight))
                        .await;
                }
            }
        }
    }
    promote(run, start, new).await
}

/// Probes `replicas` every health interval for `duration`; the first failure ends the watch.
pub(super) async fn watch(
    run: &mut Run<'_>,
    replicas: &[Replica],
    duration: Duration,
    step: &str,
) -> Result<(), String> {
    let since = Instant::now();
    let interval = run.spec.settings.health.interval;
    let result = async {
        loop {
            for replica in replicas {
                run.check(replica).await?;
            }
            if since.elapsed() >= duration {
                return Ok(());
            }
            tokio::time::sleep(interval.min(duration.saturating_sub(since.elapsed()))).await;
        }
    }
    .await;
    run.record(step, since);
    result
}

/// `--continue`: the next canary step, the held switch, or the rest of a rolling update.
async fn resume(run: &mut Run<'_>, traffic: Option<Traffic>) -> Result<Report, DeployError> {
    let Some(traffic) = traffic.filter(|t| plan::in_flight(Some(t)).is_some()) else {
        return Err(DeployError::NothingInFlight { service: run.spec.name.clone(), action: "continue" });
    };
    let (color, image, digest) = phase_target(&traffic.phase);
    let stable = stable_traffic(&traffic);
    let start = Start { image, digest, previous: Some((traffic.live, traffic.live_digest.clone())), old: Some(stable) };
    if let Phase::Rolling { .. } = traffic.phase {
        // Resume from the file as it is: its servers mark what is already replaced.
        let start = Start { old: Some(traffic.clone()), ..start };
        return rolling::rolling(run, &start, color).await;
    }
    let new: Vec<Replica> = run.replicas().await?.into_iter().filter(|r| r.color == color).collect();
    if new.is_empty() {
        return Err(DeployError::NothingInFlight {
            service: run.spec.name.clone(),
            action: "continue (its containers are gone; --abort clears it)",
        });
    }
    let new = match run.restart(&new).await {
        Ok(new) => new,
        Err(reason) => return switch_back(run, &start, new, reason).await,
    };
    match traffic.phase {
        Phase::Canary { step, .. } => canary(run, &start, new, step + 1).await,
        _ if run.strategy() == Strategy::Canary => canary(run, &start, new, 0).await,
        _ => promote(run, &start, new).await,
    }
}

/// `--abort`: all traffic back on the stable color, the new color removed.
async fn abort(run: &mut Run<'_>, traffic: Option<Traffic>) -> Result<Report, DeployError> {
    let Some(traffic) = traffic.filter(|t| plan::in_flight(Some(t)).is_some()) else {
        return Err(DeployError::NothingInFlight { service: run.spec.name.clone(), action: "abort" });
    };
    let (color, image, digest) = phase_target(&traffic.phase);
    rolling::restore(run, &traffic, color).await?;
    let reason = format!("aborted: all traffic on {}", traffic.live);
    let mut vars = HookVars {
        image: image.clone(),
        digest: digest.clone(),
        new_color: Some(color),
        old_color: Some(traffic.live),
        ..HookVars::default()
    };
    vars.reason = Some(reason.clone());
    if let Err(e) = run.hook(Hook::OnRollback, &vars).await {
        run.events.note(&e.to_string());
    }
    run.finish(
        &image,
        &digest,
        color,
        Some((traffic.live, traffic.live_digest.clone())),
        Outcome::Aborted,
        Some(reason),
        Some(traffic.live),
    )
}

/// `imgctl rollback`: the idle color (kept warm or stopped) gets the traffic back, or the
/// previous digest from the history is deployed into it.
async fn rollback(run: &mut Run<'_>, traffic: Option<Traffic>, to: Option<Digest>) -> Result<Report, DeployError> {
    let service = run.spec.name.clone();
    let Some(traffic) = traffic else {
        return Err(DeployError::NothingToRollBack { service, detail: ": it was never deployed".into() });
    };
    if plan::in_flight(Some(&traffic)).is_some() {
        return abort(run, Some(traffic)).await;
    }
    let idle = traffic.live.other();
    let replicas = run.replicas().await?;
    let idle_replicas: Vec<Replica> = replicas.iter().filter(|r| r.color == idle).cloned().collect();
    let records = history::read(&history_dir(run.options), &service)
        .map_err(|source| DeployError::History { path: history_dir(run.options), source })?;
    let target = match (&to, idle_replicas.first()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(replica)) => replica.digest.clone(),
        (None, None) => records
            .iter()
            .rev()
            .find(|r| r.outcome == Outcome::Succeeded && r.digest != traffic.live_digest)
            .map(|r| r.digest.clone())
            .ok_or_else(|| DeployError::NothingToRollBack {
                service: service.clone(),
                detail: " in its history".into(),
            })?,
    };
    let image = records.iter().rev().find(|r| r.digest == target).map(|r| r.image.clone());
    let start = Start {
        image: image.clone().unwrap_or_else(|| target.clone()),
        digest: target.clone(),
        previous: Some((traffic.live, traffic.live_digest.clone())),
        old: Some(traffic.clone()),
    };
    let reusable = !idle_replicas.is_empty() && idle_replicas.iter().all(|r| r.digest == target);
    let new = if reusable {
        run.restart(&idle_replicas).await
    } else {
        let Some(image) = image else {
            return Err(DeployError::NothingToRollBack {
                service,
                detail: format!(": {target} is not in its history; deploy it with --digest"),
            });
        };
        for replica in &idle_replicas {
            run.remove_replica(replica).await?;
        }
        let pinned: crate::reference::Reference = image.parse().map_err(|_| DeployError::NothingToRollBack {
            service: service.clone(),
            detail: format!(": its history names {image}, which is not an image reference"),
        })?;
        let Some(digest) = pinned.digest().cloned() else {
            return Err(DeployError::NothingToRollBack { service, detail: format!(": {image} has no digest") });
        };
        if let Err(e) = run.pull(&PinnedImage { repository: pinned.clone(), digest }).await {
            return failed(run, &start, idle, e.to_string());
        }
        let indices: Vec<u32> = (1..=run.spec.replicas).collect();
        run.build(idle, &start.image, &target, &indices).await
    };
    let new = match new {
        Ok(new) => new,
        Err(reason) => return failed(run, &start, idle, format!("{reason}; traffic stays on {}", traffic.live)),
    };
    let live = run.traffic(idle, &target, Phase::Stable, run.servers(&new, 1));
    if let Err(e) = run.apply(&live, "switch") {
        return failed(run, &start, idle, format!("{e}; traffic stays on {}", traffic.live));
    }
    if let Err(reason) = run.verify(&new).await {
        return switch_back(run, &start, new, format!("verify after the rollback failed: {reason}")).await;
    }
    let mut vars = start.vars(idle);
    vars.reason = Some("imgctl rollback".into());
    if let Err(e) = run.hook(Hook::OnRollback, &vars).await {
        run.events.note(&e.to_string());
    }
    let report =
        run.finish(&start.image, &target, idle, start.previous.clone(), Outcome::Succeeded, None, Some(idle))?;
    // The version rolled back from is stopped after a drain and kept, for a roll forward.
    run.wait("drain", run.spec.settings.drain).await;
    let old: Vec<Replica> = replicas.into_iter().filter(|r| r.color == traffic.live).collect();
    run.retire(&old, false).await;
    let mut report = report;
    report.record.steps = run.steps.clone();
    Ok(report)
}

fn phase_target(phase: &Phase) -> (Color, String, String) {
    match phase {
        Phase::Canary { color, image, digest, .. }
        | Phase::AwaitingPromotion { color, image, digest }
        | Phase::Rolling { color, image, digest } => (*color, image.clone(), digest.clone()),
        Phase::Stable => unreachable!("callers check that a deploy is in flight"),
    }
}

/// The traffic with only the stable color, each server at weight 1.
fn stable_traffic(traffic: &Traffic) -> Traffic {
    let mut stable = traffic.clone();
    stable.phase = Phase::Stable;
    stable.servers.retain(|s| s.color == traffic.live);
    for server in &mut stable.servers {
        server.weight = 1;
    }
    stable
}

/// A phase in words.
pub fn describe(phase: &Phase) -> String {
    match phase {
        Phase::Stable => "stable".into(),
        Phase::Canary { color, weight, .. } => format!("a canary with {weight}% on {color}"),
        Phase::AwaitingPromotion { color, .. } => format!("{color} waiting for promotion"),
        Phase::Rolling { color, .. } => format!("a rolling update to {color}"),
    }
}
