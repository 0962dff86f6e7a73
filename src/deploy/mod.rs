//! `imgctl deploy`: a pinned digest onto a Docker Engine host behind nginx, blue/green
//! (default), canary or rolling, with a health gate, lifecycle hooks, a per-service lock, a
//! history, and a way back.
//!
//! - [`model`]: the shared nouns (replicas, traffic and its phase, update settings), no I/O.
//! - [`spec`]: the compose service and its `x-imgctl` block; [`compose`] reads compose's fields;
//!   [`names`]: the values that reach nginx's configuration.
//! - [`docker`]: the Docker Engine target (bollard).
//! - [`nginx`]: the traffic switch, and the deploy state kept in the upstream file.
//! - [`health`], [`hooks`], [`lock`], [`history`]: the gate, the hooks, one run at a time, the record;
//!   [`child_env`]: the environment of the programs a deploy runs.
//! - [`plan`]: pure decisions (reconcile, batches, failure ratio), tested with tables.
//! - [`strategy`] runs a deploy (blue/green, canary, continue, abort, rollback; the rolling
//!   update in `rolling`) in the context of [`run`]; [`status`] reads without changing.

pub mod child_env;
pub mod color;
pub mod compose;
pub mod docker;
pub mod health;
pub mod history;
pub mod hooks;
pub mod lock;
pub mod model;
pub mod names;
pub mod nginx;
pub mod plan;
mod rolling;
pub mod run;
pub mod spec;
pub mod status;
pub mod strategy;
pub mod swarm;
mod swarm_target;

pub use color::Color;
pub use run::{Action, DeployError, Events, Options, PinnedImage, Report};
pub use spec::ServiceSpec;
pub use strategy::execute;
