//! Each step of the core carried out against the target and the switch, timed.

use std::time::{Duration, Instant};

use super::{Run, lock_dir, upstream_file};
use crate::deploy::child_env::ChildEnv;
use crate::deploy::color::Color;
use crate::deploy::core::{Done, Drained, HookFacts, Route, Share, Step};
use crate::deploy::docker::PullAuth;
use crate::deploy::failure::StepError;
use crate::deploy::health;
use crate::deploy::hooks::{self, Hook};
use crate::deploy::lock::{self, Holder};
use crate::deploy::model::{ContainerState, Replica, Server, Traffic, canary_weights};
use crate::deploy::switch::TrafficSwitch;
use crate::deploy::target::{Placement, RollsItself, Target, TargetError};
use crate::reference::Reference;

/// How often a drain counts the open connections.
const DRAIN_POLL: Duration = Duration::from_millis(100);

impl Run<'_> {
    pub(super) async fn carry_out(&mut self, step: Step) -> Result<Done, StepError> {
        let since = Instant::now();
        match step {
            Step::Resume { color, indices } => {
                let replicas = self.of_color(color, indices.as_deref()).await?;
                if replicas.is_empty() {
                    return Err(TargetError::Gone(format!("{} {color}", self.spec.name)).into());
                }
                let (target, events) = self.colors_and_events();
                let started = target.resume(&replicas, events).await?;
                self.gated(format!("start {color} x{}", replicas.len()), since, started.gate, color);
            }
            Step::Retire { color, indices, remove } => {
                let mut replicas = self.of_color(color, indices.as_deref()).await?;
                if !remove {
                    replicas.retain(|r| r.state == ContainerState::Running);
                }
                if replicas.is_empty() {
                    return Ok(Done::Done);
                }
                let target = self.colors();
                let verb = if remove { "remove" } else { target.stop_verb() };
                // All at once: each stop may wait out its whole grace period.
                let results = futures_util::future::join_all(replicas.iter().map(|r| target.retire(r, remove))).await;
                self.timed(format!("{verb} {color} x{}", replicas.len()), since.elapsed());
                for result in results {
                    result?;
                }
            }
            Step::Reload => {
                self.switch.reload()?;
                self.timed("reload", since.elapsed());
            }
            Step::Hook { hook, facts } => self.hook(hook, &facts).await?,
            Step::Pull { image } => {
                let auth = self.registry_auth(&image.repository)?;
                let events = &mut *self.events;
                let pulled = match &mut self.placement {
                    Placement::Colors(target) => target.prepare(&image, auth, events).await?,
                    Placement::RollsItself(rolling) => rolling.prepare(&image, auth).await.map(|()| false)?,
                };
                if pulled {
                    self.timed(format!("pull {}", image.digest), since.elapsed());
                }
            }
            Step::Start { color, image, indices } => {
                let id = self.id.clone();
                let (target, events) = self.colors_and_events();
                let started = target.start(color, &image, &indices, &id, events).await;
                let started = match started {
                    Ok(started) => started,
                    Err(e) => {
                        self.timed(format!("start {color} x{}", indices.len()), since.elapsed());
                        return Err(e.into());
                    }
                };
                self.gated(format!("start {color} x{}", indices.len()), since, started.gate, color);
            }
            Step::Switch { route, label, moves } => {
                let traffic = self.traffic(&route).await?;
                let took = match self.switch.apply(&traffic) {
                    Ok(took) => took,
                    Err(e) => {
                        // What the proxy printed is for the person watching, not the history.
                        for line in e.output().lines() {
                            self.events.note(&format!("{label}: {line}"));
                        }
                        return Err(e.into());
                    }
                };
                self.timed(label, since.elapsed());
                if moves && self.switch_time.is_none() {
                    self.switch_time = Some(took);
                    self.traffic_at = Some(self.started.elapsed().saturating_sub(self.gate_time));
                }
            }
            Step::Verify { color } => {
                let result = self.verify(color).await;
                self.timed("verify", since.elapsed());
                result?;
            }
            Step::Watch { color, indices, duration, label } => {
                let result = self.watch(color, indices.as_deref(), duration).await;
                self.timed(label, since.elapsed());
                result?;
            }
            Step::Drain { color, indices, deadline } => {
                let drained = self.drain(color, indices.as_deref(), deadline).await?;
                if drained.replicas > 0 {
                    self.timed(format!("drain {color}"), since.elapsed());
                    self.events.note(&drained.to_string());
                }
                return Ok(Done::Drained(drained));
            }
            Step::Wait { label, duration } => {
                if !duration.is_zero() {
                    tokio::time::sleep(duration).await;
                    self.timed(label, since.elapsed());
                }
            }
            Step::KeepWarm { old, new, duration } => return self.keep_warm(old, new, duration).await,
            Step::Update { image } => {
                let id = self.id.clone();
                let (rolling, events) = self.rolling_and_events();
                let result = rolling.update(&image, &id, events).await;
                self.timed("swarm update", since.elapsed());
                result?;
            }
            Step::Revert => {
                let (rolling, events) = self.rolling_and_events();
                let result = rolling.revert(events).await;
                self.timed("swarm rollback", since.elapsed());
                result?;
            }
            Step::Record(_) => unreachable!("recorded by the loop"),
        }
        Ok(Done::Done)
    }

    /// Waits until the running replicas of `color` (of `indices`) have had no open connection
    /// for the switch's settle time, or `deadline` passes; says how many were still open.
    async fn drain(&mut self, color: Color, indices: Option<&[u32]>, deadline: Duration) -> Result<Drained, StepError> {
        let replicas = self.running(color, indices).await?;
        let settle = self.switch.settle().min(deadline);
        let since = Instant::now();
        let mut none_open_since = None;
        loop {
            let open = self.open_connections(&replicas).await;
            let (now, waited) = (Instant::now(), since.elapsed());
            none_open_since = if open == Some(0) { none_open_since.or(Some(now)) } else { None };
            let quiet = none_open_since.is_some_and(|t| now.duration_since(t) >= settle);
            if quiet || waited >= deadline {
                return Ok(Drained::new(color, replicas.len(), open, waited, deadline));
            }
            tokio::time::sleep(DRAIN_POLL.min(deadline - waited)).await;
        }
    }

    /// The connections `replicas` have open: as the proxy counts its sessions to them where
    /// it can (haproxy), else as the target counts them on the replicas (`None`: unknown).
    async fn open_connections(&mut self, replicas: &[Replica]) -> Option<u32> {
        if replicas.is_empty() {
            return Some(0);
        }
        let target = self.colors();
        let addrs: Vec<String> = replicas.iter().filter_map(|r| target.address(r)).collect();
        match self.switch.open_sessions(&addrs) {
            Ok(Some(open)) if addrs.len() == replicas.len() => return Some(open),
            Ok(_) => {}
            Err(e) => self.events.note(&format!("drain: counting the proxy's sessions: {e}")),
        }
        let target = self.colors();
        let mut total = 0;
        for replica in replicas {
            total += target.open_connections(replica).await?;
        }
        Some(total)
    }

    /// Times a start: the start itself, then its health gate (which does not count towards
    /// the time to traffic).
    fn gated(&mut self, step: String, since: Instant, gate: Duration, color: Color) {
        self.timed(step, since.elapsed().saturating_sub(gate));
        self.gate_time += gate;
        self.timed(format!("health gate {color}"), gate);
    }

    /// The traffic `route` stands for now: each member's running replicas at the addresses
    /// they have at this moment.
    async fn traffic(&mut self, route: &Route) -> Result<Traffic, StepError> {
        let mut members = Vec::new();
        for member in &route.members {
            let replicas = self.running(member.color, member.indices.as_deref()).await?;
            let target = self.colors();
            let backends: Vec<(String, String)> =
                replicas.iter().filter_map(|r| target.address(r).map(|addr| (addr, r.name.clone()))).collect();
            members.push((member, backends));
        }
        let count =
            |color: Color| members.iter().filter(|(m, _)| m.color == color).map(|(_, b)| b.len()).sum::<usize>();
        let (live_count, other_count) = (count(route.live), count(route.live.other()));
        let mut servers = Vec::new();
        for (member, backends) in members {
            let weight = match member.share {
                Share::Even => 1,
                Share::Canary(percent) => {
                    let (stable, new) = canary_weights(percent, live_count, other_count);
                    if member.color == route.live { stable } else { new }
                }
            };
            if weight == 0 {
                continue;
            }
            servers.extend(backends.into_iter().map(|(addr, container)| Server {
                addr,
                weight,
                container,
                color: member.color,
            }));
        }
        Ok(Traffic {
            service: self.spec.name.clone(),
            live: route.live,
            live_digest: route.live_digest.clone(),
            deploy_id: self.id.clone(),
            phase: route.phase.clone(),
            servers,
        })
    }

    /// Checks through the proxy (`verify_url`) or, without one, on each new replica, that the
    /// new version answers after the switch.
    async fn verify(&mut self, color: Color) -> Result<(), StepError> {
        let settings = &self.spec.settings;
        let deadline = settings.health.deadline.min(Duration::from_secs(30));
        let (timeout, count) = (settings.health.timeout, settings.proxy.verify_count);
        match (settings.proxy.verify_url.clone(), settings.health.path.clone()) {
            (Some(url), _) => health::verify(&url, count, timeout, deadline).await.map_err(StepError::Verify),
            (None, Some(path)) => {
                let replicas = self.running(color, None).await?;
                for replica in replicas {
                    let Some(addr) = self.colors().probe_address(&replica) else { continue };
                    let url = format!("http://{addr}{path}");
                    health::verify(&url, 1, timeout, deadline)
                        .await
                        .map_err(|e| StepError::Verify(format!("{}: {e}", replica.name)))?;
                }
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    /// Checks the replicas every health interval for `duration`; the first failure ends it.
    async fn watch(&mut self, color: Color, indices: Option<&[u32]>, duration: Duration) -> Result<(), StepError> {
        let since = Instant::now();
        let interval = self.spec.settings.health.interval;
        let replicas = self.of_color(color, indices).await?;
        loop {
            for replica in &replicas {
                self.colors().check(replica).await?;
            }
            if since.elapsed() >= duration {
                return Ok(());
            }
            tokio::time::sleep(interval.min(duration.saturating_sub(since.elapsed()))).await;
        }
    }

    /// After a switch: the old color stays warm without the lock (so `imgctl rollback` is
    /// instant), then the lock is taken again; the core drains and stops the old color (kept
    /// for a later rollback), unless traffic changed meanwhile.
    async fn keep_warm(&mut self, old: Color, new: Color, duration: Duration) -> Result<Done, StepError> {
        let running = self.running(old, None).await?;
        if running.is_empty() {
            return Ok(Done::Done);
        }
        self.lock = None;
        if !duration.is_zero() {
            let since = Instant::now();
            tokio::time::sleep(duration).await;
            self.timed("keep warm", since.elapsed());
        }
        let holder =
            Holder::this_process(format!("{} (stopping the old color)", self.action), self.options.performer.clone());
        match lock::acquire_for(upstream_file(self.spec), &lock_dir(self.options), &self.spec.record_name(), &holder) {
            Ok(lock) => self.lock = Some(lock),
            Err(_) => {
                self.events.note("another run took the lock during keep-warm; it decides about the old color");
                return Ok(Done::LeftRunning);
            }
        }
        match self.switch.read() {
            // The core drains and stops it next.
            Ok(Some(now)) if now.deploy_id == self.id && now.live == new => Ok(Done::Done),
            _ => {
                self.events.note("traffic changed during keep-warm (a rollback?); the old color was left running");
                Ok(Done::LeftRunning)
            }
        }
    }

    /// Runs a hook with the run's `IMGCTL_*` variables, the allowed part of imgctl's
    /// environment and `x-imgctl.pass_env`. What it prints goes to the events, for the person
    /// watching; the error, which the history keeps, says only how it ended.
    async fn hook(&mut self, hook: Hook, facts: &HookFacts) -> Result<(), StepError> {
        let settings = &self.spec.settings;
        let dir = settings.hooks_dir.clone();
        if !dir.join(hook.file_name()).exists() {
            return Ok(());
        }
        let new_addrs = match facts.new_color {
            Some(color) if matches!(hook, Hook::PreSwitch | Hook::PostSwitch | Hook::PostDeploy) => {
                let replicas = self.running(color, None).await?;
                let target = self.colors();
                replicas.iter().filter_map(|r| target.address(r)).collect()
            }
            _ => Vec::new(),
        };
        let limit = self.spec.settings.hook_timeout;
        let env = ChildEnv::inherit(&self.spec.settings.pass_env).with(self.hook_env(facts, &new_addrs));
        let since = Instant::now();
        let ran = tokio::task::spawn_blocking(move || hooks::run(&dir, hook, &env, limit))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let output = match &ran {
            Ok(Some(ran)) => ran.output.text(),
            Ok(None) => return Ok(()),
            Err(e) => e.output(),
        };
        for line in output.lines() {
            self.events.note(&format!("{}: {line}", hook.file_name()));
        }
        self.timed(format!("hook {}", hook.file_name()), since.elapsed());
        ran.map(|_| ()).map_err(StepError::from)
    }

    fn hook_env(&self, facts: &HookFacts, new_addrs: &[String]) -> Vec<(String, String)> {
        let settings = &self.spec.settings;
        let mut env = vec![
            ("IMGCTL_SERVICE".to_owned(), self.spec.name.clone()),
            ("IMGCTL_DEPLOY_ID".to_owned(), self.id.clone()),
            ("IMGCTL_ACTION".to_owned(), self.action.to_owned()),
            ("IMGCTL_STRATEGY".to_owned(), settings.strategy.as_str().to_owned()),
            ("IMGCTL_IMAGE".to_owned(), facts.image.clone()),
            ("IMGCTL_DIGEST".to_owned(), facts.digest.clone()),
            ("IMGCTL_PERFORMER".to_owned(), self.options.performer.clone()),
            ("IMGCTL_NEW_ADDRS".to_owned(), new_addrs.join(",")),
            ("IMGCTL_HEALTH_PATH".to_owned(), settings.health.path.clone().unwrap_or_default()),
            ("IMGCTL_COMPOSE_FILE".to_owned(), self.spec.compose_file.display().to_string()),
            ("IMGCTL_COMPOSE_FILES".to_owned(), path_list(&self.spec.compose_files)),
            ("IMGCTL_ENV_FILES".to_owned(), path_list(&self.spec.env_files)),
        ];
        let mut optional = |name: &str, value: Option<String>| env.push((name.to_owned(), value.unwrap_or_default()));
        optional("IMGCTL_NEW_COLOR", facts.new_color.map(|c| c.to_string()));
        optional("IMGCTL_OLD_COLOR", facts.old_color.map(|c| c.to_string()));
        optional("IMGCTL_OLD_DIGEST", facts.old_digest.clone());
        optional("IMGCTL_REASON", facts.reason.clone());
        optional("IMGCTL_PROXY_URL", settings.proxy.verify_url.clone());
        env
    }

    /// The credential docker would send to `repository`'s registry (the engine pulls with it;
    /// on swarm it goes along to the nodes that pull).
    fn registry_auth(&self, repository: &Reference) -> Result<PullAuth, StepError> {
        let registry = repository.registry().to_owned();
        let (credential, _) = crate::registry::credentials::resolve(&self.options.docker_dir, &registry)
            .map_err(|source| StepError::Credentials { registry: registry.clone(), source })?;
        Ok(PullAuth { server: crate::registry::credentials::server_url_for(&registry), credential })
    }
}

/// `paths` joined with the OS's path separator, as `COMPOSE_FILE` takes them (so a hook can run
/// `COMPOSE_FILE=$IMGCTL_COMPOSE_FILES docker compose ...`); empty when a path holds the
/// separator itself, which such a list cannot carry.
fn path_list(paths: &[std::path::PathBuf]) -> String {
    std::env::join_paths(paths).map(|joined| joined.to_string_lossy().into_owned()).unwrap_or_default()
}
