//! How replicas are replaced in batches: compose's `deploy.update_config` and
//! `deploy.rollback_config`, as the rolling flow and swarm's own update both read them.

use std::time::Duration;

use serde::Deserialize;

/// What to do when a rolling batch fails (compose `failure_action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    /// Stop the update where it is (traffic stays on what is healthy).
    #[default]
    Pause,
    /// Count the failure and go on with the next batch.
    Continue,
    /// Put every replica back on the previous version.
    Rollback,
}

/// Whether a replaced replica stops before or after its successor starts (compose `order`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Take the old replica out of traffic and stop it, then start the new one.
    #[default]
    StopFirst,
    /// Start the new replica, put it in traffic, then stop the old one.
    StartFirst,
}

/// compose `deploy.update_config` / `deploy.rollback_config`, with swarm's defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct UpdateConfig {
    /// Replicas replaced at once (0 means all).
    pub parallelism: u32,
    /// Wait between batches.
    pub delay: Duration,
    /// How long a replaced batch is watched for failure.
    pub monitor: Duration,
    /// What a failed batch leads to.
    pub failure_action: FailureAction,
    /// Stop-first or start-first.
    pub order: Order,
    /// The share of replicas that may fail before `failure_action` applies.
    pub max_failure_ratio: f64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            parallelism: 1,
            delay: Duration::ZERO,
            monitor: Duration::from_secs(5),
            failure_action: FailureAction::Pause,
            order: Order::StopFirst,
            max_failure_ratio: 0.0,
        }
    }
}
