//! Where replicas run. A [`Target`] runs colors the core moves traffic between: a Docker
//! Engine host ([`engine`]: containers), or Docker Swarm ([`swarm`]: one service per color).
//! A target that rolls by itself ([`RollsItself`]: swarm's own rolling update, a Kubernetes
//! Deployment later) updates in place and follows its rollout; it never fakes colors.
//!
//! This module, and the compose parser, are the only places that know which kind a service
//! uses: [`open`] picks it. Adding a kind is one module here, its arm in [`AnyTarget`] or
//! [`AnyRolling`], and its line in [`open`].

mod adopt;
mod connections;
pub mod engine;
pub mod swarm;
pub mod swarm_rolling;

use std::time::Duration;

use super::color::Color;
use super::docker::{DockerEngine, EngineError, PullAuth};
use super::events::Events;
use super::health::HealthError;
use super::model::{ComposeSeen, PinnedImage, Replica};
use super::spec::{ServiceSpec, Strategy, Target as Kind};

pub use swarm_rolling::UpdateFailure;

/// A target failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A replica could not be created or started.
    #[error("starting {replica}: {source}")]
    Start {
        /// The replica.
        replica: String,
        /// Why.
        source: EngineError,
    },
    /// A replica did not pass its health gate.
    #[error("health check failed: {0}")]
    Health(#[from] HealthError),
    /// A color's tasks did not all run the image in time.
    #[error("health check failed: {name} did not converge within {limit:?}: {why}")]
    NotConverged {
        /// The swarm service.
        name: String,
        /// The limit.
        limit: Duration,
        /// Why its tasks failed, or the last progress seen.
        why: String,
    },
    /// `x-imgctl.host_ports` has no port left for a new replica.
    #[error(
        "x-imgctl.host_ports {range}: no free port for {replica} (the others are held by the service's containers, running or stopped, or by other processes): widen the range"
    )]
    NoFreePort {
        /// The range.
        range: crate::deploy::spec::PortRange,
        /// The replica that needs one.
        replica: String,
    },
    /// A replica in traffic stopped running.
    #[error("{0} stopped running")]
    Stopped(String),
    /// A replica in traffic answered its health path with an error.
    #[error("{replica} answered {status} on {path}")]
    Answered {
        /// The replica.
        replica: String,
        /// The health path.
        path: String,
        /// The HTTP status.
        status: u16,
    },
    /// A replica in traffic could not be probed.
    #[error("{replica}: {detail}")]
    Probe {
        /// The replica.
        replica: String,
        /// What the probe met.
        detail: String,
    },
    /// A swarm color does not run all its tasks.
    #[error("{name}: {why}")]
    TasksDown {
        /// The swarm service.
        name: String,
        /// Why its tasks failed.
        why: String,
    },
    /// Something the run relies on disappeared.
    #[error("{0} is gone")]
    Gone(String),
    /// An update of a target that rolls by itself did not finish.
    #[error(transparent)]
    Update(#[from] UpdateFailure),
    /// `x-imgctl.stack` names a stack without this service: imgctl updates a stack's
    /// service, it never creates one beside `docker stack deploy`.
    #[error(
        "stack {stack} has no service {name}: `docker stack deploy -c FILE {stack}` creates it, then imgctl pins its digest{found}"
    )]
    NotInStack {
        /// The stack.
        stack: String,
        /// The swarm service looked for (`STACK_SERVICE`).
        name: String,
        /// What was found instead (a service of that name outside the stack), or nothing.
        found: String,
    },
    /// The service uses swarm and this engine is not part of one.
    #[error(
        "x-imgctl.target is swarm, but this Docker Engine is not part of a swarm (docker swarm init, or point DOCKER_HOST at a manager)"
    )]
    NotASwarm,
}

/// Replicas a start or resume brought up, and the time their health gate took.
#[derive(Debug)]
pub struct Started {
    /// The replicas, healthy.
    pub replicas: Vec<Replica>,
    /// The time spent waiting for health (not part of "time to traffic").
    pub gate: Duration,
}

/// A place that runs colors of replicas.
///
/// Dispatch is static, through [`AnyTarget`]; the futures need not be `Send` (a run is driven
/// on one task).
#[allow(async_fn_in_trait)]
pub trait Target {
    /// The service's replicas now.
    async fn observe(&self) -> Result<Vec<Replica>, TargetError>;
    /// Makes `image` available where replicas will start (the Engine pulls it; swarm nodes
    /// pull for their tasks, with `auth` passed along). `true` when it pulled.
    async fn prepare(
        &mut self,
        image: &PinnedImage,
        auth: PullAuth,
        events: &mut dyn Events,
    ) -> Result<bool, TargetError>;
    /// Creates and starts replicas `indices` of `color` running `image`, labelled with
    /// `deploy_id`, and waits for their health gate. On failure what it made is removed.
    async fn start(
        &mut self,
        color: Color,
        image: &PinnedImage,
        indices: &[u32],
        deploy_id: &str,
        events: &mut dyn Events,
    ) -> Result<Started, TargetError>;
    /// Starts `replicas` again where stopped and waits for their health gate.
    async fn resume(&mut self, replicas: &[Replica], events: &mut dyn Events) -> Result<Started, TargetError>;
    /// Stops a replica (kept for a rollback) or removes it.
    async fn retire(&self, replica: &Replica, remove: bool) -> Result<(), TargetError>;
    /// Whether a replica in traffic still runs and answers.
    async fn check(&self, replica: &Replica) -> Result<(), TargetError>;
    /// The TCP connections open to a replica's service port, as counted where it runs
    /// (`None`: they cannot be counted from here; a drain then waits its whole deadline).
    async fn open_connections(&self, replica: &Replica) -> Option<u32>;
    /// The containers compose runs for the service, to take over as the live color (`None`:
    /// the target has none; only the Engine runs compose's containers).
    async fn compose(&self) -> Result<Option<ComposeSeen>, TargetError> {
        Ok(None)
    }
    /// The address a switch sends a replica's traffic to (`None`: it has none to give).
    fn address(&self, replica: &Replica) -> Option<String>;
    /// Where each new replica answers its health path after a switch (`None`: not reachable
    /// from here; the check through the proxy covers it).
    fn probe_address(&self, replica: &Replica) -> Option<String>;
    /// What retiring is called here (`stop`, `scale to 0`).
    fn stop_verb(&self) -> &'static str;
    /// What its replicas are called in messages (`container(s)`, `color service(s)`).
    fn noun(&self) -> &'static str;
}

/// A place that replaces a service's replicas itself and reports how it went.
#[allow(async_fn_in_trait)]
pub trait RollsItself {
    /// The digest the service runs now (`None`: it does not exist).
    async fn current(&self) -> Result<Option<String>, TargetError>;
    /// Makes `image` available to the nodes that will pull it.
    async fn prepare(&mut self, image: &PinnedImage, auth: PullAuth) -> Result<(), TargetError>;
    /// Updates the service to `image` and follows the rollout to its end.
    async fn update(
        &mut self,
        image: &PinnedImage,
        deploy_id: &str,
        events: &mut dyn Events,
    ) -> Result<(), TargetError>;
    /// The target's own rollback to the version before, followed to its end.
    async fn revert(&mut self, events: &mut dyn Events) -> Result<(), TargetError>;
    /// What an update does, in words (`--dry-run`).
    fn describe_update(&self, image: &PinnedImage) -> String;
}

/// A target of colors, dispatched like `credential::backend::AnyStore`.
#[derive(Debug)]
pub enum AnyTarget<'a> {
    /// Containers on one Docker Engine.
    Engine(engine::Engine<'a>),
    /// One swarm service per color.
    Swarm(swarm::SwarmColors<'a>),
}

/// A target that rolls by itself.
#[derive(Debug)]
pub enum AnyRolling<'a> {
    /// Swarm's own rolling update of one service.
    Swarm(swarm_rolling::SwarmRolling<'a>),
}

/// Where a service's replicas run.
#[derive(Debug)]
pub enum Placement<'a> {
    /// Colors the core switches traffic between.
    Colors(AnyTarget<'a>),
    /// A service that is updated in place.
    RollsItself(AnyRolling<'a>),
}

impl Placement<'_> {
    /// Whether the target rolls by itself.
    pub fn rolls_itself(&self) -> bool {
        matches!(self, Self::RollsItself(_))
    }

    /// What its replicas are called in messages.
    pub fn noun(&self) -> &'static str {
        match self {
            Self::Colors(target) => target.noun(),
            Self::RollsItself(_) => "service(s)",
        }
    }
}

/// Whether `spec`'s target rolls by itself.
pub fn rolls_itself(spec: &ServiceSpec) -> bool {
    spec.settings.target == Kind::Swarm && spec.settings.strategy == Strategy::Rolling
}

/// Connects to where `spec`'s replicas run.
pub async fn open(spec: &ServiceSpec) -> Result<Placement<'_>, TargetError> {
    let engine = DockerEngine::connect().await?;
    match spec.settings.target {
        Kind::Engine => Ok(Placement::Colors(AnyTarget::Engine(engine::Engine::new(engine, spec)))),
        Kind::Swarm => {
            if !engine.swarm_active().await? {
                return Err(TargetError::NotASwarm);
            }
            Ok(if rolls_itself(spec) {
                Placement::RollsItself(AnyRolling::Swarm(swarm_rolling::SwarmRolling::new(engine, spec)))
            } else {
                Placement::Colors(AnyTarget::Swarm(swarm::SwarmColors::new(engine, spec)))
            })
        }
    }
}

/// What runs for `spec`'s service (`imgctl status`).
#[derive(Debug, Default)]
pub struct Inventory {
    /// Its replicas, each with the address a switch should use for it now.
    pub replicas: Vec<(Replica, Option<String>)>,
    /// On swarm: its services and their tasks.
    pub services: Vec<swarm::ServiceTasks>,
}

/// The replicas of `spec`'s service and, on swarm, its services and their tasks.
pub async fn inventory(spec: &ServiceSpec) -> Result<Inventory, TargetError> {
    match open(spec).await? {
        Placement::Colors(target) => {
            let replicas =
                target.observe().await?.into_iter().map(|r| (target.address(&r), r)).map(|(a, r)| (r, a)).collect();
            let services = match &target {
                AnyTarget::Swarm(colors) => colors.services().await?,
                AnyTarget::Engine(_) => Vec::new(),
            };
            Ok(Inventory { replicas, services })
        }
        Placement::RollsItself(AnyRolling::Swarm(rolling)) => {
            Ok(Inventory { replicas: Vec::new(), services: rolling.services().await? })
        }
    }
}

macro_rules! each {
    ($self:ident, $t:ident => $body:expr) => {
        match $self {
            AnyTarget::Engine($t) => $body,
            AnyTarget::Swarm($t) => $body,
        }
    };
}

impl Target for AnyTarget<'_> {
    async fn observe(&self) -> Result<Vec<Replica>, TargetError> {
        each!(self, t => t.observe().await)
    }
    async fn prepare(
        &mut self,
        image: &PinnedImage,
        auth: PullAuth,
        events: &mut dyn Events,
    ) -> Result<bool, TargetError> {
        each!(self, t => t.prepare(image, auth, events).await)
    }
    async fn start(
        &mut self,
        color: Color,
        image: &PinnedImage,
        indices: &[u32],
        deploy_id: &str,
        events: &mut dyn Events,
    ) -> Result<Started, TargetError> {
        each!(self, t => t.start(color, image, indices, deploy_id, events).await)
    }
    async fn resume(&mut self, replicas: &[Replica], events: &mut dyn Events) -> Result<Started, TargetError> {
        each!(self, t => t.resume(replicas, events).await)
    }
    async fn retire(&self, replica: &Replica, remove: bool) -> Result<(), TargetError> {
        each!(self, t => t.retire(replica, remove).await)
    }
    async fn check(&self, replica: &Replica) -> Result<(), TargetError> {
        each!(self, t => t.check(replica).await)
    }
    async fn open_connections(&self, replica: &Replica) -> Option<u32> {
        each!(self, t => t.open_connections(replica).await)
    }
    async fn compose(&self) -> Result<Option<ComposeSeen>, TargetError> {
        each!(self, t => t.compose().await)
    }
    fn address(&self, replica: &Replica) -> Option<String> {
        each!(self, t => t.address(replica))
    }
    fn probe_address(&self, replica: &Replica) -> Option<String> {
        each!(self, t => t.probe_address(replica))
    }
    fn stop_verb(&self) -> &'static str {
        each!(self, t => t.stop_verb())
    }
    fn noun(&self) -> &'static str {
        each!(self, t => t.noun())
    }
}

impl RollsItself for AnyRolling<'_> {
    async fn current(&self) -> Result<Option<String>, TargetError> {
        let Self::Swarm(t) = self;
        t.current().await
    }
    async fn prepare(&mut self, image: &PinnedImage, auth: PullAuth) -> Result<(), TargetError> {
        let Self::Swarm(t) = self;
        t.prepare(image, auth).await
    }
    async fn update(
        &mut self,
        image: &PinnedImage,
        deploy_id: &str,
        events: &mut dyn Events,
    ) -> Result<(), TargetError> {
        let Self::Swarm(t) = self;
        t.update(image, deploy_id, events).await
    }
    async fn revert(&mut self, events: &mut dyn Events) -> Result<(), TargetError> {
        let Self::Swarm(t) = self;
        t.revert(events).await
    }
    fn describe_update(&self, image: &PinnedImage) -> String {
        let Self::Swarm(t) = self;
        t.describe_update(image)
    }
}
