//! A run on Docker Swarm.
//!
//! Blue/green and canary: each color is one service, `SERVICE-blue` or `SERVICE-green`, on the
//! overlay network nginx shares with it; nginx reaches a color as `tasks.SERVICE-color` (the
//! tasks' own addresses: a VIP needs IPVS in the host's kernel), resolved when nginx reloads,
//! so a color is one upstream line however many tasks it has. The flows of
//! [`super::strategy`] run unchanged: a color service plays the part a container plays on a
//! single engine (built, scaled to zero when retired, removed when orphaned).
//!
//! Rolling: the service `SERVICE` is updated in place and swarm replaces its tasks with the
//! compose `update_config`; imgctl follows `UpdateStatus` to its end.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::color::{Color, label};
use super::docker::{DockerEngine, EngineError};
use super::history::Outcome;
use super::hooks::Hook;
use super::model::{ContainerState, Health, Replica};
use super::run::{DeployError, Report, Run};
use super::spec::ServiceSpec;
use super::strategy::{Start, end, failed};
use super::swarm::{ServiceState, SwarmServiceSpec, TaskInfo, converged, failure_reason};

/// How a swarm update this run followed failed to converge.
#[derive(Debug, thiserror::Error)]
pub(super) enum UpdateFailure {
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

/// The service of `color`.
pub fn color_service(spec: &ServiceSpec, color: Color) -> String {
    format!("{}-{color}", spec.name)
}

/// The color services that exist, each as one replica (`state` running when it has tasks).
pub async fn color_replicas(engine: &DockerEngine, spec: &ServiceSpec) -> Result<Vec<Replica>, EngineError> {
    let mut replicas = Vec::new();
    for color in [Color::Blue, Color::Green] {
        if let Some(service) = engine.service(&color_service(spec, color)).await? {
            replicas.push(as_replica(&service, color));
        }
    }
    Ok(replicas)
}

fn as_replica(service: &ServiceState, color: Color) -> Replica {
    Replica {
        id: service.name.clone(),
        name: service.name.clone(),
        color,
        digest: service.labels.get(label::DIGEST).cloned().unwrap_or_default(),
        deploy_id: service.labels.get(label::DEPLOY_ID).cloned().unwrap_or_default(),
        index: 1,
        state: if service.replicas > 0 { ContainerState::Running } else { ContainerState::Exited },
        health: Health::None,
        addr: None,
        created: String::new(),
    }
}

/// The swarm service spec for `name` running `image`.
pub fn service_spec(
    run: &Run<'_>,
    name: &str,
    image: &str,
    digest: &str,
    color: Option<Color>,
    replicas: u64,
) -> SwarmServiceSpec {
    let spec = run.spec;
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(label::SERVICE.into(), spec.name.clone());
    labels.insert(label::DIGEST.into(), digest.into());
    labels.insert(label::DEPLOY_ID.into(), run.id.clone());
    if let Some(color) = color {
        labels.insert(label::COLOR.into(), color.as_str().into());
    }
    let mut networks = spec.networks.clone();
    if let Some(network) = spec.settings.swarm.network.as_ref().filter(|n| !networks.contains(n)) {
        networks.push(network.clone());
    }
    SwarmServiceSpec {
        name: name.into(),
        image: image.into(),
        container_labels: labels.clone(),
        labels,
        env: spec.environment.clone(),
        entrypoint: spec.entrypoint.clone(),
        command: spec.command.clone(),
        working_dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        healthcheck: spec.healthcheck.clone(),
        stop_signal: spec.stop_signal.clone(),
        stop_grace: Some(spec.settings.stop_grace),
        replicas,
        networks,
        update_config: spec.update_config.clone(),
        rollback_config: spec.rollback_config.clone(),
    }
}

/// Creates or updates the service of `color` with `image` at full scale and waits until its
/// tasks run it (swarm starts a task's traffic only once its healthcheck passes). On failure
/// the color's service is removed.
pub async fn build_color(run: &mut Run<'_>, color: Color, image: &str, digest: &str) -> Result<Vec<Replica>, String> {
    let name = color_service(run.spec, color);
    let since = Instant::now();
    let spec = service_spec(run, &name, image, digest, Some(color), u64::from(run.spec.replicas));
    let auth = run.auth.clone();
    let known = task_ids(run, &name).await;
    let applied = match run.engine.service(&name).await.map_err(|e| e.to_string())? {
        Some(existing) => run.engine.update_service(&spec, existing.version, auth.as_ref()).await.map(|_| ()),
        None => run.engine.create_service(&spec, auth.as_ref()).await.map(|_| ()),
    };
    if let Err(e) = applied {
        let _ = run.engine.remove_service(&name).await;
        return Err(format!("starting {name}: {e}"));
    }
    let deadline = run.spec.settings.health.deadline;
    let result = wait_converged(run, &name, image, u64::from(run.spec.replicas), deadline, &known).await;
    run.record(format!("start {name} x{}", run.spec.replicas), since);
    match result {
        Ok(()) => {
            let service =
                run.engine.service(&name).await.map_err(|e| e.to_string())?.ok_or(format!("{name} vanished"))?;
            Ok(vec![as_replica(&service, color)])
        }
        Err(reason) => {
            let _ = run.engine.remove_service(&name).await;
            Err(format!("health check failed: {reason}"))
        }
    }
}

/// The service `name`, which must exist.
async fn existing(run: &Run<'_>, name: &str) -> Result<ServiceState, String> {
    run.engine.service(name).await.map_err(|e| e.to_string())?.ok_or(format!("{name} is gone"))
}

/// Scales the color services in `replicas` to the compose replica count and waits for them.
pub async fn restart(run: &mut Run<'_>, replicas: &[Replica]) -> Result<Vec<Replica>, String> {
    let since = Instant::now();
    let count = u64::from(run.spec.replicas);
    let mut back = Vec::new();
    for replica in replicas {
        let service = existing(run, &replica.name).await?;
        let known = task_ids(run, &replica.name).await;
        if service.replicas != count {
            run.engine.scale_service(&replica.name, count).await.map_err(|e| e.to_string())?;
        }
        let deadline = run.spec.settings.health.deadline;
        wait_converged(run, &replica.name, &service.image, count, deadline, &known).await?;
        back.push(Replica { state: ContainerState::Running, ..replica.clone() });
    }
    run.record(format!("scale up x{}", replicas.len()), since);
    Ok(back)
}

/// Scales the color services to zero (kept for a rollback) or removes them.
pub async fn retire(run: &Run<'_>, replica: &Replica, remove: bool) -> Result<(), EngineError> {
    if remove {
        run.engine.remove_service(&replica.name).await
    } else {
        run.engine.scale_service(&replica.name, 0).await
    }
}

/// Whether the color service still runs all its tasks (a canary pause watches this).
pub async fn check(run: &Run<'_>, replica: &Replica) -> Result<(), String> {
    let service = existing(run, &replica.name).await?;
    let tasks = run.engine.tasks(&replica.name).await.map_err(|e| e.to_string())?;
    if converged(&tasks, &service.image, service.replicas) {
        Ok(())
    } else {
        Err(failure_reason(&tasks).unwrap_or_else(|| format!("{} is not running all its tasks", replica.name)))
    }
}

/// Polls until the service runs `replicas` tasks of `image`, or `limit` passes or a task fails
/// while none runs the image.
async fn wait_converged(
    run: &mut Run<'_>,
    name: &str,
    image: &str,
    replicas: u64,
    limit: Duration,
    known: &HashSet<String>,
) -> Result<(), String> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let tasks = run.engine.tasks(name).await.map_err(|e| e.to_string())?;
        if converged(&tasks, image, replicas) {
            return Ok(());
        }
        let tasks = new_tasks(tasks, known);
        let progress = progress(&tasks, image, replicas);
        if progress != last {
            run.events.note(&format!("{name}: {progress}"));
            last = progress;
        }
        if started.elapsed() >= limit {
            let why = failure_reason(&tasks).unwrap_or_else(|| last.clone());
            return Err(format!("{name} did not converge within {limit:?}: {why}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The ids of the service's tasks now: failures among them belong to earlier runs.
async fn task_ids(run: &Run<'_>, name: &str) -> HashSet<String> {
    run.engine.tasks(name).await.map(|tasks| tasks.into_iter().map(|t| t.id).collect()).unwrap_or_default()
}

/// The tasks this run's change made (not in `known`): the only ones whose failures are its own.
fn new_tasks(tasks: Vec<TaskInfo>, known: &HashSet<String>) -> Vec<TaskInfo> {
    tasks.into_iter().filter(|t| !known.contains(&t.id)).collect()
}

fn progress(tasks: &[TaskInfo], image: &str, replicas: u64) -> String {
    let on_new = tasks.iter().filter(|t| t.desired == "running" && t.state == "running" && t.image == image).count();
    let failed = tasks.iter().filter(|t| t.failed() && t.image == image).count();
    let mut text = format!("{on_new}/{replicas} tasks running the new digest");
    if failed > 0 {
        text.push_str(&format!(", {failed} failed"));
    }
    text
}

/// Swarm's own rolling update of the service `SERVICE`, followed to its end: exit 0 only when
/// it converged on the new digest; a rollback by swarm is a failed deploy.
pub async fn rolling(run: &mut Run<'_>, start: &Start, color: Color) -> Result<Report, DeployError> {
    let name = run.spec.name.clone();
    let replicas = u64::from(run.spec.replicas);
    let spec = service_spec(run, &name, &start.image, &start.digest, None, replicas);
    let auth = run.auth.clone();
    let since = Instant::now();
    let existing = run.engine.service(&name).await?;
    let before = existing.as_ref().and_then(|s| s.update.clone());
    let known = task_ids(run, &name).await;
    let applied = match &existing {
        Some(service) => run.engine.update_service(&spec, service.version, auth.as_ref()).await,
        None => run.engine.create_service(&spec, auth.as_ref()).await.map(|_| Vec::new()),
    };
    if let Err(e) = applied {
        return failed(run, start, color, e.to_string());
    }
    run.record(if existing.is_some() { "service update" } else { "service create" }, since);
    match follow(run, &name, &start.image, replicas, before.map(|u| u.state), &known, false).await {
        Ok(()) => {
            let report = end(run, start, color, Outcome::Succeeded, None, None)?;
            let vars = start.vars(color);
            if let Err(e) = run.hook(Hook::PostDeploy, &vars).await {
                run.events.note(&format!("{e} (the deploy stands)"));
            }
            Ok(report)
        }
        Err(failure) => {
            let reason = failure.to_string();
            let mut vars = start.vars(color);
            vars.reason = Some(reason.clone());
            if matches!(failure, UpdateFailure::RolledBack { .. })
                && let Err(e) = run.hook(Hook::OnRollback, &vars).await
            {
                run.events.note(&e.to_string());
            }
            failed(run, start, color, reason)
        }
    }
}

/// `imgctl rollback` of a rolling swarm service: swarm's `rollback=previous`, followed.
pub async fn rollback(run: &mut Run<'_>) -> Result<Report, DeployError> {
    let name = run.spec.name.clone();
    let Some(service) = run.engine.service(&name).await? else {
        return Err(DeployError::NothingToRollBack { service: name, detail: ": no such swarm service".into() });
    };
    let before = service.update.clone().map(|u| u.state);
    let known = task_ids(run, &name).await;
    let since = Instant::now();
    run.engine.rollback_service(&name).await?;
    run.record("service rollback", since);
    let result = follow(run, &name, "", u64::from(run.spec.replicas), before, &known, true).await;
    let now = run.engine.service(&name).await?.unwrap_or(service.clone());
    let digest = now.image.rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
    let start = Start {
        image: now.image.clone(),
        digest,
        previous: Some((Color::Blue, service.labels.get(label::DIGEST).cloned().unwrap_or_default())),
        old: None,
    };
    match result {
        Ok(()) => {
            let vars = start.vars(Color::Blue);
            if let Err(e) = run.hook(Hook::OnRollback, &vars).await {
                run.events.note(&e.to_string());
            }
            end(run, &start, Color::Blue, Outcome::Succeeded, None, None)
        }
        Err(failure) => failed(run, &start, Color::Blue, failure.to_string()),
    }
}

/// Follows `UpdateStatus` until the update ends. `before` is the state the service showed
/// before this run's change: a terminal state equal to it is the last run's, not ours.
/// `rolling_back`: success is `rollback_completed` (with `image` empty, any image).
async fn follow(
    run: &mut Run<'_>,
    name: &str,
    image: &str,
    replicas: u64,
    before: Option<String>,
    known: &HashSet<String>,
    rolling_back: bool,
) -> Result<(), UpdateFailure> {
    let limit = run.spec.settings.swarm.converge_timeout;
    let since = Instant::now();
    let mut ours = false;
    let mut last = String::new();
    let result = loop {
        let service = run.engine.service(name).await?.ok_or_else(|| UpdateFailure::Vanished(name.to_owned()))?;
        let tasks = run.engine.tasks(name).await?;
        let state = service.update.as_ref().map(|u| u.state.clone()).unwrap_or_default();
        let message = service.update.as_ref().map(|u| u.message.clone()).unwrap_or_default();
        ours |= matches!(state.as_str(), "updating" | "rollback_started") || Some(&state) != before.as_ref();
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
            run.events.note(&format!("{name} {line}"));
            last = line;
        }
        match (ours, state.as_str()) {
            (true, "completed") if !rolling_back && done => break Ok(()),
            (_, "") if !rolling_back && done => break Ok(()),
            (true, "rollback_completed") if rolling_back && done => break Ok(()),
            (true, "rollback_completed") => {
                break Err(UpdateFailure::RolledBack { why: failure_reason(&tasks).unwrap_or(message) });
            }
            (true, "paused" | "rollback_paused") => {
                break Err(UpdateFailure::Paused {
                    state,
                    why: failure_reason(&tasks).unwrap_or(message),
                    service: run.spec.name.clone(),
                    name: name.to_owned(),
                });
            }
            _ => {}
        }
        if since.elapsed() >= limit {
            break Err(UpdateFailure::NotConverged {
                name: name.to_owned(),
                limit,
                state,
                why: failure_reason(&tasks).unwrap_or(last.clone()),
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    run.record(if rolling_back { "swarm rollback" } else { "swarm update" }, since);
    result
}
