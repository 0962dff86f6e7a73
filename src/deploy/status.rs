//! What a service runs now (`imgctl status`), what a deploy would do (`--dry-run`), and its
//! history: reads only, no lock taken.

use serde::Serialize;

use super::child_env::ChildEnv;
use super::color::Color;
use super::docker::DockerEngine;
use super::history::{self, Record};
use super::lock::{self, Holder};
use super::model::{Phase, Replica, Traffic};
use super::nginx::Switch;
use super::plan;
use super::run::{self, Action, DeployError, Options, history_dir, lock_dir};
use super::spec::{ServiceSpec, Strategy, Target};
use super::strategy::describe;
use super::swarm::{ServiceState, TaskInfo};

/// A replica and its share of traffic.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicaStatus {
    /// The container.
    #[serde(flatten)]
    pub replica: Replica,
    /// Its nginx weight, when it is in the upstream.
    pub weight: Option<u32>,
}

/// A swarm service and its tasks.
#[derive(Clone, Debug, Serialize)]
pub struct SwarmServiceStatus {
    /// The service as swarm reports it.
    #[serde(flatten)]
    pub service: ServiceState,
    /// Its tasks, newest first per slot.
    pub tasks: Vec<TaskInfo>,
}

/// `imgctl status SERVICE`.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The service.
    pub service: String,
    /// The live color.
    pub live: Option<Color>,
    /// Its digest.
    pub live_digest: Option<String>,
    /// What is in flight, in words.
    pub phase: String,
    /// Every container of the service.
    pub replicas: Vec<ReplicaStatus>,
    /// On swarm: the services (the rolling service, or the color services) and their tasks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<SwarmServiceStatus>,
    /// Who holds the lock now.
    pub lock: Option<Holder>,
    /// The last runs, newest last.
    pub recent: Vec<Record>,
}

/// Reads the service's state from the engine, the upstream file, the lock and the history.
pub async fn status(spec: &ServiceSpec, options: &Options) -> Result<Status, DeployError> {
    let traffic = Switch::new(&spec.settings.proxy, ChildEnv::inherit(&spec.settings.pass_env)).read()?;
    let engine = DockerEngine::connect().await?;
    let replicas = run::replicas(&engine, spec).await?;
    let mut services = Vec::new();
    if spec.settings.target == Target::Swarm {
        let names = [spec.name.clone(), format!("{}-blue", spec.name), format!("{}-green", spec.name)];
        for name in names {
            if let Some(service) = engine.service(&name).await? {
                let tasks =
                    engine.tasks(&name).await?.into_iter().filter(|t| t.desired == "running" || t.failed()).collect();
                services.push(SwarmServiceStatus { service, tasks });
            }
        }
    }
    let weight =
        |r: &Replica| traffic.as_ref().and_then(|t| t.servers.iter().find(|s| s.container == r.name)).map(|s| s.weight);
    let mut recent = history(options, &spec.name)?;
    recent.drain(..recent.len().saturating_sub(5));
    Ok(Status {
        service: spec.name.clone(),
        live: traffic.as_ref().map(|t| t.live),
        live_digest: traffic.as_ref().map(|t| t.live_digest.clone()),
        phase: traffic.as_ref().map(|t| describe(&t.phase)).unwrap_or_else(|| "never deployed".into()),
        replicas: replicas.into_iter().map(|r| ReplicaStatus { weight: weight(&r), replica: r }).collect(),
        services,
        lock: lock::holder_for(spec.settings.proxy.upstream_file.as_deref(), &lock_dir(options), &spec.name),
        recent,
    })
}

/// The service's history, oldest first.
pub fn history(options: &Options, service: &str) -> Result<Vec<Record>, DeployError> {
    let dir = history_dir(options);
    history::read(&dir, service).map_err(|source| DeployError::History { path: dir, source })
}

/// What `action` would do now, step by step, without doing any of it.
pub async fn preview(spec: &ServiceSpec, options: &Options, action: &Action) -> Result<Vec<String>, DeployError> {
    let traffic = Switch::new(&spec.settings.proxy, ChildEnv::inherit(&spec.settings.pass_env)).read()?;
    let replicas = run::replicas(&DockerEngine::connect().await?, spec).await?;
    Ok(preview_lines(spec, options, action, traffic.as_ref(), &replicas))
}

fn preview_lines(
    spec: &ServiceSpec,
    options: &Options,
    action: &Action,
    traffic: Option<&Traffic>,
    replicas: &[Replica],
) -> Vec<String> {
    let s = &spec.settings;
    let mut lines = Vec::new();
    if let Some(holder) = lock::holder(&lock_dir(options), &spec.name) {
        lines.push(format!("would be refused now: the lock is held ({holder})"));
    }
    let image = match action {
        Action::Deploy(image) => image.reference(),
        Action::Continue => {
            return vec![format!(
                "continue {}",
                traffic.map(|t| describe(&t.phase)).unwrap_or_else(|| "nothing in flight".into())
            )];
        }
        Action::Abort => {
            return vec![format!(
                "abort {}: all traffic back on the stable color, the new color removed",
                traffic.map(|t| describe(&t.phase)).unwrap_or_else(|| "nothing in flight".into())
            )];
        }
        Action::Rollback { .. } => {
            let Some(t) = traffic else { return vec!["nothing to roll back: never deployed".into()] };
            let idle: Vec<_> = replicas.iter().filter(|r| r.color == t.live.other()).collect();
            return vec![match idle.first() {
                Some(r) => format!(
                    "start {} x{} ({}) if stopped, health gate, switch nginx to it, stop {}",
                    r.color,
                    idle.len(),
                    r.digest,
                    t.live
                ),
                None => format!(
                    "deploy the previous digest from the history into {}, switch nginx to it, stop {}",
                    t.live.other(),
                    t.live
                ),
            }];
        }
    };
    if s.target == Target::Swarm && s.strategy == Strategy::Rolling {
        let c = &spec.update_config;
        lines.push("hook pre-deploy".into());
        lines.push(format!(
            "{} swarm service {} with {image} x{} (registry auth passed along), at its version index",
            if replicas.is_empty() { "create or update" } else { "update" },
            spec.name,
            spec.replicas
        ));
        lines.push(format!(
            "swarm replaces tasks: batches of {}, {:?}, delay {:?}, monitor {:?}, failure_action {:?}, max_failure_ratio {}",
            c.parallelism, c.order, c.delay, c.monitor, c.failure_action, c.max_failure_ratio
        ));
        lines.push(format!(
            "follow UpdateStatus until completed (or rollback_completed: a failed deploy), within {:?}",
            s.swarm.converge_timeout
        ));
        lines.push("hook post-deploy".into());
        return lines;
    }
    if let Some(phase) = plan::in_flight(traffic).filter(|p| !matches!(p, Phase::Stable)) {
        lines.push(format!("would be refused now: {} is in flight (--continue or --abort)", describe(phase)));
    }
    let decision = plan::reconcile(traffic, replicas);
    if !decision.start.is_empty() || !decision.remove.is_empty() {
        lines.push(format!(
            "reconcile: start {} container(s) nginx points at, remove {} idle or orphaned",
            decision.start.len(),
            decision.remove.len()
        ));
    }
    let live = traffic.map(|t| t.live);
    let color = live.map(Color::other).unwrap_or(Color::Blue);
    let strategy = if live.is_none() { Strategy::BlueGreen } else { s.strategy };
    lines.push(format!("hook pre-deploy (if {} exists)", s.hooks_dir.join("pre-deploy").display()));
    lines.push(format!("pull {image}"));
    let gate = match &s.health.path {
        Some(path) => format!(
            "GET {path} answers 2xx {} times in a row, within {:?}",
            s.health.healthy_threshold, s.health.deadline
        ),
        None => format!("docker reports healthy, within {:?}", s.health.deadline),
    };
    match strategy {
        Strategy::Rolling => {
            let c = &spec.update_config;
            lines.push(format!(
                "rolling {} replica(s) of {} to {color}: batches of {}, {:?}, delay {:?}, monitor {:?}, failure_action {:?}, max_failure_ratio {}",
                spec.replicas, live.map(|c| c.as_str()).unwrap_or("-"), c.parallelism, c.order, c.delay, c.monitor, c.failure_action, c.max_failure_ratio
            ));
            lines.push(format!("each new replica: {gate}"));
        }
        _ => {
            lines.push(match s.target {
                Target::Engine => format!(
                    "start {color} x{} on {}:<ephemeral> -> container port {}",
                    spec.replicas,
                    s.proxy.host,
                    s.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
                ),
                Target::Swarm => format!(
                    "create or update swarm service {}-{color} x{} on {}; nginx reaches it as tasks.{0}-{color}:{}",
                    spec.name,
                    spec.replicas,
                    s.swarm.network.as_deref().unwrap_or("-"),
                    s.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
                ),
            });
            lines.push(format!("health gate: {gate}"));
            lines.push("hook pre-switch".into());
            if options.no_auto_promote && live.is_some() {
                lines.push("stop: wait for --continue (no auto-promote)".into());
            }
            if strategy == Strategy::Canary {
                for step in &s.canary_steps {
                    lines.push(format!(
                        "canary {}% -> {}",
                        step.weight,
                        match step.pause {
                            Some(p) if step.weight < 100 => format!("watch {p:?}"),
                            None if step.weight < 100 => "pause for --continue".into(),
                            _ => "all traffic".into(),
                        }
                    ));
                }
            }
        }
    }
    lines.push(format!(
        "switch: write {}, {}, {}",
        s.proxy.upstream_file.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "no upstream file".into()),
        s.proxy.test.join(" "),
        s.proxy.reload.join(" ")
    ));
    lines.push(match &s.proxy.verify_url {
        Some(url) => format!("verify: {url} answers 2xx {} times", s.proxy.verify_count),
        None => "verify: each new replica answers its health path".into(),
    });
    lines.push("hook post-switch (a failure moves traffic back)".into());
    if let Some(live) = live {
        lines.push(format!("keep {live} warm {:?}, then stop it (kept for imgctl rollback)", s.keep_warm.max(s.drain)));
    }
    lines.push("hook post-deploy".into());
    lines
}
