//! Rollback, repair, a target that rolls by itself, and the dry run.

use super::*;
#[test]
fn rollback_to_the_idle_color_and_when_its_check_fails() {
    // v2 live on green, v1 stopped on blue (kept by the last deploy).
    let mut world = World::live(Green, 2, V2);
    world.history.insert(0, Past { image: image(V1).reference(), digest: V1.into(), succeeded: true });
    for i in 1..=2 {
        world.replicas.insert((Blue, i), Rep { digest: V1.into(), running: false });
    }
    let mut ok = world.clone();
    run(settings(Strategy::BlueGreen, 2), Action::Rollback { to: None }, &mut ok).unwrap();
    assert_eq!(ok.verdict, Some((Outcome::Succeeded, None, Some(Blue))));
    assert_eq!(ok.traffic_on(), [Blue]);
    assert_eq!(ok.running(), [(Blue, 1), (Blue, 2)], "green is stopped, kept for a roll forward");
    assert!(!ok.log.iter().any(|l| l.starts_with("pull")), "the idle color is reused: {:?}", ok.log);

    let mut failing = world.clone().failing(&["verify"]);
    run(settings(Strategy::BlueGreen, 2), Action::Rollback { to: None }, &mut failing).unwrap();
    assert_eq!(failing.verdict.map(|v| v.1), Some(Some("switched-back")));
    assert_eq!(failing.traffic_on(), [Green]);
    assert_eq!(failing.running(), [(Green, 1), (Green, 2)]);

    // Without an idle color the previous good digest from the history is deployed into it.
    let mut from_history = world.clone();
    from_history.replicas.retain(|(c, _), _| *c == Green);
    run(settings(Strategy::BlueGreen, 2), Action::Rollback { to: None }, &mut from_history).unwrap();
    assert_eq!(from_history.traffic_on(), [Blue]);
    assert!(from_history.log.iter().any(|l| l == &format!("pull {V1}")), "{:?}", from_history.log);
    assert_eq!(from_history.replicas[&(Blue, 1)].digest, V1);

    let never = run(settings(Strategy::BlueGreen, 2), Action::Rollback { to: None }, &mut World::default());
    assert!(matches!(never, Err(Refusal::NothingToRollBack { .. })));
}

#[test]
fn repair_starts_what_the_switch_points_at_and_re_points_it() {
    let mut world = World::live(Blue, 2, V1);
    world.replicas.get_mut(&(Blue, 2)).unwrap().running = false;
    run(settings(Strategy::BlueGreen, 2), Action::Repair, &mut world).unwrap();
    assert_eq!(world.log, ["start blue", "re-point", "record"]);
    assert_eq!(world.running(), [(Blue, 1), (Blue, 2)]);
    assert_eq!(world.traffic_on(), [Blue]);

    // A deploy after a reboot does the same before its own work.
    let mut rebooted = World::live(Blue, 2, V1);
    for rep in rebooted.replicas.values_mut() {
        rep.running = false;
    }
    run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut rebooted).unwrap();
    assert_eq!(&rebooted.log[..2], ["start blue", "re-point"]);
    assert_eq!(rebooted.traffic_on(), [Green]);
}

#[test]
fn a_target_that_rolls_by_itself_deploys_and_rolls_back_from_the_history() {
    let mut s = settings(Strategy::Rolling, 2);
    s.rolls_itself = true;
    let mut world = World { rolling_digest: Some(V1.into()), ..World::default() };
    world.history.push(Past { image: image(V1).reference(), digest: V1.into(), succeeded: true });
    run(s.clone(), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!(world.log, ["hook pre-deploy", format!("pull {V2}").as_str(), "update", "record", "hook post-deploy"]);
    assert_eq!(world.rolling_digest.as_deref(), Some(V2));
    world.history.push(Past { image: image(V2).reference(), digest: V2.into(), succeeded: true });

    // swarm rolled a bad update back itself: the on-rollback hook runs, the deploy failed.
    let mut machine = Machine::new(s.clone(), &Action::Deploy(image(V1)), world.observed()).unwrap();
    let mut log = Vec::new();
    let mut last = Ok(Done::Done);
    let mut verdict = None;
    while let Some(step) = machine.next(last) {
        log.push(step.label());
        last = match step {
            Step::Update { .. } => {
                Err(StepError::Target(TargetError::Update(UpdateFailure::RolledBack { why: "unhealthy".into() })))
            }
            Step::Record(v) => {
                verdict = Some((v.outcome, v.failure.as_ref().map(RunFailure::kind)));
                Ok(Done::Done)
            }
            _ => Ok(Done::Done),
        };
    }
    assert_eq!(log, ["hook pre-deploy", format!("pull {V1}").as_str(), "update", "hook on-rollback", "record"]);
    assert_eq!(verdict, Some((Outcome::Failed, Some("update"))));

    // Rollback goes to the previous good digest of the history, not to "the spec before".
    let mut back = world.clone();
    run(s.clone(), Action::Rollback { to: None }, &mut back).unwrap();
    assert_eq!(back.rolling_digest.as_deref(), Some(V1), "{:?}", back.log);
    // Without a history: the target's own rollback.
    let mut bare = World { rolling_digest: Some(V2.into()), ..World::default() };
    run(s.clone(), Action::Rollback { to: None }, &mut bare).unwrap();
    assert!(bare.log.iter().any(|l| l == "rollback"), "{:?}", bare.log);
    // Nothing to continue or abort.
    assert!(matches!(run(s, Action::Continue, &mut world.clone()), Err(Refusal::NothingInFlight { .. })));
}

#[test]
fn the_dry_run_is_the_success_path_of_the_same_machine() {
    let world = World::live(Blue, 2, V1);
    let preview: Vec<String> =
        Machine::new(settings(Strategy::BlueGreen, 2), &Action::Deploy(image(V2)), world.observed())
            .unwrap()
            .preview()
            .iter()
            .map(Step::label)
            .collect();
    let mut executed = world.clone();
    run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut executed).unwrap();
    assert_eq!(preview, executed.log);
    assert_eq!(
        preview,
        [
            "hook pre-deploy",
            &format!("pull {V2}"),
            "start green x2",
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
}

#[test]
fn what_a_rollback_starts_is_named_for_the_signature_gate_and_an_abort_starts_nothing() {
    let starts = |s: Settings, action: Action, world: &World| {
        let machine = Machine::new(s, &action, world.observed()).unwrap();
        match machine.starts() {
            Starts::Nothing => "nothing".to_owned(),
            Starts::Image { image, digest } => format!("{image} {digest}"),
            Starts::TargetsPrevious => "the target's previous".to_owned(),
        }
    };
    let v1 = format!("{} {V1}", image(V1).reference());
    // The idle color resumed, the history's digest started, and --to.
    let mut world = World::live(Green, 2, V2);
    world.history.insert(0, Past { image: image(V1).reference(), digest: V1.into(), succeeded: true });
    for i in 1..=2 {
        world.replicas.insert((Blue, i), Rep { digest: V1.into(), running: false });
    }
    let blue_green = settings(Strategy::BlueGreen, 2);
    assert_eq!(starts(blue_green.clone(), Action::Rollback { to: None }, &world), v1, "resumed");
    assert_eq!(starts(blue_green.clone(), Action::Rollback { to: Some(V1.parse().unwrap()) }, &world), v1, "--to");
    let mut from_history = world.clone();
    from_history.replicas.retain(|(c, _), _| *c == Green);
    assert_eq!(starts(blue_green.clone(), Action::Rollback { to: None }, &from_history), v1, "pulled, started");

    // A rollback during a canary is its abort: back to what serves, nothing new started.
    let mut canary = World::live(Blue, 1, V1);
    canary.replicas.insert((Green, 1), Rep { digest: V2.into(), running: true });
    let phase = Phase::Canary { color: Green, image: image(V2).reference(), digest: V2.into(), step: 0, weight: 10 };
    canary.traffic = Some((vec![(Blue, 1, 90), (Green, 1, 10)], Blue, phase, V1.into()));
    assert_eq!(starts(settings(Strategy::Canary, 1), Action::Rollback { to: None }, &canary), "nothing");

    // A target that rolls by itself: the history's digest, else its own previous spec.
    let mut rolling = settings(Strategy::Rolling, 2);
    rolling.rolls_itself = true;
    let mut world = World { rolling_digest: Some(V2.into()), ..World::default() };
    let bare = world.clone();
    world.history.push(Past { image: image(V1).reference(), digest: V1.into(), succeeded: true });
    world.history.push(Past { image: image(V2).reference(), digest: V2.into(), succeeded: true });
    assert_eq!(starts(rolling.clone(), Action::Rollback { to: None }, &world), v1);
    assert_eq!(starts(rolling, Action::Rollback { to: None }, &bare), "the target's previous");
}
