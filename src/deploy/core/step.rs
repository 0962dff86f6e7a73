//! The steps the core hands the interpreter: data, each with the words `--dry-run` prints.

use std::fmt;
use std::time::Duration;

use crate::deploy::color::Color;
use crate::deploy::failure::RunFailure;
use crate::deploy::history::Outcome;
use crate::deploy::hooks::Hook;
use crate::deploy::model::{Phase, PinnedImage};

/// One thing to do.
#[derive(Debug)]
pub enum Step {
    /// Start stopped replicas of `color` (`indices`, or all) again and wait for their health
    /// gate.
    Resume {
        /// The color.
        color: Color,
        /// Which replicas (`None`: every one of the color).
        indices: Option<Vec<u32>>,
    },
    /// Stop replicas of `color` (kept for a rollback) or remove them.
    Retire {
        /// The color.
        color: Color,
        /// Which replicas (`None`: every one of the color).
        indices: Option<Vec<u32>>,
        /// Remove rather than stop.
        remove: bool,
    },
    /// Have the proxy load the switch's state as it is (an earlier run died between writing
    /// and reloading).
    Reload,
    /// Run a hook.
    Hook {
        /// Which.
        hook: Hook,
        /// The run's facts it gets as `IMGCTL_*` variables.
        facts: HookFacts,
    },
    /// Make the image available where replicas will run.
    Pull {
        /// The image.
        image: PinnedImage,
    },
    /// Create and start replicas `indices` of `color` running `image`, then wait for their
    /// health gate; on failure the target removes what it made.
    Start {
        /// The color.
        color: Color,
        /// The image.
        image: PinnedImage,
        /// Which replicas, from 1.
        indices: Vec<u32>,
    },
    /// Send traffic where `route` says.
    Switch {
        /// Where.
        route: Route,
        /// What the history calls this switch (`switch`, `canary 10%`, `switch back`, ...).
        label: String,
        /// It sends traffic to the new version (the first such switch is "the switch" the
        /// report times).
        moves: bool,
    },
    /// Check that the new color answers after the switch (through the proxy, or on each
    /// replica's health path).
    Verify {
        /// The color.
        color: Color,
    },
    /// Watch replicas in traffic for `duration`: the first failed check fails the step.
    Watch {
        /// The color.
        color: Color,
        /// Which replicas (`None`: every one of the color).
        indices: Option<Vec<u32>>,
        /// For how long.
        duration: Duration,
        /// What the history calls it.
        label: String,
    },
    /// Wait until replicas out of traffic have no open connection, or `deadline` passes;
    /// the outcome ([`Done::Drained`]) says how many were still open.
    Drain {
        /// The color.
        color: Color,
        /// Which replicas (`None`: every one of the color).
        indices: Option<Vec<u32>>,
        /// The longest wait.
        deadline: Duration,
    },
    /// Wait (a delay between batches).
    Wait {
        /// What the history calls it.
        label: &'static str,
        /// For how long.
        duration: Duration,
    },
    /// Keep `old` running for `duration` without the lock (so `imgctl rollback` is instant),
    /// then take the lock again; [`Done::LeftRunning`] when another run changed traffic
    /// meanwhile (the old color is then its to decide about).
    KeepWarm {
        /// The color that served before.
        old: Color,
        /// The color that serves now.
        new: Color,
        /// For how long.
        duration: Duration,
    },
    /// A target that rolls by itself: update to `image` and follow the rollout to its end.
    Update {
        /// The image.
        image: PinnedImage,
    },
    /// A target that rolls by itself: its own rollback to the version before, followed.
    Revert,
    /// Append the run to the history: how it ended.
    Record(Box<Verdict>),
}

impl Step {
    /// The step's name in the history and on the terminal.
    pub fn label(&self) -> String {
        match self {
            Self::Resume { color, .. } => format!("start {color}"),
            Self::Retire { color, remove: true, .. } => format!("remove {color}"),
            Self::Retire { color, remove: false, .. } => format!("stop {color}"),
            Self::Reload => "reload".into(),
            Self::Hook { hook, .. } => format!("hook {}", hook.file_name()),
            Self::Pull { image } => format!("pull {}", image.digest),
            Self::Start { color, indices, .. } => format!("start {color} x{}", indices.len()),
            Self::Switch { label, .. } | Self::Watch { label, .. } => label.clone(),
            Self::Verify { .. } => "verify".into(),
            Self::Drain { color, .. } => format!("drain {color}"),
            Self::Wait { label, .. } => (*label).into(),
            Self::KeepWarm { .. } => "keep warm".into(),
            Self::Update { .. } => "update".into(),
            Self::Revert => "rollback".into(),
            Self::Record(_) => "record".into(),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let which = |indices: &Option<Vec<u32>>| match indices {
            None => "all".to_owned(),
            Some(list) => format!("{list:?}"),
        };
        match self {
            Self::Resume { color, indices } => {
                write!(f, "start {color} replicas {} again if stopped, health gate", which(indices))
            }
            Self::Retire { color, indices, remove } => {
                let verb = if *remove { "remove" } else { "stop (kept for a rollback)" };
                write!(f, "{verb} {color} replicas {}", which(indices))
            }
            Self::Reload => f.write_str("reload the proxy with the state as it is (an earlier run died before)"),
            Self::Hook { hook, .. } => write!(f, "hook {} (if it exists)", hook.file_name()),
            Self::Pull { image } => write!(f, "pull {}", image.reference()),
            Self::Start { color, image, indices } => {
                write!(f, "start {color} x{} from {}, then its health gate", indices.len(), image.reference())
            }
            Self::Switch { route, label, .. } => write!(f, "{label}: {route}"),
            Self::Verify { color } => write!(f, "verify {color} answers after the switch"),
            Self::Watch { color, duration, label, .. } => write!(f, "{label}: watch {color} for {duration:?}"),
            Self::Drain { color, indices, deadline } => write!(
                f,
                "drain {color} replicas {}: until their open connections end, at most {deadline:?}",
                which(indices)
            ),
            Self::Wait { label, duration } => write!(f, "{label} {duration:?}"),
            Self::KeepWarm { old, duration, .. } => {
                write!(f, "keep {old} warm {duration:?}, then stop it (kept for imgctl rollback)")
            }
            Self::Update { image } => write!(f, "update to {}, follow the rollout", image.reference()),
            Self::Revert => f.write_str("roll back to the version before, follow the rollout"),
            Self::Record(verdict) => write!(f, "record: {:?}", verdict.outcome),
        }
    }
}

/// How a step that succeeded ended, when the core acts on more than that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// Nothing more to say.
    Done,
    /// A drain ended: what was still open.
    Drained(Drained),
    /// Keep-warm found that another run changed traffic (or holds the lock): the old color
    /// is left running, for that run to decide about.
    LeftRunning,
}

/// How a drain ended: the connections replicas out of traffic still had when the wait
/// ended and they were stopped.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Drained {
    /// The color drained.
    pub color: Color,
    /// How many of its replicas.
    pub replicas: usize,
    /// Connections still open when the wait ended (`None`: they could not be counted).
    pub open: Option<u32>,
    /// Whether connections were still open (so stopping the replicas cuts them, unless they
    /// end within the stop grace period); `None`: unknown.
    pub cut: Option<bool>,
    /// How long the drain waited, in milliseconds.
    pub waited_ms: u64,
    /// Its deadline, in milliseconds.
    pub deadline_ms: u64,
}

impl Drained {
    /// A drain of `replicas` replicas of `color` that ended with `open` connections after
    /// `waited`.
    pub fn new(color: Color, replicas: usize, open: Option<u32>, waited: Duration, deadline: Duration) -> Self {
        Self {
            color,
            replicas,
            open,
            cut: open.map(|n| n > 0),
            waited_ms: waited.as_millis() as u64,
            deadline_ms: deadline.as_millis() as u64,
        }
    }
}

impl fmt::Display for Drained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waited = self.waited_ms as f64 / 1000.0;
        match self.open {
            Some(0) => write!(f, "drained {}: no connection open after {waited:.1}s", self.color),
            Some(n) => write!(
                f,
                "drained {}: {n} connection(s) still open at the deadline ({:.1}s), cut when stopped",
                self.color,
                self.deadline_ms as f64 / 1000.0
            ),
            None => write!(
                f,
                "drained {}: open connections unknown (could not be counted), waited the deadline {waited:.1}s",
                self.color
            ),
        }
    }
}

/// Where traffic goes: the state a switch applies, in terms of colors; the interpreter turns
/// each member into the addresses its replicas have at that moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The color that serves when nothing is in flight.
    pub live: Color,
    /// Its digest.
    pub live_digest: String,
    /// What is in flight.
    pub phase: Phase,
    /// The replicas in traffic.
    pub members: Vec<Member>,
}

impl Route {
    /// The share of traffic on `color`'s members, in percent.
    pub fn percent_on(&self, color: Color) -> u32 {
        let shares: Vec<_> = self.members.iter().filter(|m| m.indices.as_ref().is_none_or(|i| !i.is_empty())).collect();
        if shares.iter().all(|m| m.color == color) {
            return if shares.is_empty() { 0 } else { 100 };
        }
        if !shares.iter().any(|m| m.color == color) {
            return 0;
        }
        match shares.iter().find_map(|m| if let Share::Canary(p) = m.share { Some(p) } else { None }) {
            Some(p) if color != self.live => p,
            Some(p) => 100 - p.min(100),
            // Even shares across colors (a rolling update): by replica count, roughly.
            None => 50,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                let which = match &m.indices {
                    None => format!("{}", m.color),
                    Some(list) => format!("{} {list:?}", m.color),
                };
                match m.share {
                    Share::Even => which,
                    Share::Canary(p) if m.color == self.live => format!("{which} at {}%", 100 - p.min(100)),
                    Share::Canary(p) => format!("{which} at {p}%"),
                }
            })
            .collect();
        write!(f, "traffic to {}", members.join(" + "))
    }
}

/// Replicas of one color in a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The color.
    pub color: Color,
    /// Which of its running replicas (`None`: every one).
    pub indices: Option<Vec<u32>>,
    /// How they share the traffic.
    pub share: Share,
}

/// How a member's replicas are weighted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    /// Every replica alike.
    Even,
    /// A canary: this percentage of requests to the route's non-live color, the rest to the
    /// live one, each replica of a color alike.
    Canary(u32),
}

/// What hooks are told about the run (the interpreter adds the service, the run id and the
/// new replicas' addresses).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookFacts {
    /// The image.
    pub image: String,
    /// Its digest.
    pub digest: String,
    /// The color it runs in.
    pub new_color: Option<Color>,
    /// The color that served before.
    pub old_color: Option<Color>,
    /// The digest that served before.
    pub old_digest: Option<String>,
    /// Why (for on-rollback).
    pub reason: Option<String>,
}

/// How a run ended, as the history records it.
#[derive(Debug)]
pub struct Verdict {
    /// deploy, continue, abort, rollback, repair.
    pub action: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// The image the run put in place (or tried to).
    pub image: String,
    /// Its digest.
    pub digest: String,
    /// Its color.
    pub color: Color,
    /// The color and digest that served before.
    pub previous: Option<(Color, String)>,
    /// Why it paused, was aborted or failed.
    pub reason: Option<String>,
    /// How it failed.
    pub failure: Option<RunFailure>,
    /// Where traffic goes now.
    pub live: Option<Color>,
    /// The compose project whose running containers the run took over as the live color.
    pub adopted: Option<String>,
}

/// What a run starts of the version it puts in place ([`super::Machine::starts`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Starts<'a> {
    /// Nothing new: it goes back to what serves, or changes traffic only.
    Nothing,
    /// This digest, as the history names its image (`repo@sha256:...`, or the digest alone
    /// when no record names it).
    Image {
        /// The image.
        image: &'a str,
        /// Its digest.
        digest: &'a str,
    },
    /// The version before, which the target picks itself (swarm's rollback to its previous
    /// spec): imgctl cannot name it.
    TargetsPrevious,
}
