//! Pure decisions of a deploy, tested with tables: what a new run must clean up after an
//! earlier one, how replicas are batched, and when a rolling update's failures stop it.

use super::color::Color;
use super::model::UpdateConfig;
use super::model::{ContainerState, Phase, Replica, Source, Traffic};

/// What a run must do before it starts its own work, decided from the upstream file's state
/// and the containers the engine has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconcile {
    /// The live color (traffic's home), if any version was ever switched to.
    pub live: Option<Color>,
    /// Containers in nginx's upstream that are not running: started again first, so nginx
    /// never points at nothing.
    pub start: Vec<String>,
    /// Containers of the idle color (an earlier generation, or orphans of a run cut off before
    /// its switch): removed before the idle color is built again.
    pub remove: Vec<String>,
}

/// Decides the clean-up before a new deploy: keep and run what nginx points at, remove the rest.
pub fn reconcile(traffic: Option<&Traffic>, replicas: &[Replica]) -> Reconcile {
    let Some(traffic) = traffic else {
        // Nothing was ever switched to: every container imgctl made for the service is an
        // orphan (compose's are not imgctl's: a deploy takes them over).
        let orphans = replicas.iter().filter(|r| r.source != Source::Compose).map(|r| r.id.clone()).collect();
        return Reconcile { live: None, start: Vec::new(), remove: orphans };
    };
    let in_upstream = |r: &Replica| traffic.servers.iter().any(|s| s.container == r.name);
    let start = replicas
        .iter()
        .filter(|r| in_upstream(r) && r.state != ContainerState::Running)
        .map(|r| r.id.clone())
        .collect();
    let remove = replicas.iter().filter(|r| r.color != traffic.live && !in_upstream(r)).map(|r| r.id.clone()).collect();
    Reconcile { live: Some(traffic.live), start, remove }
}

/// Whether traffic holds a deploy that waits for `--continue` or `--abort`.
pub fn in_flight(traffic: Option<&Traffic>) -> Option<&Phase> {
    traffic.map(|t| &t.phase).filter(|phase| !matches!(phase, Phase::Stable))
}

/// Replica indices (from 1) in batches of `parallelism` (0: all at once).
pub fn batches(indices: &[u32], parallelism: u32) -> Vec<Vec<u32>> {
    let size = if parallelism == 0 { indices.len().max(1) } else { parallelism as usize };
    indices.chunks(size).map(<[u32]>::to_vec).collect()
}

/// What a rolling update does after a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterBatch {
    /// Go on with the next batch.
    Proceed,
    /// Stop here, traffic on what is healthy; `--continue` resumes, `--abort` rolls back.
    Pause,
    /// Put every replaced replica back on the previous version.
    Rollback,
}

/// Swarm's rule: failures are tolerated while `failed / total <= max_failure_ratio`; past
/// that, `failure_action` applies (`continue` goes on regardless).
pub fn after_batch(failed: u32, total: u32, config: &UpdateConfig) -> AfterBatch {
    use super::model::FailureAction;
    if failed == 0 || f64::from(failed) / f64::from(total.max(1)) <= config.max_failure_ratio {
        return AfterBatch::Proceed;
    }
    match config.failure_action {
        FailureAction::Continue => AfterBatch::Proceed,
        FailureAction::Pause => AfterBatch::Pause,
        FailureAction::Rollback => AfterBatch::Rollback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::model::FailureAction;
    use crate::deploy::model::{Health, Server};

    fn replica(name: &str, color: Color, state: ContainerState) -> Replica {
        Replica {
            id: format!("id-{name}"),
            name: name.into(),
            color,
            digest: "sha256:aa".into(),
            deploy_id: "d".into(),
            index: 1,
            state,
            health: Health::None,
            addr: None,
            created: String::new(),
            source: crate::deploy::model::Source::Imgctl,
        }
    }

    fn traffic(live: Color, servers: &[(&str, Color)]) -> Traffic {
        Traffic {
            service: "web".into(),
            live,
            live_digest: "sha256:aa".into(),
            deploy_id: "d".into(),
            phase: Phase::Stable,
            servers: servers
                .iter()
                .map(|(name, color)| Server {
                    addr: "127.0.0.1:1".into(),
                    weight: 1,
                    container: (*name).into(),
                    color: *color,
                })
                .collect(),
        }
    }

    #[test]
    fn reconcile_keeps_what_nginx_points_at_and_removes_the_rest() {
        use Color::*;
        use ContainerState::*;
        let blue1 = replica("web-blue-1", Blue, Running);
        let blue2_stopped = replica("web-blue-2", Blue, Exited);
        let green1 = replica("web-green-1", Green, Running);
        let green2_created = replica("web-green-2", Green, Created);

        // A run killed during its health gate: green is an orphan, blue serves.
        let r = reconcile(
            Some(&traffic(Blue, &[("web-blue-1", Blue)])),
            &[blue1.clone(), green1.clone(), green2_created.clone()],
        );
        assert_eq!(
            r,
            Reconcile {
                live: Some(Blue),
                start: vec![],
                remove: vec!["id-web-green-1".into(), "id-web-green-2".into()]
            }
        );

        // A replica nginx points at stopped (the host rebooted, a crash): started again.
        let r = reconcile(
            Some(&traffic(Blue, &[("web-blue-1", Blue), ("web-blue-2", Blue)])),
            &[blue1.clone(), blue2_stopped.clone()],
        );
        assert_eq!(r.start, vec!["id-web-blue-2".to_owned()]);
        assert!(r.remove.is_empty());

        // A canary in flight: both colors are in the upstream, nothing is removed.
        let r = reconcile(
            Some(&traffic(Blue, &[("web-blue-1", Blue), ("web-green-1", Green)])),
            &[blue1.clone(), green1.clone()],
        );
        assert!(r.remove.is_empty() && r.start.is_empty());

        // No upstream state yet (a first deploy cut off): everything is an orphan.
        let r = reconcile(None, std::slice::from_ref(&green1));
        assert_eq!((r.live, r.remove), (None, vec!["id-web-green-1".to_owned()]));

        // The previous generation kept stopped for rollback is idle: removed by the next deploy.
        let old_green = replica("web-green-1", Green, Exited);
        let r = reconcile(Some(&traffic(Blue, &[("web-blue-1", Blue)])), &[blue1, old_green]);
        assert_eq!(r.remove, vec!["id-web-green-1".to_owned()]);
    }

    #[test]
    fn batching() {
        assert_eq!(batches(&[1, 2, 3, 4], 1), vec![vec![1], vec![2], vec![3], vec![4]]);
        assert_eq!(batches(&[1, 2, 3, 4, 5], 2), vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert_eq!(batches(&[1, 2, 3], 0), vec![vec![1, 2, 3]]);
        assert_eq!(batches(&[], 2), Vec::<Vec<u32>>::new());
    }

    #[test]
    fn failure_ratio_and_action() {
        let config = |action, ratio| UpdateConfig {
            failure_action: action,
            max_failure_ratio: ratio,
            ..UpdateConfig::default()
        };
        // (failed, total, action, ratio) -> decision
        let table = [
            (0, 4, FailureAction::Pause, 0.0, AfterBatch::Proceed),
            (1, 4, FailureAction::Pause, 0.0, AfterBatch::Pause),
            (1, 4, FailureAction::Rollback, 0.0, AfterBatch::Rollback),
            (1, 4, FailureAction::Continue, 0.0, AfterBatch::Proceed),
            (1, 4, FailureAction::Rollback, 0.25, AfterBatch::Proceed),
            (2, 4, FailureAction::Rollback, 0.25, AfterBatch::Rollback),
        ];
        for (failed, total, action, ratio, expected) in table {
            assert_eq!(
                after_batch(failed, total, &config(action, ratio)),
                expected,
                "{failed}/{total} {action:?} {ratio}"
            );
        }
    }
}
