//! `imgctl deploy`: a pinned digest onto a Docker Engine host or Docker Swarm behind a proxy,
//! blue/green (default), canary or rolling, with a health gate, lifecycle hooks, a per-service
//! lock, a history, and a way back.
//!
//! - [`model`]: the shared nouns (what a replica runs, replicas, traffic and its phase, pinned
//!   images), no I/O.
//! - [`config`]: compose files loaded as compose loads them (several `-f`, `.env`, `${VAR}`,
//!   `extends`, `env_file`, merge rules), every key applied, noted or refused; [`spec`]: the
//!   loaded service as a workload and its `x-imgctl` settings; [`compose`] reads compose's
//!   fields; [`names`]: the values that reach the proxy's configuration.
//! - [`core`]: the pure state machine of a run: from what is observed and what is asked, the
//!   next step given how the last one ended. [`run`] is its interpreter.
//! - [`target`]: where replicas run (the Engine, swarm colors, swarm's own rolling update);
//!   [`docker`] and [`swarm`] are the bollard adapters under it.
//! - [`switch`]: where requests go ([`nginx`] today).
//! - [`failure`]: typed step and run failures; [`events`]: what a run tells its watcher.
//! - [`health`], [`hooks`], [`lock`], [`history`]: the gate, the hooks, one run at a time, the
//!   record; [`admission`]: the signature policy in front of what a rollback starts; [`child_env`]: the environment of the programs a deploy runs.
//! - [`plan`]: pure decisions (reconcile, batches, failure ratio), tested with tables;
//!   [`status`] reads without changing.

pub mod admission;
pub mod child_env;
pub mod color;
pub mod compose;
pub mod config;
pub mod core;
pub mod docker;
pub mod events;
pub mod failure;
pub mod health;
pub mod history;
pub mod hooks;
pub mod lock;
pub mod model;
pub mod names;
pub mod nginx;
pub mod plan;
pub mod run;
pub mod spec;
pub mod status;
pub mod swarm;
pub mod switch;
pub mod target;

pub use self::core::Action;
pub use color::Color;
pub use events::Events;
pub use failure::{RunFailure, StepError};
pub use model::PinnedImage;
pub use run::{DeployError, Options, Report, execute, preview};
pub use spec::ServiceSpec;
