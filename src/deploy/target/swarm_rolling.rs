//! Swarm's own rolling update: the service `SERVICE` is updated in place, swarm replaces its
//! tasks with the compose `update_config`, and imgctl follows `UpdateStatus` to its end.
//!
//! In a stack (`x-imgctl.stack`) the service is `STACK_SERVICE`, made by `docker stack
//! deploy`: imgctl pins the digest in its live spec and keeps the rest (see `spec::stack`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::swarm::{ServiceTasks, new_tasks, progress, service_spec, services, task_ids};
use super::{RollsItself, TargetError};
use crate::deploy::color::label;
use crate::deploy::docker::{DockerEngine, EngineError, PullAuth};
use crate::deploy::events::Events;
use crate::deploy::model::PinnedImage;
use crate::deploy::spec::ServiceSpec;
use crate::deploy::swarm::{ServiceState, SwarmServiceSpec, converged, failure_reason, wanted_tasks};

/// The label `docker stack deploy` puts on each service of a stack: the stack's name.
const STACK_NAMESPACE: &str = "com.docker.stack.namespace";

/// How a swarm update this run followed failed to converge.
#[derive(Debug, thiserror::Error)]
pub enum UpdateFailure {
    /// Swarm rolled the update back itself (`failure_action: rollback`).
    #[error("swarm rolled the update back (rollback_completed): {why}")]
    RolledBack {
        /// Why its tasks failed.
        why: String,
    },
    /// Swarm paused the update (`failure_action: pause`).
    #[error(
        "swarm paused the update ({state}): {why}; `imgctl rollback {service}` goes back, `docker service update {name}` resumes"
    )]
    Paused {
        /// `paused` or `rollback_paused`.
        state: String,
        /// Why its tasks failed.
        why: String,
        /// The compose service.
        service: String,
        /// The swarm service.
        name: String,
    },
    /// The update ran past `swarm.converge_timeout`.
    #[error("{name} did not converge within {limit:?} ({state}): {why}")]
    NotConverged {
        /// The swarm service.
        name: String,
        /// The limit.
        limit: Duration,
        /// Its update state then.
        state: String,
        /// Why its tasks failed, or the last progress seen.
        why: String,
    },
    /// The service was removed while the update ran.
    #[error("{0} vanished")]
    Vanished(String),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The rolling swarm service of one compose service.
#[derive(Debug)]
pub struct SwarmRolling<'a> {
    engine: DockerEngine,
    spec: &'a ServiceSpec,
    auth: Option<PullAuth>,
}

impl<'a> SwarmRolling<'a> {
    /// The service of `spec` on `engine`.
    pub fn new(engine: DockerEngine, spec: &'a ServiceSpec) -> Self {
        Self { engine, spec, auth: None }
    }

    /// The service and its tasks.
    pub async fn services(&self) -> Result<Vec<ServiceTasks>, TargetError> {
        services(&self.engine, &[self.spec.swarm_service()]).await
    }

    /// Pins `image` in the live spec of the stack's service, which must exist and belong to
    /// the stack (imgctl never creates a service beside `docker stack deploy`).
    async fn pin_in_stack(
        &self,
        stack: &str,
        existing: Option<&ServiceState>,
        spec: &SwarmServiceSpec,
    ) -> Result<(), TargetError> {
        stack_member(stack, &spec.name, existing)?;
        self.engine.pin_image(spec, self.auth.as_ref()).await?;
        Ok(())
    }

    /// Follows `UpdateStatus` until the update ends. `before` is the state the service showed
    /// before this run's change: a terminal state equal to it is the last run's, not ours.
    /// `rolling_back`: success is `rollback_completed` (with `image` empty, any image).
    async fn follow(
        &self,
        image: &str,
        before: Option<String>,
        known: &HashSet<String>,
        rolling_back: bool,
        events: &mut dyn Events,
    ) -> Result<(), UpdateFailure> {
        let name = &self.spec.swarm_service();
        let stacked = self.spec.settings.swarm.stack.is_some();
        let limit = self.spec.settings.swarm.converge_timeout;
        let since = Instant::now();
        let mut ours = false;
        let mut last = String::new();
        loop {
            let service = self.engine.service(name).await?.ok_or_else(|| UpdateFailure::Vanished(name.to_owned()))?;
            let tasks = self.engine.tasks(name).await?;
            let state = service.update.as_ref().map(|u| u.state.clone()).unwrap_or_default();
            let message = service.update.as_ref().map(|u| u.message.clone()).unwrap_or_default();
            ours |= matches!(state.as_str(), "updating" | "rollback_started") || Some(&state) != before.as_ref();
            // A stack's replicas are the stack's (or whoever scaled it since), not the compose
            // file's as imgctl read it.
            let replicas = if stacked { service.replicas } else { u64::from(self.spec.replicas) };
            // A global service's count is its nodes', which swarm's desired tasks tell.
            let global = if stacked { service.global } else { self.spec.global };
            let replicas = wanted_tasks(&tasks, replicas, global);
            let wanted = if image.is_empty() { service.image.clone() } else { image.to_owned() };
            let done = converged(&tasks, &wanted, replicas);
            // Failures of tasks that predate this run's change are an earlier run's.
            let tasks = new_tasks(tasks, known);
            let line = format!(
                "{}: {}",
                if state.is_empty() { "converging" } else { &state },
                progress(&tasks, &wanted, replicas)
            );
            if line != last {
                events.note(&format!("{name} {line}"));
                last = line;
            }
            match (ours, state.as_str()) {
                (true, "completed") if !rolling_back && done => return Ok(()),
                (_, "") if !rolling_back && done => return Ok(()),
                (true, "rollback_completed") if rolling_back && done => return Ok(()),
                (true, "rollback_completed") => {
                    return Err(UpdateFailure::RolledBack { why: failure_reason(&tasks).unwrap_or(message) });
                }
                (true, "paused" | "rollback_paused") => {
                    return Err(UpdateFailure::Paused {
                        state,
                        why: failure_reason(&tasks).unwrap_or(message),
                        service: self.spec.name.clone(),
                        name: name.clone(),
                    });
                }
                _ => {}
            }
            if since.elapsed() >= limit {
                return Err(UpdateFailure::NotConverged {
                    name: name.to_owned(),
                    limit,
                    state,
                    why: failure_reason(&tasks).unwrap_or(last.clone()),
                });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// `existing` is the service `name` of `stack` (`docker stack deploy` labels it so), or
/// [`TargetError::NotInStack`] saying what is there instead.
fn stack_member(stack: &str, name: &str, existing: Option<&ServiceState>) -> Result<(), TargetError> {
    let not_in_stack =
        |found: String| TargetError::NotInStack { stack: stack.to_owned(), name: name.to_owned(), found };
    let service = existing.ok_or_else(|| not_in_stack(String::new()))?;
    match service.labels.get(STACK_NAMESPACE) {
        Some(namespace) if namespace == stack => Ok(()),
        Some(namespace) => Err(not_in_stack(format!(" (a service {name} of stack {namespace} exists)"))),
        None => Err(not_in_stack(format!(" (a service {name} exists outside any stack)"))),
    }
}

impl RollsItself for SwarmRolling<'_> {
    /// For a stack's service, also checks that the stack has it: a run that would only fail at
    /// its update is refused before it starts (nothing recorded, nothing changed).
    async fn current(&self) -> Result<Option<String>, TargetError> {
        let name = self.spec.swarm_service();
        let service = self.engine.service(&name).await?;
        if let Some(stack) = &self.spec.settings.swarm.stack {
            stack_member(stack, &name, service.as_ref())?;
        }
        Ok(service.map(|s| s.labels.get(label::DIGEST).cloned().unwrap_or_default()))
    }

    async fn prepare(&mut self, _image: &PinnedImage, auth: PullAuth) -> Result<(), TargetError> {
        // An external secret or config that is missing stops the run before anything changes.
        self.engine.externals(&self.spec.workload.files).await?;
        // Each node pulls for its tasks, with the credential passed along.
        self.auth = Some(auth);
        Ok(())
    }

    /// Exit 0 only when it converged on the new digest; a rollback by swarm is a failed deploy.
    async fn update(
        &mut self,
        image: &PinnedImage,
        deploy_id: &str,
        events: &mut dyn Events,
    ) -> Result<(), TargetError> {
        let name = &self.spec.swarm_service();
        let spec = service_spec(self.spec, name, image, deploy_id, None);
        let since = Instant::now();
        let existing = self.engine.service(name).await?;
        let before = existing.as_ref().and_then(|s| s.update.clone());
        let known = task_ids(&self.engine, name).await;
        match (&self.spec.settings.swarm.stack, &existing) {
            (Some(stack), _) => self.pin_in_stack(stack, existing.as_ref(), &spec).await?,
            (None, Some(service)) => {
                self.engine.update_service(&spec, service.version, self.auth.as_ref()).await.map(|_| ())?
            }
            (None, None) => self.engine.create_service(&spec, self.auth.as_ref()).await.map(|_| ())?,
        }
        let what = if existing.is_some() { "service update" } else { "service create" };
        events.step(what, since.elapsed());
        self.follow(&spec.image, before.map(|u| u.state), &known, false, events).await?;
        // A stack's service has no objects of imgctl's (it keeps the stack's), and its
        // compose name may be another service's of imgctl's own: nothing to prune.
        if self.spec.settings.swarm.stack.is_none() {
            super::swarm::prune_files(&self.engine, &self.spec.name, events).await;
        }
        Ok(())
    }

    /// swarm's `rollback=previous`, followed.
    async fn revert(&mut self, events: &mut dyn Events) -> Result<(), TargetError> {
        let name = &self.spec.swarm_service();
        let service = self.engine.service(name).await?.ok_or_else(|| TargetError::Gone(name.clone()))?;
        let before = service.update.clone().map(|u| u.state);
        let known = task_ids(&self.engine, name).await;
        let since = Instant::now();
        self.engine.rollback_service(name).await?;
        events.step("service rollback", since.elapsed());
        Ok(self.follow("", before, &known, true, events).await?)
    }

    fn describe_update(&self, image: &PinnedImage) -> String {
        if let Some(stack) = &self.spec.settings.swarm.stack {
            return format!(
                "pin {} in the live spec of swarm service {} of stack {stack} (registry auth passed along); the stack's labels, networks, secrets, configs, replicas and update_config are kept; follow UpdateStatus until completed (rollback_completed is a failed deploy), within {:?}",
                image.reference(),
                self.spec.swarm_service(),
                self.spec.settings.swarm.converge_timeout
            );
        }
        let c = &self.spec.update_config;
        let replicas = if self.spec.global { "on every node".to_owned() } else { format!("x{}", self.spec.replicas) };
        format!(
            "update swarm service {} to {} {replicas} (registry auth passed along); swarm replaces tasks in batches of {}, {:?}, delay {:?}, monitor {:?}, failure_action {:?}, max_failure_ratio {}; follow UpdateStatus until completed (rollback_completed is a failed deploy), within {:?}",
            self.spec.name,
            image.reference(),
            c.parallelism,
            c.order,
            c.delay,
            c.monitor,
            c.failure_action,
            c.max_failure_ratio,
            self.spec.settings.swarm.converge_timeout
        )
    }
}
