//! The rolling update on one host: the live color's replicas replaced batch by batch with
//! compose's `deploy.update_config`, and the way back, batch by batch with `rollback_config`.

use super::color::Color;
use super::history::Outcome;
use super::hooks::Hook;
use super::model::{ContainerState, Order, Phase, Replica, Traffic};
use super::plan::{self, AfterBatch};
use super::run::{DeployError, Report, Run};
use super::strategy::{Start, end, failed, watch};

/// Rolling: replace the live color's replicas batch by batch (`deploy.update_config`).
pub(super) async fn rolling(run: &mut Run<'_>, start: &Start, color: Color) -> Result<Report, DeployError> {
    let old_traffic = start.old.clone().expect("rolling starts from a live version");
    let config = run.spec.update_config.clone();
    let total = run.spec.replicas;
    let replicas = run.replicas().await?;
    let mut servers = old_traffic.servers.clone();
    let phase = Phase::Rolling { color, image: start.image.clone(), digest: start.digest.clone() };
    // Indices still served by the old color are the ones left to replace (a resumed run skips
    // what is done).
    let todo: Vec<u32> = (1..=total)
        .filter(|i| {
            !replicas.iter().any(|r| r.color == color && r.index == *i && servers.iter().any(|s| s.container == r.name))
        })
        .collect();
    let mut failed_count = 0;
    for (n, batch) in plan::batches(&todo, config.parallelism).into_iter().enumerate() {
        if n > 0 {
            run.wait("delay", config.delay).await;
        }
        let old: Vec<Replica> =
            replicas.iter().filter(|r| r.color == old_traffic.live && batch.contains(&r.index)).cloned().collect();
        let without_old: Vec<_> =
            servers.iter().filter(|s| !old.iter().any(|r| r.name == s.container)).cloned().collect();
        // Stop-first with nothing else serving would point nginx at nothing: start first then.
        let stop_first = config.order == Order::StopFirst && !without_old.is_empty();
        if stop_first && !old.is_empty() {
            servers = without_old.clone();
            run.apply(
                &run.traffic(old_traffic.live, &old_traffic.live_digest, phase.clone(), servers.clone()),
                "take out",
            )?;
            run.wait("drain", run.spec.settings.drain).await;
            run.retire(&old, false).await;
        }
        match run.build(color, &start.image, &start.digest, &batch).await {
            Ok(new) => {
                servers.extend(run.servers(&new, 1));
                if !stop_first {
                    servers.retain(|s| !old.iter().any(|r| r.name == s.container));
                }
                run.apply(
                    &run.traffic(old_traffic.live, &old_traffic.live_digest, phase.clone(), servers.clone()),
                    "switch batch",
                )?;
                if !stop_first && !old.is_empty() {
                    run.wait("drain", run.spec.settings.drain).await;
                    run.retire(&old, false).await;
                }
                if let Err(reason) = watch(run, &new, config.monitor, "monitor").await {
                    run.events.note(&format!("batch {batch:?} failed while monitored: {reason}"));
                    failed_count += batch.len() as u32;
                }
            }
            Err(reason) => {
                run.events.note(&format!("batch {batch:?} failed: {reason}"));
                failed_count += batch.len() as u32;
                if stop_first && !old.is_empty() {
                    // Put the old replicas of this batch back so capacity is kept.
                    if let Ok(back) = run.restart(&old).await {
                        servers.extend(run.servers(&back, 1));
                        run.apply(
                            &run.traffic(old_traffic.live, &old_traffic.live_digest, phase.clone(), servers.clone()),
                            "restore batch",
                        )?;
                    }
                }
            }
        }
        match plan::after_batch(failed_count, total, &config) {
            AfterBatch::Proceed => {}
            AfterBatch::Pause => {
                let reason = format!(
                    "{failed_count} of {total} replicas failed: paused (failure_action pause); `imgctl deploy {0} --continue` goes on, `--abort` rolls back",
                    run.spec.name
                );
                return end(run, start, color, Outcome::Paused, Some(reason), Some(old_traffic.live));
            }
            AfterBatch::Rollback => {
                let reason = format!("{failed_count} of {total} replicas failed (failure_action rollback)");
                restore(run, &old_traffic, color).await?;
                return failed(run, start, color, format!("{reason}; every replica is back on {}", old_traffic.live));
            }
        }
    }
    // Every replica runs the new version: it becomes the live color.
    let new: Vec<Replica> =
        run.replicas().await?.into_iter().filter(|r| r.color == color && r.state == ContainerState::Running).collect();
    let live = run.traffic(color, &start.digest, Phase::Stable, run.servers(&new, 1));
    run.apply(&live, "switch")?;
    if let Err(reason) = run.verify(&new).await {
        restore(run, &old_traffic, color).await?;
        return failed(
            run,
            start,
            color,
            format!("verify after the update failed: {reason}; every replica is back on {}", old_traffic.live),
        );
    }
    let report = end(run, start, color, Outcome::Succeeded, None, Some(color))?;
    let mut vars = start.vars(color);
    vars.new_addrs = live.servers.iter().map(|s| s.addr.clone()).collect();
    if let Err(e) = run.hook(Hook::PostDeploy, &vars).await {
        run.events.note(&format!("{e} (the deploy stands)"));
    }
    Ok(report)
}

/// Puts all traffic back on `old.live` (restarting its stopped replicas in batches of
/// `rollback_config.parallelism`) and removes the `new` color's replicas. Until the last
/// write the file keeps its in-flight phase, so a run cut off here is finished by `--abort`.
pub(super) async fn restore(run: &mut Run<'_>, old: &Traffic, new: Color) -> Result<(), DeployError> {
    let replicas = run.replicas().await?;
    let new_replicas: Vec<Replica> = replicas.iter().filter(|r| r.color == new).cloned().collect();
    let stopped: Vec<Replica> =
        replicas.iter().filter(|r| r.color == old.live && r.state != ContainerState::Running).cloned().collect();
    let current = run.switch.read()?.unwrap_or_else(|| old.clone());
    let mut servers = current.servers.clone();
    let indices: Vec<u32> = stopped.iter().map(|r| r.index).collect();
    for batch in plan::batches(&indices, run.spec.rollback_config.parallelism) {
        let back: Vec<Replica> = stopped.iter().filter(|r| batch.contains(&r.index)).cloned().collect();
        match run.restart(&back).await {
            Ok(back) => {
                servers.extend(run.servers(&back, 1));
                servers.retain(|s| !new_replicas.iter().any(|r| r.name == s.container && batch.contains(&r.index)));
                let traffic = run.traffic(old.live, &old.live_digest, current.phase.clone(), servers.clone());
                run.apply(&traffic, "roll back batch")?;
            }
            Err(reason) => run.events.note(&format!("could not bring back replicas {batch:?}: {reason}")),
        }
    }
    let running: Vec<Replica> = run
        .replicas()
        .await?
        .into_iter()
        .filter(|r| r.color == old.live && r.state == ContainerState::Running)
        .collect();
    if running.is_empty() {
        // Nothing of the old color could come back: keep what serves rather than nothing.
        run.events.note(&format!("no {} replica could be started: traffic stays where it is", old.live));
        return Ok(());
    }
    let servers = run.servers(&running, 1);
    run.apply(&run.traffic(old.live, &old.live_digest, Phase::Stable, servers), "switch back")?;
    run.wait("drain", run.spec.settings.drain).await;
    run.retire(&new_replicas, true).await;
    Ok(())
}
