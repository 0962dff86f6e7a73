//! How a step of a run fails ([`StepError`]) and how a run that started ended when it failed
//! ([`RunFailure`]): what failed, and where traffic is now. The binary maps them to exit codes;
//! the history keeps their text. No decision anywhere reads that text.

use super::color::Color;
use super::hooks::HookError;
use super::switch::SwitchError;
use super::target::TargetError;

/// One step of a run failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A hook exited non-zero, timed out or could not start.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The place that runs the replicas failed (pull, start, health gate, a watch).
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The traffic switch failed; it left traffic where it was.
    #[error(transparent)]
    Switch(#[from] SwitchError),
    /// The new version did not answer through the proxy (or on its health path) after the
    /// switch.
    #[error("verify after the switch failed: {0}")]
    Verify(String),
    /// A rolling update's failures passed `max_failure_ratio` with `failure_action: rollback`.
    #[error("{failed} of {total} replicas failed (failure_action rollback)")]
    TooManyFailed {
        /// Replicas that failed their gate or their monitor.
        failed: u32,
        /// Replicas of the service.
        total: u32,
    },
    /// On the way back no replica of the old color could be started.
    #[error("no {color} replica could be started again")]
    NothingCameBack {
        /// The old color.
        color: Color,
    },
    /// The registry credential for the pull could not be read.
    #[error("reading the registry credential for {registry}: {source}")]
    Credentials {
        /// The registry.
        registry: String,
        /// Why.
        source: crate::registry::credentials::ResolveError,
    },
    /// A failure the core's tests inject.
    #[cfg(test)]
    #[error("{0}")]
    Injected(&'static str),
}

impl StepError {
    /// Whether the target undid the change itself (swarm's own rollback of a failed update).
    pub fn rolled_back_by_target(&self) -> bool {
        matches!(self, Self::Target(TargetError::Update(super::target::UpdateFailure::RolledBack { .. })))
    }
}

/// A run that started and failed: where traffic is now, and why.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    /// A step before the switch failed: traffic never left the old version, and what the
    /// run had started of the new one is removed.
    #[error("{cause}; traffic never left the old version")]
    BeforeSwitch {
        /// The step.
        step: String,
        /// Why.
        cause: StepError,
    },
    /// A step after traffic moved failed: traffic went back to `to` first.
    #[error("{cause}; traffic is back on {to}")]
    SwitchedBack {
        /// The step.
        step: String,
        /// Why.
        cause: StepError,
        /// The color that serves again.
        to: Color,
    },
    /// Traffic moved, a step failed, and moving it back failed too: a person must look.
    #[error("{cause}; switching back failed too ({back}): traffic is still on {on}")]
    SwitchBackFailed {
        /// The step.
        step: String,
        /// Why the run failed.
        cause: StepError,
        /// Why switching back failed.
        back: StepError,
        /// Where traffic is.
        on: Color,
    },
    /// The first deploy of a service failed after its switch: there is no other version, so
    /// the new one keeps the traffic.
    #[error("{cause}; this was the first deploy, so {on} keeps the traffic")]
    FirstDeploy {
        /// The step.
        step: String,
        /// Why.
        cause: StepError,
        /// The color that serves.
        on: Color,
    },
    /// `--abort` could not put traffic back on the stable color.
    #[error("{cause}: traffic could not be put back on the stable color, {on} still serves")]
    NotRestored {
        /// The step.
        step: String,
        /// Why.
        cause: StepError,
        /// The color still in traffic.
        on: Color,
    },
    /// A target that rolls by itself did not finish the update (swarm rolled it back, paused
    /// it, or it did not converge); traffic is wherever the target left it.
    #[error("{cause}")]
    Update {
        /// The step.
        step: String,
        /// Why.
        cause: StepError,
    },
}

impl RunFailure {
    /// The step that failed.
    pub fn step(&self) -> &str {
        match self {
            Self::BeforeSwitch { step, .. }
            | Self::SwitchedBack { step, .. }
            | Self::SwitchBackFailed { step, .. }
            | Self::FirstDeploy { step, .. }
            | Self::NotRestored { step, .. }
            | Self::Update { step, .. } => step,
        }
    }

    /// A short name for `--output json`: `before-switch`, `switched-back`,
    /// `switch-back-failed`, `first-deploy` or `update`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BeforeSwitch { .. } => "before-switch",
            Self::SwitchedBack { .. } => "switched-back",
            Self::SwitchBackFailed { .. } => "switch-back-failed",
            Self::FirstDeploy { .. } => "first-deploy",
            Self::NotRestored { .. } => "not-restored",
            Self::Update { .. } => "update",
        }
    }

    /// Whether a person must look: traffic is on a version that failed a check.
    pub fn needs_a_person(&self) -> bool {
        matches!(self, Self::SwitchBackFailed { .. } | Self::NotRestored { .. })
    }
}
