//! The core driven through every failure path against a simulated world (a fake target and
//! a fake switch in one): each case says where traffic ends and what is left running.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::deploy::history::Outcome;
use crate::deploy::model::{
    ADOPTED, ComposeContainer, ComposeSeen, ContainerState, FailureAction, Health, Order, Phase, Replica, Server,
    Source, Traffic, UpdateConfig,
};
use crate::deploy::spec::{CanaryStep, Strategy};
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
    /// Connections each replica holds open past any drain deadline (long streams).
    open: BTreeMap<(Color, u32), u32>,
    /// The target cannot count connections.
    uncountable: bool,
    /// Every step carried out, by label.
    log: Vec<String>,
    verdict: Option<(Outcome, Option<&'static str>, Option<Color>)>,
    /// The image the last record names.
    recorded_image: String,
    /// What compose runs for the service (its containers are replicas of [`ADOPTED`] in
    /// `replicas` too, named `app_web_N`).
    compose: Option<ComposeSeen>,
    /// The replicas compose made (named `app_web_N`, [`Source::Compose`]).
    from_compose: std::collections::BTreeSet<(Color, u32)>,
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
                id: self.name_of(*color, *index),
                name: self.name_of(*color, *index),
                color: *color,
                digest: rep.digest.clone(),
                deploy_id: String::new(),
                index: *index,
                state: if rep.running { ContainerState::Running } else { ContainerState::Exited },
                health: Health::None,
                addr: None,
                created: String::new(),
                source: if self.from_compose.contains(&(*color, *index)) { Source::Compose } else { Source::Imgctl },
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
                    container: self.name_of(*color, *index),
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
            compose: self.compose.clone(),
        }
    }

    /// A replica's container name: imgctl's, or compose's for those compose made.
    fn name_of(&self, color: Color, index: u32) -> String {
        if self.from_compose.contains(&(color, index)) { format!("app_web_{index}") } else { Self::name(color, index) }
    }

    fn selected(&self, color: Color, indices: &Option<Vec<u32>>) -> Vec<u32> {
        self.replicas
            .keys()
            .filter(|(c, i)| *c == color && indices.as_ref().is_none_or(|list| list.contains(i)))
            .map(|(_, i)| *i)
            .collect()
    }

    /// Carries out one step, as a target and a switch would.
    fn apply(&mut self, step: Step) -> Result<Done, StepError> {
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
                    self.open.remove(&(color, i));
                    if remove {
                        self.replicas.remove(&(color, i));
                        self.from_compose.remove(&(color, i));
                    } else {
                        self.replicas.get_mut(&(color, i)).unwrap().running = false;
                    }
                }
            }
            Step::Start { color, image, indices } => {
                for i in indices {
                    self.from_compose.remove(&(color, i));
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
            Step::KeepWarm { new, .. } => {
                if self.traffic.as_ref().is_none_or(|t| t.1 != new) {
                    return Ok(Done::LeftRunning);
                }
            }
            Step::Drain { color, indices, deadline } => {
                let chosen: Vec<u32> = self
                    .selected(color, &indices)
                    .into_iter()
                    .filter(|i| self.replicas[&(color, *i)].running)
                    .collect();
                let open: u32 = chosen.iter().map(|i| self.open.get(&(color, *i)).copied().unwrap_or(0)).sum();
                let (open, waited) = match (self.uncountable, open) {
                    (true, _) => (None, deadline),
                    (false, 0) => (Some(0), Duration::ZERO),
                    (false, n) => (Some(n), deadline),
                };
                return Ok(Done::Drained(Drained::new(color, chosen.len(), open, waited, deadline)));
            }
            Step::Update { image } => self.rolling_digest = Some(image.digest.to_string()),
            Step::Record(verdict) => {
                let kind = verdict.failure.as_ref().map(RunFailure::kind);
                self.verdict = Some((verdict.outcome, kind, verdict.live));
                self.recorded_image = verdict.image.clone();
            }
            Step::Reload
            | Step::Hook { .. }
            | Step::Pull { .. }
            | Step::Verify { .. }
            | Step::Watch { .. }
            | Step::Wait { .. }
            | Step::Revert => {}
        }
        Ok(Done::Done)
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
    run_drained(settings, action, world).map(|_| ())
}

/// Runs `action` in `world` to its end; how its drains ended.
fn run_drained(settings: Settings, action: Action, world: &mut World) -> Result<Vec<Drained>, Refusal> {
    let mut machine = Machine::new(settings, &action, world.observed())?;
    let mut last = Ok(Done::Done);
    while let Some(step) = machine.next(last) {
        last = world.apply(step);
    }
    Ok(machine.drains().to_vec())
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

mod actions;
mod adopt;
mod blue_green;
mod drain;
mod rolling;
