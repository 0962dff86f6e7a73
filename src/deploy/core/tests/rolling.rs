//! The rolling update on colors under each `failure_action` and order, resumed and aborted.

use super::*;

fn rolling(failure_action: FailureAction, order: Order) -> Settings {
    let mut s = settings(Strategy::Rolling, 3);
    s.update_config = UpdateConfig {
        parallelism: 1,
        failure_action,
        order,
        max_failure_ratio: 0.0,
        monitor: Duration::from_millis(5),
        ..UpdateConfig::default()
    };
    s
}
/// Deploys v2 in `world`, the second batch's start failing its gate (the first succeeds).
fn deploy_failing_the_second_start(settings: &Settings, world: &mut World) {
    let mut machine = Machine::new(settings.clone(), &Action::Deploy(image(V2)), world.observed()).unwrap();
    let mut last = Ok(Done::Done);
    let mut starts = 0;
    while let Some(step) = machine.next(last) {
        starts += usize::from(matches!(step, Step::Start { .. }));
        last = if matches!(step, Step::Start { .. }) && starts == 2 {
            world.log.push(step.label());
            Err(StepError::Injected("gate"))
        } else {
            world.apply(step)
        };
    }
}

#[test]
fn rolling_every_failure_path() {
    let all_blue = &[(Blue, 1), (Blue, 2), (Blue, 3)][..];
    let all_green = &[(Green, 1), (Green, 2), (Green, 3)][..];
    let everything = &[(Blue, 1), (Blue, 2), (Blue, 3), (Green, 1), (Green, 2), (Green, 3)][..];
    let cases = [
        (
            rolling(FailureAction::Pause, Order::StartFirst),
            Case {
                name: "succeeds",
                fail: &[],
                outcome: Outcome::Succeeded,
                failure: None,
                traffic: &[Green],
                running: all_green,
                present: everything,
            },
        ),
        (
            rolling(FailureAction::Pause, Order::StartFirst),
            Case {
                name: "batch 2 fails, pause",
                fail: &[],
                outcome: Outcome::Paused,
                failure: None,
                traffic: &[Blue, Green],
                running: &[(Blue, 2), (Blue, 3), (Green, 1)],
                present: &[(Blue, 1), (Blue, 2), (Blue, 3), (Green, 1)],
            },
        ),
        (
            rolling(FailureAction::Rollback, Order::StartFirst),
            Case {
                name: "batch 1 fails, rollback",
                fail: &["start green x1"],
                outcome: Outcome::Failed,
                failure: Some("switched-back"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Continue, Order::StartFirst),
            Case {
                name: "batch 1 fails, continue",
                fail: &["start green x1"],
                outcome: Outcome::Succeeded,
                failure: None,
                traffic: &[Green],
                running: &[(Blue, 1), (Green, 2), (Green, 3)],
                present: &[(Blue, 1), (Blue, 2), (Blue, 3), (Green, 2), (Green, 3)],
            },
        ),
        (
            rolling(FailureAction::Rollback, Order::StartFirst),
            Case {
                name: "a monitor fails, rollback",
                fail: &["monitor"],
                outcome: Outcome::Failed,
                failure: Some("switched-back"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Pause, Order::StartFirst),
            Case {
                name: "a batch's switch fails",
                fail: &["switch batch"],
                outcome: Outcome::Failed,
                failure: Some("switched-back"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Pause, Order::StartFirst),
            Case {
                name: "verify at the end fails",
                fail: &["verify"],
                outcome: Outcome::Failed,
                failure: Some("switched-back"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Rollback, Order::StartFirst),
            Case {
                name: "rollback's switch back fails",
                fail: &["start green x1", "switch back"],
                outcome: Outcome::Failed,
                failure: Some("switch-back-failed"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Pause, Order::StopFirst),
            Case {
                name: "stop-first: batch 1 fails, its old replica comes back",
                fail: &["start green x1"],
                outcome: Outcome::Paused,
                failure: None,
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
        (
            rolling(FailureAction::Rollback, Order::StopFirst),
            Case {
                name: "stop-first: batch 2 fails, rollback",
                fail: &[],
                outcome: Outcome::Failed,
                failure: Some("switched-back"),
                traffic: &[Blue],
                running: all_blue,
                present: all_blue,
            },
        ),
    ];
    for (settings, case) in &cases {
        let mut world = World::live(Blue, 3, V1).failing(case.fail);
        // "Batch 2 fails": the first start succeeds, the second fails.
        if case.name.contains("batch 2") {
            world.fail = vec![];
            deploy_failing_the_second_start(settings, &mut world);
        } else {
            run(settings.clone(), Action::Deploy(image(V2)), &mut world).unwrap();
        }
        check(case, &world);
    }
}

#[test]
fn a_paused_rolling_update_resumes_where_it_stopped_and_abort_brings_every_old_replica_back() {
    let mut world = World::live(Blue, 3, V1);
    let s = rolling(FailureAction::Pause, Order::StartFirst);
    deploy_failing_the_second_start(&s, &mut world);
    assert_eq!(world.verdict.map(|v| v.0), Some(Outcome::Paused));
    assert!(matches!(world.traffic.as_ref().unwrap().2, Phase::Rolling { .. }));

    let mut resumed = world.clone();
    resumed.log.clear();
    run(s.clone(), Action::Continue, &mut resumed).unwrap();
    assert_eq!(resumed.verdict.map(|v| v.0), Some(Outcome::Succeeded));
    assert_eq!(resumed.traffic_on(), [Green]);
    let started: Vec<_> = resumed.log.iter().filter(|l| l.starts_with("start green")).collect();
    assert_eq!(started.len(), 2, "replica 1 is already replaced: {:?}", resumed.log);

    let mut aborted = world.clone();
    run(s, Action::Abort, &mut aborted).unwrap();
    assert_eq!(aborted.verdict.map(|v| v.0), Some(Outcome::Aborted));
    assert_eq!(aborted.traffic_on(), [Blue]);
    assert_eq!(aborted.running(), [(Blue, 1), (Blue, 2), (Blue, 3)], "the stopped old replica came back");
    assert!(aborted.present().iter().all(|(c, _)| *c == Blue));
}
