//! The core driven through every failure path against a simulated world (a fake target and
//! a fake switch in one): each case says where traffic ends and what is left running.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::deploy::history::Outcome;
use crate::deploy::model::{ContainerState, FailureAction, Health, Order, Phase, Server};
use crate::deploy::spec::CanaryStep;
use crate::deploy::target::{TargetError, UpdateFailure};

const V1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const V2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn image(digest: &str) -> PinnedImage {
    PinnedImage { repository: "127.0.0.1:5000/web".parse().unwrap(), digest: digest.parse().unwrap() }
}

/// A replica in the simulated world.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rep {
    digest: String,
    running: bool,
}

/// What the fake switch holds: (color, index, weight) in traffic, the live color, the phase,
/// the live digest.
type Held = (Vec<(Color, u32, u32)>, Color, Phase, String);

/// The fake target and switch: replicas by (color, index), and what the switch sends where.
#[derive(Clone, Debug, Default)]
struct World {
    replicas: BTreeMap<(Color, u32), Rep>,
    /// (color, index, weight) in traffic; live color; phase; live digest.
    traffic: Option<Held>,
    history: Vec<Past>,
    rolling_digest: Option<String>,
    /// Steps (by label, or label prefix before a space) that fail, each once per entry.
    fail: Vec<&'static str>,
    /// Every step carried out, by label.
    log: Vec<String>,
    verdict: Option<(Outcome, Option<&'static str>, Option<Color>)>,
}

impl World {
    /// `n` replicas of `digest` on `color`, all in traffic.
    fn live(color: Color, n: u32, digest: &str) -> Self {
        let mut world = Self::default();
        for i in 1..=n {
            world.replicas.insert((color, i), Rep { digest: digest.into(), running: true });
        }
        world.traffic = Some(((1..=n).map(|i| (color, i, 1)).collect(), color, Phase::Stable, digest.into()));
        world.history.push(Past { image: image(digest).reference(), digest: digest.into(), succeeded: true });
        world
    }

    fn failing(mut self, steps: &[&'static str]) -> Self {
        self.fail = steps.to_vec();
        self
    }

    fn name(color: Color, index: u32) -> String {
        format!("web-{color}-{index}")
    }

    fn observed(&self) -> Observed {
        let replicas = self
            .replicas
            .iter()
            .map(|((color, index), rep)| Replica {
                id: Self::name(*color, *index),
                name: Self::name(*color, *index),
                color: *color,
                digest: rep.digest.clone(),
                deploy_id: String::new(),
                index: *index,
                state: if rep.running { ContainerState::Running } else { ContainerState::Exited },
                health: Health::None,
                addr: None,
                created: String::new(),
            })
            .collect();
        let traffic = self.traffic.as_ref().map(|(servers, live, phase, digest)| Traffic {
            service: "web".into(),
            live: *live,
            live_digest: digest.clone(),
            deploy_id: "earlier".into(),
            phase: phase.clone(),
            servers: servers
                .iter()
                .map(|(color, index, weight)| Server {
                    addr: format!("127.0.0.1:{}", 9000 + index),
                    weight: *weight,
                    container: Self::name(*color, *index),
                    color: *color,
                })
                .collect(),
        });
        Observed {
            traffic,
            replicas,
            took_over: false,
            history: self.history.clone(),
            rolling_digest: self.rolling_digest.clone(),
        }
    }

    fn selected(&self, color: Color, indices: &Option<Vec<u32>>) -> Vec<u32> {
        self.replicas
            .keys()
            .filter(|(c, i)| *c == color && indices.as_ref().is_none_or(|list| list.contains(i)))
            .map(|(_, i)| *i)
            .collect()
    }

    /// Carries out one step, as a target and a switch would.
    fn apply(&mut self, step: Step) -> Result<(), StepError> {
        let label = step.label();
        self.log.push(label.clone());
        if let Some(at) = self.fail.iter().position(|f| label == *f || label.starts_with(&format!("{f} "))) {
            self.fail.remove(at);
            return Err(StepError::Injected("injected failure"));
        }
        match step {
            Step::Resume { color, indices } => {
                let chosen = self.selected(color, &indices);
                if chosen.is_empty() {
                    return Err(StepError::Injected("nothing to start"));
                }
                for i in chosen {
                    self.replicas.get_mut(&(color, i)).unwrap().running = true;
                }
            }
            Step::Retire { color, indices, remove } => {
                for i in self.selected(color, &indices) {
                    if remove {
                        self.replicas.remove(&(color, i));
                    } else {
                        self.replicas.get_mut(&(color, i)).unwrap().running = false;
                    }
                }
            }
            Step::Start { color, image, indices } => {
                for i in indices {
                    self.replicas.insert((color, i), Rep { digest: image.digest.to_string(), running: true });
                }
            }
            Step::Switch { route, .. } => {
                let mut servers = Vec::new();
                let running = |c: Color| self.replicas.iter().filter(move |((rc, _), r)| *rc == c && r.running).count();
                for member in &route.members {
                    let weight = match member.share {
                        Share::Even => 1,
                        Share::Canary(p) => {
                            let (s, n) = crate::deploy::nginx::canary_weights(
                                p,
                                running(route.live),
                                running(route.live.other()),
                            );
                            if member.color == route.live { s } else { n }
                        }
                    };
                    for i in self.selected(member.color, &member.indices) {
                        if self.replicas[&(member.color, i)].running && weight > 0 {
                            servers.push((member.color, i, weight));
                        }
                    }
                }
                if servers.is_empty() {
                    return Err(StepError::Injected("no server"));
                }
                self.traffic = Some((servers, route.live, route.phase, route.live_digest));
            }
            Step::KeepWarm { old, new, .. } => {
                if self.traffic.as_ref().is_some_and(|t| t.1 == new) {
                    for rep in self.replicas.iter_mut().filter(|((c, _), _)| *c == old) {
                        rep.1.running = false;
                    }
                }
            }
            Step::Update { image } => self.rolling_digest = Some(image.digest.to_string()),
            Step::Record(verdict) => {
                let kind = verdict.failure.as_ref().map(RunFailure::kind);
                self.verdict = Some((verdict.outcome, kind, verdict.live));
            }
            Step::Reload
            | Step::Hook { .. }
            | Step::Pull { .. }
            | Step::Verify { .. }
            | Step::Watch { .. }
            | Step::Wait { .. }
            | Step::Revert => {}
        }
        Ok(())
    }

    /// Where traffic goes: the colors in the switch, with their share of the weight.
    fn traffic_on(&self) -> Vec<Color> {
        let mut colors: Vec<Color> = self.traffic.iter().flat_map(|t| t.0.iter().map(|s| s.0)).collect();
        colors.dedup();
        colors
    }

    /// What runs: (color, index) of running replicas.
    fn running(&self) -> Vec<(Color, u32)> {
        self.replicas.iter().filter(|(_, r)| r.running).map(|(k, _)| *k).collect()
    }

    /// Replicas that exist, running or not.
    fn present(&self) -> Vec<(Color, u32)> {
        self.replicas.keys().copied().collect()
    }
}

fn settings(strategy: Strategy, replicas: u32) -> Settings {
    Settings {
        service: "web".into(),
        strategy,
        replicas,
        canary_steps: vec![
            CanaryStep { weight: 10, pause: Some(Duration::from_secs(1)) },
            CanaryStep { weight: 50, pause: Some(Duration::from_secs(1)) },
            CanaryStep { weight: 100, pause: None },
        ],
        update_config: UpdateConfig { parallelism: 1, ..UpdateConfig::default() },
        rollback_config: UpdateConfig { parallelism: 0, ..UpdateConfig::default() },
        drain: Duration::from_millis(10),
        keep_warm: Duration::from_millis(10),
        no_auto_promote: false,
        rolls_itself: false,
        noun: "container(s)",
    }
}

/// Runs `action` in `world` to its end.
fn run(settings: Settings, action: Action, world: &mut World) -> Result<(), Refusal> {
    let mut machine = Machine::new(settings, &action, world.observed())?;
    let mut last = Ok(());
    while let Some(step) = machine.next(last) {
        last = world.apply(step);
    }
    Ok(())
}

use Color::{Blue, Green};

struct Case {
    name: &'static str,
    fail: &'static [&'static str],
    outcome: Outcome,
    failure: Option<&'static str>,
    traffic: &'static [Color],
    running: &'static [(Color, u32)],
    present: &'static [(Color, u32)],
}

fn check(case: &Case, world: &World) {
    let (outcome, failure, _) =
        world.verdict.unwrap_or_else(|| panic!("{}: no record; log {:?}", case.name, world.log));
    assert_eq!((outcome, failure), (case.outcome, case.failure), "{}: log {:?}", case.name, world.log);
    assert_eq!(world.traffic_on(), case.traffic, "{}: traffic; log {:?}", case.name, world.log);
    assert_eq!(world.running(), case.running, "{}: running; log {:?}", case.name, world.log);
    assert_eq!(world.present(), case.present, "{}: present; log {:?}", case.name, world.log);
}

#[test]
fn blue_green_every_failure_path() {
    let both = &[(Blue, 1), (Blue, 2), (Green, 1), (Green, 2)][..];
    let blue = &[(Blue, 1), (Blue, 2)][..];
    let green = &[(Green, 1), (Green, 2)][..];
    let cases = [
        Case {
            name: "succeeds",
            fail: &[],
            outcome: Outcome::Succeeded,
            failure: None,
            traffic: &[Green],
            running: green,
            present: both,
        },
        Case {
            name: "pre-deploy hook fails",
            fail: &["hook pre-deploy"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "pull fails",
            fail: &["pull"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "health gate fails",
            fail: &["start green x2"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "pre-switch hook fails",
            fail: &["hook pre-switch"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "reload fails",
            fail: &["switch"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "verify fails",
            fail: &["verify"],
            outcome: Outcome::Failed,
            failure: Some("switched-back"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "post-switch hook fails",
            fail: &["hook post-switch"],
            outcome: Outcome::Failed,
            failure: Some("switched-back"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "switch back fails",
            fail: &["verify", "switch back"],
            outcome: Outcome::Failed,
            failure: Some("switch-back-failed"),
            traffic: &[Green],
            running: both,
            present: both,
        },
        Case {
            name: "post-deploy hook fails",
            fail: &["hook post-deploy"],
            outcome: Outcome::Succeeded,
            failure: None,
            traffic: &[Green],
            running: green,
            present: both,
        },
        Case {
            name: "stopping the old color fails",
            fail: &["keep warm"],
            outcome: Outcome::Succeeded,
            failure: None,
            traffic: &[Green],
            running: both,
            present: both,
        },
    ];
    for case in &cases {
        let mut world = World::live(Blue, 2, V1).failing(case.fail);
        run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut world).unwrap();
        check(case, &world);
    }
}

#[test]
fn a_first_deploy_that_fails_after_its_switch_keeps_the_only_version() {
    let mut world = World::default().failing(&["verify"]);
    run(settings(Strategy::BlueGreen, 1), Action::Deploy(image(V1)), &mut world).unwrap();
    let case = Case {
        name: "first deploy",
        fail: &[],
        outcome: Outcome::Failed,
        failure: Some("first-deploy"),
        traffic: &[Blue],
        running: &[(Blue, 1)],
        present: &[(Blue, 1)],
    };
    check(&case, &world);
}

#[test]
fn canary_every_failure_path() {
    let both = &[(Blue, 1), (Blue, 2), (Green, 1), (Green, 2)][..];
    let blue = &[(Blue, 1), (Blue, 2)][..];
    let green = &[(Green, 1), (Green, 2)][..];
    let cases = [
        Case {
            name: "succeeds",
            fail: &[],
            outcome: Outcome::Succeeded,
            failure: None,
            traffic: &[Green],
            running: green,
            present: both,
        },
        Case {
            name: "first step's switch fails",
            fail: &["canary 10%"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "second step's switch fails",
            fail: &["canary 50%"],
            outcome: Outcome::Failed,
            failure: Some("switched-back"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "a pause's watch fails",
            fail: &["pause at 10%"],
            outcome: Outcome::Failed,
            failure: Some("switched-back"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "the last switch fails",
            fail: &["switch"],
            outcome: Outcome::Failed,
            failure: Some("switched-back"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "switch back fails",
            fail: &["pause at 50%", "switch back"],
            outcome: Outcome::Failed,
            failure: Some("switch-back-failed"),
            traffic: &[Blue, Green],
            running: both,
            present: both,
        },
    ];
    for case in &cases {
        let mut world = World::live(Blue, 2, V1).failing(case.fail);
        run(settings(Strategy::Canary, 2), Action::Deploy(image(V2)), &mut world).unwrap();
        check(case, &world);
    }
}

#[test]
fn a_canary_step_without_a_pause_waits_and_continue_goes_on_or_abort_drops_it() {
    let mut s = settings(Strategy::Canary, 2);
    s.canary_steps[0].pause = None;
    let mut world = World::live(Blue, 2, V1);
    run(s.clone(), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!(world.verdict.map(|v| v.0), Some(Outcome::Paused));
    assert_eq!(world.traffic_on(), [Blue, Green], "10% on green");
    assert!(matches!(world.traffic.as_ref().unwrap().2, Phase::Canary { step: 0, weight: 10, .. }));

    let mut resumed = world.clone();
    resumed.log.clear();
    run(s.clone(), Action::Continue, &mut resumed).unwrap();
    assert_eq!(resumed.verdict.map(|v| v.0), Some(Outcome::Succeeded));
    assert_eq!(resumed.traffic_on(), [Green]);
    assert!(resumed.log.iter().any(|s| s == "canary 50%") && !resumed.log.iter().any(|s| s == "canary 10%"));

    let mut aborted = world.clone();
    run(s.clone(), Action::Abort, &mut aborted).unwrap();
    assert_eq!(aborted.verdict.map(|v| v.0), Some(Outcome::Aborted));
    assert_eq!((aborted.traffic_on(), aborted.present()), (vec![Blue], vec![(Blue, 1), (Blue, 2)]));

    // Nothing in flight any more: both are refused, and change nothing.
    for action in [Action::Continue, Action::Abort] {
        let refused = run(s.clone(), action, &mut aborted.clone()).unwrap_err();
        assert!(matches!(refused, Refusal::NothingInFlight { .. }), "{refused}");
    }
    // A deploy while one is in flight is refused.
    let refused = run(s, Action::Deploy(image(V2)), &mut world.clone()).unwrap_err();
    assert!(matches!(refused, Refusal::InFlight { .. }), "{refused}");
}

#[test]
fn no_auto_promote_holds_the_switch_and_a_failure_then_removes_the_new_color() {
    let mut s = settings(Strategy::BlueGreen, 2);
    s.no_auto_promote = true;
    let mut world = World::live(Blue, 2, V1);
    run(s.clone(), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!(world.verdict.map(|v| v.0), Some(Outcome::Paused));
    assert_eq!(world.traffic_on(), [Blue]);
    assert_eq!(world.running().len(), 4, "green waits, healthy");

    let mut failing = world.clone().failing(&["verify"]);
    s.no_auto_promote = false;
    run(s.clone(), Action::Continue, &mut failing).unwrap();
    assert_eq!(failing.verdict.map(|v| v.1), Some(Some("switched-back")));
    assert_eq!((failing.traffic_on(), failing.present()), (vec![Blue], vec![(Blue, 1), (Blue, 2)]));

    let refused = run(settings(Strategy::BlueGreen, 1), Action::Deploy(image(V1)), &mut World::default());
    assert!(refused.is_ok(), "a first deploy without --no-auto-promote runs");
    let mut first = settings(Strategy::BlueGreen, 1);
    first.no_auto_promote = true;
    let refused = run(first, Action::Deploy(image(V1)), &mut World::default()).unwrap_err();
    assert!(matches!(refused, Refusal::NoLiveVersion(_)));
}

fn rolling(failure_action: FailureAction, order: Order) -> Settings {
    let mut s = settings(Strategy::Rolling, 3);
    s.update_config = UpdateConfig {
        parallelism: 1,
        failure_action,
        order,
        max_failure_ratio: 0.0,
        monitor: Duration::from_millis(5),
        ..UpdateConfig::default()
    };
    s
}

#[test]
fn rolling_every_failure_path() {
    let all_blue = &[(Blue, 1), (Blue, 2), (Blue, 3)][..];
    let all_green = &[(Green, 1), (Green, 2), (Green, 3)][..];
    let everything = &[(Blue, 1), (Blue, 2), (Blue, 3), (Green, 1), (Green, 2), (Green, 3)][..];
    let cases = [
        (
            rolling(FailureAction::Pause, Order::StartFirst),
            Case {
                name: "succeeds",
                fail: &[],
                outcome: Outcome::Succeeded,
                failure: None,
                traffic: &[Green],
                running: all_green,
                present: everything,
            },
        ),
        (
            rolling(FailureAction::Pause, Order::StartFirst),
            Case {
                name: "batch 2 fails, pause",
                fail: &[],
                outcome: Outcome::Paused,
                failure: None,
                traffic: &[Blue, Green],
                running: &[(Blue, 2), (Blue, 3), (Green, 1)],
                present: &[(Blue, 1), (Blue, 2), (Blue, 3), (Green, 1)],
            },
        ),
        (
            rolling(FailureAction::Rollback, Order::StartFirst),
            Case {
                name: "batch 1 fails, rollback",
                fail: &["start green x1"],
                outcome: Outcome::Failed,
                failure: Some("switched-back"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Continue, Order::StartFirst),
            Case {
                name: "batch 1 fails, continue",
                fail: &["start green x1"],
                outcome: Outcome::Succeeded,
                failure: None,
                traffic: &[Green],
                running: &[(Blue, 1), (Green, 2), (Green, 3)],
                present: &[(Blue, 1), (Blue, 2), (Blue, 3), (Green, 2), (Green, 3)],
            },
        ),
        (
            rolling(FailureAction::Rollback, Order::StartFirst),
            Case {
                name: "a monitor fails, rollback",
                fail: &["monitor"],
                outcome: Outcome::Failed,
                failure: Some("switched-back"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Pause, Order::StartFirst),
            Case {
                name: "a batch's switch fails",
                fail: &["switch batch"],
                outcome: Outcome::Failed,
                failure: Some("switched-back"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Pause, Order::StartFirst),
            Case {
                name: "verify at the end fails",
                fail: &["verify"],
                outcome: Outcome::Failed,
                failure: Some("switched-back"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Rollback, Order::StartFirst),
            Case {
                name: "rollback's switch back fails",
                fail: &["start green x1", "switch back"],
                outcome: Outcome::Failed,
                failure: Some("switch-back-failed"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Pause, Order::StopFirst),
            Case {
                name: "stop-first: batch 1 fails, its old replica comes back",
                fail: &["start green x1"],
                outcome: Outcome::Paused,
                failure: None,
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Rollback, Order::StopFirst),
            Case {
                name: "stop-first: batch 2 fails, rollback",
                fail: &[],
                outcome: Outcome::Failed,
                failure: Some("switched-back"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
    ];
    for (settings, case) in &cases {
        let mut world = World::live(Blue, 3, V1).failing(case.fail);
        // "Batch 2 fails": the first start succeeds, the second fails.
        if case.name.contains("batch 2") {
            world.fail = vec![];
            let mut machine = Machine::new(settings.clone(), &Action::Deploy(image(V2)), world.observed()).unwrap();
            let mut last = Ok(());
            let mut starts = 0;
            while let Some(step) = machine.next(last) {
                let is_start = matches!(step, Step::Start { .. });
                starts += usize::from(is_start);
                last = if is_start && starts == 2 {
                    world.log.push(step.label());
                    Err(StepError::Injected("gate"))
                } else {
                    world.apply(step)
                };
            }
        } else {
            run(settings.clone(), Action::Deploy(image(V2)), &mut world).unwrap();
        }
        check(case, &world);
    }
}

#[test]
fn a_paused_rolling_update_resumes_where_it_stopped_and_abort_brings_every_old_replica_back() {
    let mut world = World::live(Blue, 3, V1);
    let s = rolling(FailureAction::Pause, Order::StartFirst);
    let mut machine = Machine::new(s.clone(), &Action::Deploy(image(V2)), world.observed()).unwrap();
    let mut last = Ok(());
    let mut starts = 0;
    while let Some(step) = machine.next(last) {
        let is_start = matches!(step, Step::Start { .. });
        starts += usize::from(is_start);
        last = if is_start && starts == 2 { Err(StepError::Injected("gate")) } else { world.apply(step) };
    }
    assert_eq!(world.verdict.map(|v| v.0), Some(Outcome::Paused));
    assert!(matches!(world.traffic.as_ref().unwrap().2, Phase::Rolling { .. }));

    let mut resumed = world.clone();
    resumed.log.clear();
    run(s.clone(), Action::Continue, &mut resumed).unwrap();
    assert_eq!(resumed.verdict.map(|v| v.0), Some(Outcome::Succeeded));
    assert_eq!(resumed.traffic_on(), [Green]);
    let started: Vec<_> = resumed.log.iter().filter(|l| l.starts_with("start green")).collect();
    assert_eq!(started.len(), 2, "replica 1 is already replaced: {:?}", resumed.log);

    let mut aborted = world.clone();
    run(s, Action::Abort, &mut aborted).unwrap();
    assert_eq!(aborted.verdict.map(|v| v.0), Some(Outcome::Aborted));
    assert_eq!(aborted.traffic_on(), [Blue]);
    assert_eq!(aborted.running(), [(Blue, 1), (Blue, 2), (Blue, 3)], "the stopped old replica came back");
    assert!(aborted.present().iter().all(|(c, _)| *c == Blue));
}

#[test]
fn rollback_to_the_idle_color_and_when_its_check_fails() {
    // v2 live on green, v1 stopped on blue (kept by the last deploy).
    let mut world = World::live(Green, 2, V2);
    world.history.insert(0, Past { image: image(V1).reference(), digest: V1.into(), succeeded: true });
    for i in 1..=2 {
        world.replicas.insert((Blue, i), Rep { digest: V1.into(), running: false });
    }
    let mut ok = world.clone();
    run(settings(Strategy::BlueGreen, 2), Action::Rollback { to: None }, &mut ok).unwrap();
    assert_eq!(ok.verdict, Some((Outcome::Succeeded, None, Some(Blue))));
    assert_eq!(ok.traffic_on(), [Blue]);
    assert_eq!(ok.running(), [(Blue, 1), (Blue, 2)], "green is stopped, kept for a roll forward");
    assert!(!ok.log.iter().any(|l| l.starts_with("pull")), "the idle color is reused: {:?}", ok.log);

    let mut failing = world.clone().failing(&["verify"]);
    run(settings(Strategy::BlueGreen, 2), Action::Rollback { to: None }, &mut failing).unwrap();
    assert_eq!(failing.verdict.map(|v| v.1), Some(Some("switched-back")));
    assert_eq!(failing.traffic_on(), [Green]);
    assert_eq!(failing.running(), [(Green, 1), (Green, 2)]);

    // Without an idle color the previous good digest from the history is deployed into it.
    let mut from_history = world.clone();
    from_history.replicas.retain(|(c, _), _| *c == Green);
    run(settings(Strategy::BlueGreen, 2), Action::Rollback { to: None }, &mut from_history).unwrap();
    assert_eq!(from_history.traffic_on(), [Blue]);
    assert!(from_history.log.iter().any(|l| l == &format!("pull {V1}")), "{:?}", from_history.log);
    assert_eq!(from_history.replicas[&(Blue, 1)].digest, V1);

    let never = run(settings(Strategy::BlueGreen, 2), Action::Rollback { to: None }, &mut World::default());
    assert!(matches!(never, Err(Refusal::NothingToRollBack { .. })));
}

#[test]
fn repair_starts_what_the_switch_points_at_and_re_points_it() {
    let mut world = World::live(Blue, 2, V1);
    world.replicas.get_mut(&(Blue, 2)).unwrap().running = false;
    run(settings(Strategy::BlueGreen, 2), Action::Repair, &mut world).unwrap();
    assert_eq!(world.log, ["start blue", "re-point", "record"]);
    assert_eq!(world.running(), [(Blue, 1), (Blue, 2)]);
    assert_eq!(world.traffic_on(), [Blue]);

    // A deploy after a reboot does the same before its own work.
    let mut rebooted = World::live(Blue, 2, V1);
    for rep in rebooted.replicas.values_mut() {
        rep.running = false;
    }
    run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut rebooted).unwrap();
    assert_eq!(&rebooted.log[..2], ["start blue", "re-point"]);
    assert_eq!(rebooted.traffic_on(), [Green]);
}

#[test]
fn a_target_that_rolls_by_itself_deploys_and_rolls_back_from_the_history() {
    let mut s = settings(Strategy::Rolling, 2);
    s.rolls_itself = true;
    let mut world = World { rolling_digest: Some(V1.into()), ..World::default() };
    world.history.push(Past { image: image(V1).reference(), digest: V1.into(), succeeded: true });
    run(s.clone(), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!(world.log, ["hook pre-deploy", format!("pull {V2}").as_str(), "update", "record", "hook post-deploy"]);
    assert_eq!(world.rolling_digest.as_deref(), Some(V2));
    world.history.push(Past { image: image(V2).reference(), digest: V2.into(), succeeded: true });

    // swarm rolled a bad update back itself: the on-rollback hook runs, the deploy failed.
    let mut machine = Machine::new(s.clone(), &Action::Deploy(image(V1)), world.observed()).unwrap();
    let mut log = Vec::new();
    let mut last = Ok(());
    let mut verdict = None;
    while let Some(step) = machine.next(last) {
        log.push(step.label());
        last = match step {
            Step::Update { .. } => {
                Err(StepError::Target(TargetError::Update(UpdateFailure::RolledBack { why: "unhealthy".into() })))
            }
            Step::Record(v) => {
                verdict = Some((v.outcome, v.failure.as_ref().map(RunFailure::kind)));
                Ok(())
            }
            _ => Ok(()),
        };
    }
    assert_eq!(log, ["hook pre-deploy", format!("pull {V1}").as_str(), "update", "hook on-rollback", "record"]);
    assert_eq!(verdict, Some((Outcome::Failed, Some("update"))));

    // Rollback goes to the previous good digest of the history, not to "the spec before".
    let mut back = world.clone();
    run(s.clone(), Action::Rollback { to: None }, &mut back).unwrap();
    assert_eq!(back.rolling_digest.as_deref(), Some(V1), "{:?}", back.log);
    // Without a history: the target's own rollback.
    let mut bare = World { rolling_digest: Some(V2.into()), ..World::default() };
    run(s.clone(), Action::Rollback { to: None }, &mut bare).unwrap();
    assert!(bare.log.iter().any(|l| l == "rollback"), "{:?}", bare.log);
    // Nothing to continue or abort.
    assert!(matches!(run(s, Action::Continue, &mut world.clone()), Err(Refusal::NothingInFlight { .. })));
}

#[test]
fn the_dry_run_is_the_success_path_of_the_same_machine() {
    let world = World::live(Blue, 2, V1);
    let preview: Vec<String> =
        Machine::new(settings(Strategy::BlueGreen, 2), &Action::Deploy(image(V2)), world.observed())
            .unwrap()
            .preview()
            .iter()
            .map(Step::label)
            .collect();
    let mut executed = world.clone();
    run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut executed).unwrap();
    assert_eq!(preview, executed.log);
    assert_eq!(
        preview,
        [
            "hook pre-deploy",
            &format!("pull {V2}"),
            "start green x2",
            "hook pre-switch",
            "switch",
            "verify",
            "hook post-switch",
            "record",
            "keep warm",
            "hook post-deploy"
        ]
    );
}
