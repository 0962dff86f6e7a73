//! Blue/green, canary and `--no-auto-promote`, through every failure path.

use super::*;
#[test]
fn blue_green_every_failure_path() {
    let both = &[(Blue, 1), (Blue, 2), (Green, 1), (Green, 2)][..];
    let blue = &[(Blue, 1), (Blue, 2)][..];
    let green = &[(Green, 1), (Green, 2)][..];
    let cases = [
        Case {
            name: "succeeds",
            fail: &[],
            outcome: Outcome::Succeeded,
            failure: None,
            traffic: &[Green],
            running: green,
            present: both,
        },
        Case {
            name: "pre-deploy hook fails",
            fail: &["hook pre-deploy"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "pull fails",
            fail: &["pull"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "health gate fails",
            fail: &["start green x2"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "pre-switch hook fails",
            fail: &["hook pre-switch"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "reload fails",
            fail: &["switch"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "verify fails",
            fail: &["verify"],
            outcome: Outcome::Failed,
            failure: Some("switched-back"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "post-switch hook fails",
            fail: &["hook post-switch"],
            outcome: Outcome::Failed,
            failure: Some("switched-back"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "switch back fails",
            fail: &["verify", "switch back"],
            outcome: Outcome::Failed,
            failure: Some("switch-back-failed"),
            traffic: &[Green],
            running: both,
            present: both,
        },
        Case {
            name: "post-deploy hook fails",
            fail: &["hook post-deploy"],
            outcome: Outcome::Succeeded,
            failure: None,
            traffic: &[Green],
            running: green,
            present: both,
        },
        Case {
            name: "stopping the old color fails",
            fail: &["stop blue"],
            outcome: Outcome::Succeeded,
            failure: None,
            traffic: &[Green],
            running: both,
            present: both,
        },
    ];
    for case in &cases {
        let mut world = World::live(Blue, 2, V1).failing(case.fail);
        run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut world).unwrap();
        check(case, &world);
    }
}

#[test]
fn a_first_deploy_that_fails_after_its_switch_keeps_the_only_version() {
    let mut world = World::default().failing(&["verify"]);
    run(settings(Strategy::BlueGreen, 1), Action::Deploy(image(V1)), &mut world).unwrap();
    let case = Case {
        name: "first deploy",
        fail: &[],
        outcome: Outcome::Failed,
        failure: Some("first-deploy"),
        traffic: &[Blue],
        running: &[(Blue, 1)],
        present: &[(Blue, 1)],
    };
    check(&case, &world);
}

#[test]
fn canary_every_failure_path() {
    let both = &[(Blue, 1), (Blue, 2), (Green, 1), (Green, 2)][..];
    let blue = &[(Blue, 1), (Blue, 2)][..];
    let green = &[(Green, 1), (Green, 2)][..];
    let cases = [
        Case {
            name: "succeeds",
            fail: &[],
            outcome: Outcome::Succeeded,
            failure: None,
            traffic: &[Green],
            running: green,
            present: both,
        },
        Case {
            name: "first step's switch fails",
            fail: &["canary 10%"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "second step's switch fails",
            fail: &["canary 50%"],
            outcome: Outcome::Failed,
            failure: Some("switched-back"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "a pause's watch fails",
            fail: &["pause at 10%"],
            outcome: Outcome::Failed,
            failure: Some("switched-back"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "the last switch fails",
            fail: &["switch"],
            outcome: Outcome::Failed,
            failure: Some("switched-back"),
            traffic: &[Blue],
            running: blue,
            present: blue,
        },
        Case {
            name: "switch back fails",
            fail: &["pause at 50%", "switch back"],
            outcome: Outcome::Failed,
            failure: Some("switch-back-failed"),
            traffic: &[Blue, Green],
            running: both,
            present: both,
        },
    ];
    for case in &cases {
        let mut world = World::live(Blue, 2, V1).failing(case.fail);
        run(settings(Strategy::Canary, 2), Action::Deploy(image(V2)), &mut world).unwrap();
        check(case, &world);
    }
}

#[test]
fn a_canary_step_without_a_pause_waits_and_continue_goes_on_or_abort_drops_it() {
    let mut s = settings(Strategy::Canary, 2);
    s.canary_steps[0].pause = None;
    let mut world = World::live(Blue, 2, V1);
    run(s.clone(), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!(world.verdict.map(|v| v.0), Some(Outcome::Paused));
    assert_eq!(world.traffic_on(), [Blue, Green], "10% on green");
    assert!(matches!(world.traffic.as_ref().unwrap().2, Phase::Canary { step: 0, weight: 10, .. }));

    let mut resumed = world.clone();
    resumed.log.clear();
    run(s.clone(), Action::Continue, &mut resumed).unwrap();
    assert_eq!(resumed.verdict.map(|v| v.0), Some(Outcome::Succeeded));
    assert_eq!(resumed.traffic_on(), [Green]);
    assert!(resumed.log.iter().any(|s| s == "canary 50%") && !resumed.log.iter().any(|s| s == "canary 10%"));

    let mut aborted = world.clone();
    run(s.clone(), Action::Abort, &mut aborted).unwrap();
    assert_eq!(aborted.verdict.map(|v| v.0), Some(Outcome::Aborted));
    assert_eq!((aborted.traffic_on(), aborted.present()), (vec![Blue], vec![(Blue, 1), (Blue, 2)]));

    // Nothing in flight any more: both are refused, and change nothing.
    for action in [Action::Continue, Action::Abort] {
        let refused = run(s.clone(), action, &mut aborted.clone()).unwrap_err();
        assert!(matches!(refused, Refusal::NothingInFlight { .. }), "{refused}");
    }
    // A deploy while one is in flight is refused.
    let refused = run(s, Action::Deploy(image(V2)), &mut world.clone()).unwrap_err();
    assert!(matches!(refused, Refusal::InFlight { .. }), "{refused}");
}

#[test]
fn no_auto_promote_holds_the_switch_and_a_failure_then_removes_the_new_color() {
    let mut s = settings(Strategy::BlueGreen, 2);
    s.no_auto_promote = true;
    let mut world = World::live(Blue, 2, V1);
    run(s.clone(), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!(world.verdict.map(|v| v.0), Some(Outcome::Paused));
    assert_eq!(world.traffic_on(), [Blue]);
    assert_eq!(world.running().len(), 4, "green waits, healthy");

    let mut failing = world.clone().failing(&["verify"]);
    s.no_auto_promote = false;
    run(s.clone(), Action::Continue, &mut failing).unwrap();
    assert_eq!(failing.verdict.map(|v| v.1), Some(Some("switched-back")));
    assert_eq!((failing.traffic_on(), failing.present()), (vec![Blue], vec![(Blue, 1), (Blue, 2)]));

    let refused = run(settings(Strategy::BlueGreen, 1), Action::Deploy(image(V1)), &mut World::default());
    assert!(refused.is_ok(), "a first deploy without --no-auto-promote runs");
    let mut first = settings(Strategy::BlueGreen, 1);
    first.no_auto_promote = true;
    let refused = run(first, Action::Deploy(image(V1)), &mut World::default()).unwrap_err();
    assert!(matches!(refused, Refusal::NoLiveVersion(_)));
}
