//! What the core is given: the service's settings, and what the interpreter observed before
//! the run.

use std::time::Duration;

use crate::deploy::model::{ComposeSeen, Replica, Traffic, UpdateConfig};
use crate::deploy::spec::{CanaryStep, ServiceSpec, Strategy};

/// What the core reads of the service's configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The compose service.
    pub service: String,
    /// blue-green, canary or rolling.
    pub strategy: Strategy,
    /// Replicas per color.
    pub replicas: u32,
    /// The canary's steps.
    pub canary_steps: Vec<CanaryStep>,
    /// compose's `deploy.update_config`.
    pub update_config: UpdateConfig,
    /// compose's `deploy.rollback_config`.
    pub rollback_config: UpdateConfig,
    /// The longest wait, after replicas leave traffic, for their open connections to end
    /// before they are stopped (the wait ends as soon as none is open).
    pub drain: Duration,
    /// How long the old color stays running after a switch.
    pub keep_warm: Duration,
    /// Stop before the switch and wait for `--continue`.
    pub no_auto_promote: bool,
    /// The target rolls by itself (swarm's own update): no colors, no switch.
    pub rolls_itself: bool,
    /// What the target's replicas are called in messages (`container(s)`).
    pub noun: &'static str,
}

impl Settings {
    /// The settings of `spec`.
    pub fn of(spec: &ServiceSpec, no_auto_promote: bool, rolls_itself: bool, noun: &'static str) -> Self {
        let s = &spec.settings;
        Self {
            service: spec.name.clone(),
            strategy: s.strategy,
            replicas: spec.replicas,
            canary_steps: s.canary_steps.clone(),
            update_config: spec.update_config.clone(),
            rollback_config: spec.rollback_config.clone(),
            drain: s.drain,
            keep_warm: s.keep_warm,
            no_auto_promote,
            rolls_itself,
            noun,
        }
    }
}

/// What the interpreter saw before the run.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The state the traffic switch holds (`None`: never switched, or no switch).
    pub traffic: Option<Traffic>,
    /// The service's replicas as the target reports them.
    pub replicas: Vec<Replica>,
    /// An earlier run died holding the lock.
    pub took_over: bool,
    /// The service's history, oldest first.
    pub history: Vec<Past>,
    /// What a target that rolls by itself runs now (`None`: the service does not exist).
    pub rolling_digest: Option<String>,
    /// The containers compose runs for the service, when imgctl has no traffic state for it or
    /// they are one of its colors (`None`: not looked for, or the target runs none).
    pub compose: Option<ComposeSeen>,
}

/// A run in the history, as far as the core needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Past {
    /// The image (`repo@sha256:...`).
    pub image: String,
    /// Its digest.
    pub digest: String,
    /// It succeeded.
    pub succeeded: bool,
}
