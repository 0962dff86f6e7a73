//! The first steps of each action: blue/green, canary, `--continue`, `--abort`, rollback,
//! repair, and the update of a target that rolls by itself. The rolling update on colors is in
//! [`super::rolling`].

use super::{Action, End, Guard, Item, Machine, Member, Observed, On, Past, Refusal, Route, Share, Step, Subject};
use crate::deploy::color::Color;
use crate::deploy::hooks::Hook;
use crate::deploy::model::{ADOPTED, ContainerState, Phase, PinnedImage, Replica, Source, Traffic};
use crate::deploy::plan;
use crate::deploy::spec::Strategy;

/// Why `action` cannot run, as far as the switch's state alone tells (no replica needs to be
/// observed for it): the interpreter asks before it connects to where the replicas run.
pub fn refusal(settings: &super::Settings, action: &Action, traffic: Option<&Traffic>) -> Option<Refusal> {
    let service = settings.service.clone();
    let in_flight = plan::in_flight(traffic);
    match action {
        Action::Continue if settings.rolls_itself => {
            Some(Refusal::NothingInFlight { service, action: "continue (the target runs the update itself)" })
        }
        Action::Abort if settings.rolls_itself => Some(Refusal::NothingInFlight {
            service,
            action: "abort (the target runs the update itself; imgctl rollback goes back)",
        }),
        Action::Repair if settings.rolls_itself || traffic.is_none() => Some(Refusal::NothingToRepair(service)),
        Action::Adopt if settings.rolls_itself => Some(Refusal::NothingToAdopt {
            service,
            detail: " (swarm updates it; only a Docker Engine runs compose's containers)".into(),
        }),
        _ if settings.rolls_itself => None,
        Action::Adopt if traffic.is_some() => Some(Refusal::AlreadyDeployed(service)),
        Action::Deploy(_) => match in_flight {
            Some(phase) => Some(Refusal::InFlight { service, phase: describe(phase) }),
            None if settings.no_auto_promote && traffic.is_none() => Some(Refusal::NoLiveVersion(service)),
            None => None,
        },
        Action::Continue if in_flight.is_none() => Some(Refusal::NothingInFlight { service, action: "continue" }),
        Action::Abort if in_flight.is_none() => Some(Refusal::NothingInFlight { service, action: "abort" }),
        Action::Rollback { .. } if traffic.is_none() => {
            Some(Refusal::NothingToRollBack { service, detail: ": it was never deployed".into() })
        }
        _ => None,
    }
}

/// Fills the machine's queue for `action`.
pub(super) fn plan(m: &mut Machine, action: &Action, observed: Observed) -> Result<(), Refusal> {
    if let Some(refusal) = refusal(&m.settings, action, observed.traffic.as_ref()) {
        return Err(refusal);
    }
    if m.settings.rolls_itself {
        return rolls_itself(m, action, &observed);
    }
    match action {
        Action::Deploy(image) => deploy(m, image, observed),
        Action::Continue => resume(m, observed),
        Action::Abort => abort(m, observed),
        Action::Rollback { to } => rollback(m, to.as_ref().map(ToString::to_string), observed),
        Action::Repair => repair(m, &observed),
        Action::Adopt => super::adopt::take_over(m, observed.compose.as_ref()),
    }
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

fn deploy(m: &mut Machine, image: &PinnedImage, observed: Observed) -> Result<(), Refusal> {
    // In flight, or --no-auto-promote without a live version: refused by `refusal`.
    let service = m.settings.service.clone();
    let traffic = observed.traffic.clone();
    // With no traffic state, compose's running containers of the service are the live color.
    let adoption = match &traffic {
        None => super::adopt::decide_move(&service, observed.compose.as_ref())?,
        Some(_) => None,
    };
    reconcile(m, &observed);
    let previous = traffic
        .as_ref()
        .map(|t| (t.live, t.live_digest.clone()))
        .or_else(|| adoption.as_ref().map(|a| (ADOPTED, a.digest.clone())));
    let color = previous.as_ref().map(|p| p.0.other()).unwrap_or(Color::Blue);
    m.subject =
        Subject { image: image.reference(), digest: image.digest.to_string(), color, previous: previous.clone() };
    m.back = previous.as_ref().map(|(live, digest)| m.all_on(*live, digest));
    if let Some(adoption) = &adoption {
        super::adopt::announce(m, adoption, true);
    }
    // compose's containers are replaced all at once: their numbers are no batches of imgctl's.
    let live_is_compose = observed
        .replicas
        .iter()
        .any(|r| r.source == Source::Compose && previous.as_ref().is_some_and(|p| p.0 == r.color));
    // The move off compose's containers after `--adopt` is the adoption's run too.
    if live_is_compose && m.adopted.is_none() {
        m.adopted = observed.compose.as_ref().map(|seen| seen.project.clone());
    }
    if live_is_compose && m.settings.strategy == Strategy::Rolling {
        m.notes.push("the move from compose's containers is one switch (blue/green); later deploys roll".into());
    }
    m.push(m.hook(Hook::PreDeploy, None), On::Plain);
    m.push(Step::Pull { image: image.clone() }, On::Plain);
    match &traffic {
        Some(old) if m.settings.strategy == Strategy::Rolling && !live_is_compose => {
            super::rolling::start(m, old, image, &observed.replicas);
        }
        _ => {
            let indices: Vec<u32> = (1..=m.settings.replicas).collect();
            m.push(Step::Start { color, image: image.clone(), indices }, On::Built(color));
            m.push(m.hook(Hook::PreSwitch, None), On::Plain);
            match &previous {
                Some((live, live_digest)) if m.settings.no_auto_promote => {
                    let waiting = Route {
                        phase: Phase::AwaitingPromotion {
                            color,
                            image: m.subject.image.clone(),
                            digest: m.subject.digest.clone(),
                        },
                        ..m.all_on(*live, live_digest)
                    };
                    m.push(Step::Switch { route: waiting, label: "hold".into(), moves: false }, On::Plain);
                    let reason = format!(
                        "{color} is healthy and waits: `imgctl deploy {service} --continue` switches, `--abort` drops it"
                    );
                    m.queue.push_back(Item::End(End::Paused { reason, live: Some(*live) }));
                }
                Some((live, _)) if m.settings.strategy == Strategy::Canary => canary(m, *live, 0),
                _ => promote(m),
            }
        }
    }
    Ok(())
}

/// Before a deploy: start what the switch points at that is not running (and point the switch
/// at its new addresses), remove idle and orphaned replicas, and reload a proxy an earlier run
/// left unreloaded.
fn reconcile(m: &mut Machine, observed: &Observed) {
    let decision = plan::reconcile(observed.traffic.as_ref(), &observed.replicas);
    let find = |id: &String| observed.replicas.iter().find(|r| &r.id == id);
    let by_color = |ids: &[String], color: Color| -> Vec<u32> {
        ids.iter().filter_map(find).filter(|r| r.color == color).map(|r| r.index).collect()
    };
    for color in [Color::Blue, Color::Green] {
        let start = by_color(&decision.start, color);
        if !start.is_empty() {
            m.push(Step::Resume { color, indices: Some(start) }, On::Plain);
        }
    }
    if let (Some(traffic), false) = (&observed.traffic, decision.start.is_empty()) {
        m.push(
            Step::Switch { route: route_of(traffic, &observed.replicas), label: "re-point".into(), moves: false },
            On::Plain,
        );
    } else if observed.took_over && observed.traffic.is_some() {
        // Only then: a reload closes idle keep-alive connections.
        m.push(Step::Reload, On::Plain);
    }
    for color in [Color::Blue, Color::Green] {
        let remove = by_color(&decision.remove, color);
        if !remove.is_empty() {
            m.push(Step::Retire { color, indices: Some(remove), remove: true }, On::Plain);
        }
    }
    if !decision.start.is_empty() || !decision.remove.is_empty() {
        let noun = m.settings.noun;
        m.notes.push(format!(
            "reconciled: {} {noun} the switch points at started again, {} idle or orphaned {noun} removed",
            decision.start.len(),
            decision.remove.len()
        ));
    }
}

/// The route `traffic` stands for, in colors: what a repair points the switch at again.
pub(super) fn route_of(traffic: &Traffic, replicas: &[Replica]) -> Route {
    let indices = |color: Color| -> Vec<u32> {
        replicas
            .iter()
            .filter(|r| r.color == color && traffic.servers.iter().any(|s| s.container == r.name))
            .map(|r| r.index)
            .collect()
    };
    let share = match traffic.phase {
        Phase::Canary { weight, .. } => Share::Canary(weight),
        _ => Share::Even,
    };
    let members = [traffic.live, traffic.live.other()]
        .into_iter()
        .filter(|c| traffic.servers.iter().any(|s| s.color == *c))
        .map(|color| Member { color, indices: Some(indices(color)), share })
        .collect();
    Route { live: traffic.live, live_digest: traffic.live_digest.clone(), phase: traffic.phase.clone(), members }
}

/// All traffic to the new color; verify, the post-switch hook, the record, keep-warm, the
/// drain and stop of the old color, the post-deploy hook. The old color stops at the later of
/// `keep_warm` and the drain's end (its connections gone, or `drain` after the switch).
fn promote(m: &mut Machine) {
    let color = m.subject.color;
    let route = m.all_on(color, &m.subject.digest.clone());
    m.push(Step::Switch { route, label: "switch".into(), moves: true }, On::Moved(color));
    m.push(Step::Verify { color }, On::Plain);
    m.push(m.hook(Hook::PostSwitch, None), On::Plain);
    m.queue.push_back(Item::End(End::Succeeded { live: Some(color) }));
    if let Some((old, _)) = m.subject.previous.clone() {
        let (keep_warm, drain) = (m.settings.keep_warm, m.settings.drain);
        m.push(Step::KeepWarm { old, new: color, duration: keep_warm }, On::Warm(old));
        m.push(Step::Drain { color: old, indices: None, deadline: drain.saturating_sub(keep_warm) }, On::Soft);
        m.push(Step::Retire { color: old, indices: None, remove: false }, On::Soft);
    }
    m.push(m.hook(Hook::PostDeploy, None), On::Soft);
}

/// Canary steps from `from`: weights on the live and the new color; a step without a pause
/// stops the run for `--continue`; 100% promotes.
fn canary(m: &mut Machine, live: Color, from: usize) {
    let color = m.subject.color;
    let (_, live_digest) = m.subject.previous.clone().unwrap_or((live, String::new()));
    for (index, step) in m.settings.canary_steps.clone().into_iter().enumerate().skip(from) {
        if step.weight >= 100 {
            break;
        }
        let route = Route {
            live,
            live_digest: live_digest.clone(),
            phase: Phase::Canary {
                color,
                image: m.subject.image.clone(),
                digest: m.subject.digest.clone(),
                step: index,
                weight: step.weight,
            },
            members: [live, color]
                .into_iter()
                .map(|c| Member { color: c, indices: None, share: Share::Canary(step.weight) })
                .collect(),
        };
        m.push(Step::Switch { route, label: format!("canary {}%", step.weight), moves: true }, On::Moved(color));
        match step.pause {
            None => {
                let reason = format!(
                    "canary at {}% on {color}: `imgctl deploy {1} --continue` goes on, `imgctl deploy {1} --abort` drops it",
                    step.weight, m.settings.service
                );
                m.queue.push_back(Item::End(End::Paused { reason, live: Some(live) }));
                return;
            }
            Some(duration) => m.push(
                Step::Watch { color, indices: None, duration, label: format!("pause at {}%", step.weight) },
                On::Plain,
            ),
        }
    }
    promote(m);
}

/// The in-flight traffic, or why `action` has nothing to act on.
fn in_flight(m: &Machine, traffic: Option<Traffic>, action: &'static str) -> Result<Traffic, Refusal> {
    traffic
        .filter(|t| plan::in_flight(Some(t)).is_some())
        .ok_or_else(|| Refusal::NothingInFlight { service: m.settings.service.clone(), action })
}

/// The color, image and digest a phase is moving to.
fn phase_target(phase: &Phase) -> Option<(Color, String, String)> {
    match phase {
        Phase::Canary { color, image, digest, .. }
        | Phase::AwaitingPromotion { color, image, digest }
        | Phase::Rolling { color, image, digest } => Some((*color, image.clone(), digest.clone())),
        Phase::Stable => None,
    }
}

/// `--continue`: the next canary step, the held switch, or the rest of a rolling update.
fn resume(m: &mut Machine, observed: Observed) -> Result<(), Refusal> {
    let traffic = in_flight(m, observed.traffic.clone(), "continue")?;
    let Some((color, image, digest)) = phase_target(&traffic.phase) else { unreachable!("in flight") };
    m.subject = Subject { image, digest, color, previous: Some((traffic.live, traffic.live_digest.clone())) };
    m.back = Some(m.all_on(traffic.live, &traffic.live_digest));
    if let Phase::Rolling { .. } = traffic.phase {
        let Some(image) = super::pinned(&m.subject.image) else {
            return Err(Refusal::NothingInFlight {
                service: m.settings.service.clone(),
                action: "continue (its state names no pinned image; --abort clears it)",
            });
        };
        super::rolling::start(m, &traffic, &image, &observed.replicas);
        return Ok(());
    }
    if !observed.replicas.iter().any(|r| r.color == color) {
        return Err(Refusal::NothingInFlight {
            service: m.settings.service.clone(),
            action: "continue (its replicas are gone; --abort clears it)",
        });
    }
    // Traffic may already be on the new color (a canary): from here a failure moves it back.
    m.guard = Guard::Moved { new: color };
    m.push(Step::Resume { color, indices: None }, On::Plain);
    match traffic.phase {
        Phase::Canary { step, .. } => canary(m, traffic.live, step + 1),
        _ if m.settings.strategy == Strategy::Canary => canary(m, traffic.live, 0),
        _ => promote(m),
    }
    Ok(())
}

/// `--abort`: all traffic back on the stable color (its stopped replicas started again), the
/// new color removed.
fn abort(m: &mut Machine, observed: Observed) -> Result<(), Refusal> {
    let traffic = in_flight(m, observed.traffic.clone(), "abort")?;
    let Some((color, image, digest)) = phase_target(&traffic.phase) else { unreachable!("in flight") };
    m.subject = Subject { image, digest, color, previous: Some((traffic.live, traffic.live_digest.clone())) };
    super::rolling::abort(m, &traffic, &observed.replicas);
    Ok(())
}

/// `imgctl rollback`: the idle color (kept warm or stopped) gets the traffic back, or the
/// previous digest from the history is deployed into it.
fn rollback(m: &mut Machine, to: Option<String>, observed: Observed) -> Result<(), Refusal> {
    let service = m.settings.service.clone();
    let Some(traffic) = observed.traffic.clone() else {
        return Err(Refusal::NothingToRollBack { service, detail: ": it was never deployed".into() });
    };
    if plan::in_flight(Some(&traffic)).is_some() {
        return abort(m, observed);
    }
    let idle = traffic.live.other();
    let idle_replicas: Vec<&Replica> = observed.replicas.iter().filter(|r| r.color == idle).collect();
    let target = match (&to, idle_replicas.first()) {
        (Some(digest), _) => digest.clone(),
        (None, Some(replica)) => replica.digest.clone(),
        (None, None) => previous_good(&observed.history, &traffic.live_digest)
            .map(|p| p.digest.clone())
            .ok_or_else(|| Refusal::NothingToRollBack { service: service.clone(), detail: " in its history".into() })?,
    };
    // compose's containers taken over: their image pinned in its registry, which no run of
    // the history deployed.
    let from_compose = || {
        let containers = observed.compose.iter().flat_map(|seen| &seen.containers);
        containers.filter(|c| c.digest() == Some(target.as_str())).find_map(|c| c.pinned.clone())
    };
    let image =
        observed.history.iter().rev().find(|r| r.digest == target).map(|r| r.image.clone()).or_else(from_compose);
    m.subject = Subject {
        image: image.clone().unwrap_or_else(|| target.clone()),
        digest: target.clone(),
        color: idle,
        previous: Some((traffic.live, traffic.live_digest.clone())),
    };
    m.back = Some(m.all_on(traffic.live, &traffic.live_digest));
    let reusable = !idle_replicas.is_empty() && idle_replicas.iter().all(|r| r.digest == target);
    if reusable {
        m.push(Step::Resume { color: idle, indices: None }, On::Plain);
    } else {
        let pinned = image.as_deref().and_then(super::pinned).ok_or_else(|| Refusal::NothingToRollBack {
            service: service.clone(),
            detail: format!(": {target} is not in its history as a pinned image; deploy it with --digest"),
        })?;
        if !idle_replicas.is_empty() {
            m.push(Step::Retire { color: idle, indices: None, remove: true }, On::Plain);
        }
        m.push(Step::Pull { image: pinned.clone() }, On::Plain);
        let indices: Vec<u32> = (1..=m.settings.replicas).collect();
        m.push(Step::Start { color: idle, image: pinned, indices }, On::Plain);
    }
    let route = m.all_on(idle, &target);
    m.push(Step::Switch { route, label: "switch".into(), moves: true }, On::Moved(idle));
    m.push(Step::Verify { color: idle }, On::Plain);
    m.push(m.hook(Hook::OnRollback, Some("imgctl rollback".into())), On::Soft);
    m.queue.push_back(Item::End(End::Succeeded { live: Some(idle) }));
    // The version rolled back from is stopped after a drain and kept, for a roll forward.
    m.push(Step::Drain { color: traffic.live, indices: None, deadline: m.settings.drain }, On::Soft);
    m.push(Step::Retire { color: traffic.live, indices: None, remove: false }, On::Soft);
    Ok(())
}

/// The last version that succeeded and is not `current`.
fn previous_good<'a>(history: &'a [Past], current: &str) -> Option<&'a Past> {
    history.iter().rev().find(|r| r.succeeded && r.digest != current)
}

/// `--repair`: start what the switch points at, then point it at the replicas' addresses
/// as they are now (a restart gives a container a new port).
fn repair(m: &mut Machine, observed: &Observed) -> Result<(), Refusal> {
    let Some(traffic) = &observed.traffic else { return Err(Refusal::NothingToRepair(m.settings.service.clone())) };
    let (color, image, digest) = phase_target(&traffic.phase).unwrap_or((
        traffic.live,
        traffic.live_digest.clone(),
        traffic.live_digest.clone(),
    ));
    m.subject = Subject { image, digest, color, previous: Some((traffic.live, traffic.live_digest.clone())) };
    for color in [traffic.live, traffic.live.other()] {
        let stopped: Vec<u32> = observed
            .replicas
            .iter()
            .filter(|r| r.color == color && r.state != ContainerState::Running)
            .filter(|r| traffic.servers.iter().any(|s| s.container == r.name))
            .map(|r| r.index)
            .collect();
        if !stopped.is_empty() {
            m.push(Step::Resume { color, indices: Some(stopped) }, On::Plain);
        }
    }
    m.push(
        Step::Switch { route: route_of(traffic, &observed.replicas), label: "re-point".into(), moves: false },
        On::Plain,
    );
    m.queue.push_back(Item::End(End::Succeeded { live: Some(traffic.live) }));
    Ok(())
}

/// A target that rolls by itself: deploy is its update; rollback goes to the previous good
/// digest of imgctl's history (the target's own rollback only without one: after the target
/// rolled a bad update back itself, "the version before" is the bad one).
fn rolls_itself(m: &mut Machine, action: &Action, observed: &Observed) -> Result<(), Refusal> {
    let service = m.settings.service.clone();
    let current = observed.rolling_digest.clone();
    let previous = current.clone().map(|d| (Color::Blue, d));
    match action {
        Action::Deploy(image) => {
            m.subject =
                Subject { image: image.reference(), digest: image.digest.to_string(), color: Color::Blue, previous };
            m.push(m.hook(Hook::PreDeploy, None), On::Plain);
            m.push(Step::Pull { image: image.clone() }, On::Plain);
            m.push(Step::Update { image: image.clone() }, On::Updating);
            m.queue.push_back(Item::End(End::Succeeded { live: None }));
            m.push(m.hook(Hook::PostDeploy, None), On::Soft);
        }
        Action::Rollback { to } => {
            let Some(current) = current else {
                return Err(Refusal::NothingToRollBack { service, detail: ": no such service is running".into() });
            };
            let chosen = match to {
                Some(digest) => {
                    let digest = digest.to_string();
                    Some(observed.history.iter().rev().find(|p| p.digest == digest).cloned().ok_or_else(|| {
                        Refusal::NothingToRollBack {
                            service: service.clone(),
                            detail: format!(": {digest} is not in its history; deploy it with --digest"),
                        }
                    })?)
                }
                None => previous_good(&observed.history, &current).cloned(),
            };
            match chosen.as_ref().and_then(|p| super::pinned(&p.image)) {
                Some(image) => {
                    m.subject = Subject {
                        image: image.reference(),
                        digest: image.digest.to_string(),
                        color: Color::Blue,
                        previous,
                    };
                    m.push(Step::Pull { image: image.clone() }, On::Plain);
                    m.push(Step::Update { image }, On::Updating);
                }
                None => {
                    m.subject = Subject { image: String::new(), digest: String::new(), color: Color::Blue, previous };
                    m.push(Step::Revert, On::Updating);
                }
            }
            m.push(m.hook(Hook::OnRollback, Some("imgctl rollback".into())), On::Soft);
            m.queue.push_back(Item::End(End::Succeeded { live: None }));
        }
        Action::Continue | Action::Abort | Action::Repair | Action::Adopt => {
            let refused = refusal(&m.settings, action, None);
            return Err(refused.expect("a target that rolls by itself has nothing to continue, abort or repair"));
        }
    }
    Ok(())
}
