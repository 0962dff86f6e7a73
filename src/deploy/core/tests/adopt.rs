//! Taking over what `docker-compose up -d` runs: the first deploy, `--adopt`, the way back to
//! compose's containers, the next deploy, and every refusal.

use super::*;
use crate::deploy::core::AdoptRefusal;

/// compose runs `n` replicas of V1 in project `app`; imgctl has no state for the service.
fn composed(n: u32) -> World {
    let mut world = World::default();
    for i in 1..=n {
        world.replicas.insert((ADOPTED, i), Rep { digest: V1.into(), running: true });
        world.from_compose.insert((ADOPTED, i));
    }
    world.compose = Some(seen((1..=n).map(|i| container(&format!("app_web_{i}"), "app")).collect()));
    world
}

fn seen(containers: Vec<ComposeContainer>) -> ComposeSeen {
    ComposeSeen {
        project: "app".into(),
        project_from: "the folder name of /srv/app".into(),
        containers,
        upstream_missing: None,
    }
}

fn container(name: &str, project: &str) -> ComposeContainer {
    ComposeContainer {
        name: name.into(),
        project: project.into(),
        state: ContainerState::Running,
        image: "127.0.0.1:5000/web:v1".into(),
        pinned: Some(format!("127.0.0.1:5000/web@{V1}")),
        named: false,
        reachable: true,
    }
}

#[test]
fn the_first_deploy_takes_over_composes_containers_and_stops_them_after_the_switch() {
    let blue = &[(Blue, 1), (Blue, 2)][..];
    let green = &[(Green, 1), (Green, 2)][..];
    let both = &[(Blue, 1), (Blue, 2), (Green, 1), (Green, 2)][..];
    let cases = [
        Case {
            name: "succeeds",
            fail: &[],
            outcome: Outcome::Succeeded,
            failure: None,
            traffic: &[Green],
            // compose's containers are stopped, not removed: a rollback starts them again.
            running: green,
            present: both,
        },
        Case {
            name: "health gate fails",
            fail: &["start green x2"],
            outcome: Outcome::Failed,
            failure: Some("before-switch"),
            // Nothing was written to the switch; compose's containers serve as before.
            traffic: &[],
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
    ];
    for case in cases {
        let mut world = composed(2).failing(case.fail);
        run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut world).unwrap();
        check(&case, &world);
        assert!(
            !world.log.iter().any(|s| s == "remove blue"),
            "{}: compose's containers removed: {:?}",
            case.name,
            world.log
        );
    }
}

#[test]
fn the_move_says_what_it_takes_over_and_records_it() {
    let world = composed(1);
    let mut machine =
        Machine::new(settings(Strategy::BlueGreen, 1), &Action::Deploy(image(V2)), world.observed()).unwrap();
    let notes = machine.take_notes();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("taking over compose project app: app_web_1 (127.0.0.1:5000/web@sha256:1111")
                && n.contains("drained and stopped (docker stop, not removed)")
                && n.contains("the next deploy removes them")),
        "{notes:?}"
    );
    let steps = machine.preview();
    let labels: Vec<String> = steps.iter().map(Step::label).collect();
    assert_eq!(
        labels,
        [
            "hook pre-deploy",
            "pull sha256:2222222222222222222222222222222222222222222222222222222222222222",
            "start green x1",
            "hook pre-switch",
            "switch",
            "verify",
            "hook post-switch",
            "record",
            "keep warm",
            "drain blue",
            "stop blue",
            "hook post-deploy"
        ]
    );
    let Some(Step::Record(verdict)) = steps.iter().find(|s| matches!(s, Step::Record(_))) else { unreachable!() };
    assert_eq!((verdict.previous.clone(), verdict.adopted.as_deref()), (Some((Blue, V1.to_owned())), Some("app")));
}

#[test]
fn rollback_after_the_move_starts_composes_containers_again_and_the_next_deploy_removes_them() {
    let mut world = composed(2);
    run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut world).unwrap();
    world.history.push(Past { image: image(V2).reference(), digest: V2.into(), succeeded: true });
    world.log.clear();

    run(settings(Strategy::BlueGreen, 2), Action::Rollback { to: None }, &mut world).unwrap();
    assert_eq!(world.verdict.unwrap().0, Outcome::Succeeded, "{:?}", world.log);
    assert_eq!(world.traffic_on(), [Blue]);
    assert_eq!(world.running(), [(Blue, 1), (Blue, 2)]);
    assert_eq!(world.from_compose.len(), 2, "the containers serving are compose's own");
    assert!(world.log.contains(&"start blue".to_owned()) && !world.log.iter().any(|s| s.starts_with("pull")));
    assert_eq!(world.recorded_image, format!("127.0.0.1:5000/web@{V1}"), "compose's image, pinned, is recorded");

    // Forward again, then a deploy into compose's color: they go, like any idle color.
    run(settings(Strategy::BlueGreen, 2), Action::Rollback { to: None }, &mut world).unwrap();
    assert_eq!(world.traffic_on(), [Green]);
    let v3 = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(v3)), &mut world).unwrap();
    assert_eq!(world.verdict.unwrap().0, Outcome::Succeeded, "{:?}", world.log);
    assert_eq!((world.traffic_on(), world.from_compose.len()), (vec![Blue], 0), "{:?}", world.log);
    assert_eq!(world.replicas[&(Blue, 1)].digest, v3);
}

#[test]
fn a_canary_or_rolling_move_from_compose() {
    let mut canary = composed(2);
    run(settings(Strategy::Canary, 2), Action::Deploy(image(V2)), &mut canary).unwrap();
    assert!(canary.log.iter().any(|s| s == "canary 10%"), "{:?}", canary.log);
    assert_eq!((canary.traffic_on(), canary.running()), (vec![Green], vec![(Green, 1), (Green, 2)]));

    // compose's container numbers are no batches: the move is one switch.
    let world = composed(2);
    let mut machine =
        Machine::new(settings(Strategy::Rolling, 2), &Action::Deploy(image(V2)), world.observed()).unwrap();
    assert!(machine.take_notes().iter().any(|n| n.contains("one switch (blue/green)")));
    let mut rolling = composed(2);
    run(settings(Strategy::Rolling, 2), Action::Deploy(image(V2)), &mut rolling).unwrap();
    assert!(rolling.log.contains(&"start green x2".to_owned()), "{:?}", rolling.log);
    assert_eq!(rolling.traffic_on(), [Green]);
}

#[test]
fn adopt_points_the_switch_at_composes_containers_and_changes_nothing_else() {
    let mut world = composed(2);
    run(settings(Strategy::BlueGreen, 2), Action::Adopt, &mut world).unwrap();
    assert_eq!(world.log, ["adopt", "record"]);
    assert_eq!(world.verdict, Some((Outcome::Succeeded, None, Some(Blue))));
    assert_eq!((world.traffic_on(), world.running()), (vec![Blue], vec![(Blue, 1), (Blue, 2)]));
    assert_eq!(world.traffic.as_ref().unwrap().3, V1, "the live digest is compose's");

    // Then an ordinary deploy switches away from them.
    run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!((world.traffic_on(), world.from_compose.len()), (vec![Green], 2));
    assert_eq!(world.running(), [(Green, 1), (Green, 2)]);

    let refused = run(settings(Strategy::BlueGreen, 2), Action::Adopt, &mut world).unwrap_err();
    assert_eq!(refused, Refusal::AlreadyDeployed("web".into()));
    let mut nothing = World { compose: Some(seen(Vec::new())), ..World::default() };
    let refused = run(settings(Strategy::BlueGreen, 1), Action::Adopt, &mut nothing).unwrap_err();
    assert!(refused.to_string().contains("no running container to take over in compose project app"), "{refused}");
}

// Before the move nginx proxies to compose's port; with no upstream file of imgctl's yet, a
// switch would move no traffic, and compose's containers would be stopped under it.
#[test]
fn a_move_with_no_upstream_file_yet_is_refused_and_adopt_writes_it() {
    let mut world = composed(2);
    world.compose.as_mut().unwrap().upstream_missing = Some("/etc/nginx/conf.d/web.upstream".into());
    let refused = run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut world).unwrap_err();
    assert!(
        matches!(&refused, Refusal::Adopt(AdoptRefusal::UpstreamMissing { path, .. }) if path.ends_with("web.upstream")),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("--adopt"), "{refused}");
    assert!(world.log.is_empty(), "nothing ran: {:?}", world.log);
    run(settings(Strategy::BlueGreen, 2), Action::Adopt, &mut world).unwrap();
    assert_eq!(world.log, ["adopt", "record"]);
}

#[test]
fn what_cannot_be_taken_over_safely_is_refused_before_anything_changes() {
    let stopped = ComposeContainer { state: ContainerState::Exited, ..container("app_web_1", "app") };
    let cases: Vec<(&str, Vec<ComposeContainer>, &str)> = vec![
        (
            "another project",
            vec![container("shop_web_1", "shop"), container("old_web_1", "old")],
            "compose runs web in project old, shop, and imgctl takes its project to be app (from the folder name of /srv/app): name the project with -p",
        ),
        ("a stopped container only", vec![stopped.clone()], "app_web_1 of web (project app) is exited"),
        (
            "one of two stopped",
            vec![container("app_web_2", "app"), stopped],
            "app_web_1 of web (project app) is exited",
        ),
        (
            "container_name",
            vec![ComposeContainer { named: true, ..container("web", "app") }],
            "web has a container_name",
        ),
        (
            "built here",
            vec![ComposeContainer { pinned: None, image: "web:dev".into(), ..container("app_web_1", "app") }],
            "runs web:dev, which no registry holds",
        ),
        (
            "half updated",
            vec![
                container("app_web_1", "app"),
                ComposeContainer { pinned: Some(format!("127.0.0.1:5000/web@{V2}")), ..container("app_web_2", "app") },
            ],
            "run different images",
        ),
        (
            "no published port",
            vec![ComposeContainer { reachable: false, ..container("app_web_1", "app") }],
            "app_web_1 publishes no port for web's port",
        ),
    ];
    for (name, containers, says) in cases {
        let mut world = World { compose: Some(seen(containers)), ..World::default() };
        for action in [Action::Deploy(image(V2)), Action::Adopt] {
            let refused = run(settings(Strategy::BlueGreen, 1), action, &mut world).unwrap_err();
            assert!(matches!(refused, Refusal::Adopt(_)), "{name}: {refused:?}");
            assert!(refused.to_string().contains(says), "{name}: {refused}");
            assert!(world.log.is_empty(), "{name}: {:?}", world.log);
        }
    }
    // Stopped containers of other projects are not in the way.
    let old = ComposeContainer { state: ContainerState::Exited, ..container("old_web_1", "old") };
    assert_eq!(super::super::adopt::decide("web", Some(&seen(vec![old]))), Ok(None));
    assert!(matches!(
        super::super::adopt::decide("web", Some(&seen(vec![container("x_web_1", "x")]))),
        Err(AdoptRefusal::OtherProject { .. })
    ));
}

#[test]
fn with_traffic_state_composes_containers_are_not_taken_over_again() {
    // A service imgctl deploys: compose's containers (started again by hand) do not change
    // the plan; the deploy goes from the live color as always.
    let mut world = World::live(Green, 1, V1);
    world.compose = Some(seen(vec![container("app_web_1", "app")]));
    run(settings(Strategy::BlueGreen, 1), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!((world.traffic_on(), world.verdict.unwrap().0), (vec![Blue], Outcome::Succeeded));
}
