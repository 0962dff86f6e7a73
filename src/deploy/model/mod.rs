//! The nouns the flows, the targets and the switches share, with no I/O: what a replica runs,
//! a replica, where traffic goes, how replicas are replaced. Adapters (the bollard engine,
//! nginx, the compose reader) import them from here, so no adapter owns what the others speak
//! of.

mod compose;
mod image;
mod mounts;
mod replica;
mod runtime;
mod traffic;
mod update;
mod workload;

pub use compose::{ADOPTED, ComposeContainer, ComposeSeen};
pub use image::PinnedImage;
pub use mounts::{Content, FileKind, FileMount, FileSource};
pub use replica::{ContainerState, Health, Replica, Source};
pub use runtime::{Device, EngineOnly, ExtraHost, Logging, Refusal, Resources, Runtime, Tmpfs, Ulimit};
pub use traffic::{Phase, Server, Traffic, canary_weights};
pub use update::{FailureAction, Order, UpdateConfig};
pub use workload::{Healthcheck, Workload};
