//! Drains: replicas that leave traffic are stopped only after a drain step, whose outcome (the
//! connections still open at its end) the machine keeps for the report, in every flow.

use super::*;

fn long(world: &mut World, color: Color, index: u32, open: u32) {
    world.open.insert((color, index), open);
}

/// The labels of `log` from `from` on, without the hooks (which do nothing here).
fn steps_after<'a>(log: &'a [String], from: &str) -> Vec<&'a str> {
    let at = log.iter().position(|l| l == from).unwrap_or_else(|| panic!("no {from} in {log:?}"));
    log[at..].iter().map(String::as_str).filter(|l| !l.starts_with("hook")).collect()
}

#[test]
fn blue_green_stops_the_old_color_after_keep_warm_and_a_drain_that_reports_what_was_cut() {
    let mut s = settings(Strategy::BlueGreen, 2);
    (s.keep_warm, s.drain) = (Duration::from_secs(10), Duration::from_secs(30));
    // Nothing open: the drain ends at once, nothing cut.
    let mut world = World::live(Blue, 2, V1);
    let drains = run_drained(s.clone(), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!(
        steps_after(&world.log, "switch"),
        ["switch", "verify", "record", "keep warm", "drain blue", "stop blue"]
    );
    assert_eq!(drains, [Drained::new(Blue, 2, Some(0), Duration::ZERO, Duration::from_secs(20))]);
    assert_eq!(drains[0].cut, Some(false));
    assert_eq!(world.running(), [(Green, 1), (Green, 2)]);

    // A stream on blue 2 outlives the deadline (which counts from the switch: keep-warm's 10 s
    // are part of drain's 30 s): 1 still open, cut when blue stops.
    let mut world = World::live(Blue, 2, V1);
    long(&mut world, Blue, 2, 1);
    let drains = run_drained(s.clone(), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!(drains, [Drained::new(Blue, 2, Some(1), Duration::from_secs(20), Duration::from_secs(20))]);
    assert_eq!(drains[0].cut, Some(true));
    assert!(drains[0].to_string().contains("1 connection(s) still open"), "{}", drains[0]);
    assert_eq!(world.running(), [(Green, 1), (Green, 2)]);

    // keep_warm longer than drain: the deadline has passed when keep-warm ends; one count.
    (s.keep_warm, s.drain) = (Duration::from_secs(60), Duration::from_secs(30));
    let mut world = World::live(Blue, 2, V1);
    let drains = run_drained(s, Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!(drains[0].deadline_ms, 0);
}

#[test]
fn connections_that_cannot_be_counted_are_reported_unknown() {
    let mut world = World::live(Blue, 2, V1);
    world.uncountable = true;
    let drains = run_drained(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!((drains[0].open, drains[0].cut), (None, None));
    assert!(drains[0].to_string().contains("unknown"), "{}", drains[0]);
    assert_eq!(world.running(), [(Green, 1), (Green, 2)], "unknown counts still stop the old color");
}

#[test]
fn an_old_color_another_run_took_over_during_keep_warm_is_neither_drained_nor_stopped() {
    let world = World::live(Blue, 2, V1);
    let mut machine =
        Machine::new(settings(Strategy::BlueGreen, 2), &Action::Deploy(image(V2)), world.observed()).unwrap();
    let mut world = world;
    let mut last = Ok(Done::Done);
    while let Some(step) = machine.next(last) {
        last = match step {
            Step::KeepWarm { .. } => {
                world.log.push("keep warm".into());
                Ok(Done::LeftRunning)
            }
            step => world.apply(step),
        };
    }
    assert!(!world.log.iter().any(|l| l == "drain blue" || l == "stop blue"), "{:?}", world.log);
    assert!(machine.drains().is_empty());
    assert_eq!(world.running(), [(Blue, 1), (Blue, 2), (Green, 1), (Green, 2)]);
}

#[test]
fn a_color_with_nothing_running_is_not_reported_as_drained() {
    // Blue was stopped meanwhile (by hand): the drain finds no replica running, and the
    // report says nothing of it.
    let mut world = World::live(Blue, 2, V1);
    let mut machine =
        Machine::new(settings(Strategy::BlueGreen, 2), &Action::Deploy(image(V2)), world.observed()).unwrap();
    let mut last = Ok(Done::Done);
    while let Some(step) = machine.next(last) {
        last = match step {
            Step::Drain { color, deadline, .. } => {
                Ok(Done::Drained(Drained::new(color, 0, Some(0), Duration::ZERO, deadline)))
            }
            step => world.apply(step),
        };
    }
    assert!(machine.drains().is_empty(), "{:?}", machine.drains());
}

#[test]
fn rolling_drains_each_old_replica_before_stopping_it_in_either_order() {
    for order in [Order::StartFirst, Order::StopFirst] {
        let mut s = settings(Strategy::Rolling, 3);
        s.update_config = UpdateConfig { parallelism: 1, order, ..UpdateConfig::default() };
        let mut world = World::live(Blue, 3, V1);
        long(&mut world, Blue, 2, 2);
        let drains = run_drained(s, Action::Deploy(image(V2)), &mut world).unwrap();
        let drained: Vec<_> = drains.iter().map(|d| (d.color, d.replicas, d.open)).collect();
        assert_eq!(drained, [(Blue, 1, Some(0)), (Blue, 1, Some(2)), (Blue, 1, Some(0))], "{order:?}");
        // Every stop of an old replica comes right after its drain.
        for (i, label) in world.log.iter().enumerate().filter(|(_, l)| l.starts_with("stop blue")) {
            assert_eq!(world.log[i - 1], "drain blue", "{order:?}: {:?}", world.log);
            assert!(label.ends_with("x1") || label == "stop blue", "{label}");
        }
        assert_eq!(world.traffic_on(), [Green], "{order:?}");
    }
}

#[test]
fn the_ways_back_drain_the_color_that_leaves_traffic() {
    // A failed verify: traffic back on blue, green drained, then removed.
    let mut world = World::live(Blue, 2, V1).failing(&["verify"]);
    long(&mut world, Green, 1, 1);
    let drains = run_drained(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!(steps_after(&world.log, "switch back"), ["switch back", "drain green", "remove green", "record"]);
    assert_eq!(drains.iter().map(|d| (d.color, d.open)).collect::<Vec<_>>(), [(Green, Some(1))]);

    // imgctl rollback: the color rolled back from is drained, then stopped and kept.
    let mut world = World::live(Blue, 2, V1);
    run(settings(Strategy::BlueGreen, 2), Action::Deploy(image(V2)), &mut world).unwrap();
    world.history.push(Past { image: image(V2).reference(), digest: V2.into(), succeeded: true });
    world.log.clear();
    let drains = run_drained(settings(Strategy::BlueGreen, 2), Action::Rollback { to: None }, &mut world).unwrap();
    assert_eq!(steps_after(&world.log, "switch"), ["switch", "verify", "record", "drain green", "stop green"]);
    assert_eq!(drains.iter().map(|d| (d.color, d.replicas)).collect::<Vec<_>>(), [(Green, 2)]);
    assert_eq!(world.running(), [(Blue, 1), (Blue, 2)]);

    // A canary's last step is the switch: the old color drains like a blue/green one.
    let mut world = World::live(Blue, 2, V1);
    let drains = run_drained(settings(Strategy::Canary, 2), Action::Deploy(image(V2)), &mut world).unwrap();
    assert_eq!(drains.iter().map(|d| d.color).collect::<Vec<_>>(), [Blue]);
    assert_eq!(world.running(), [(Green, 1), (Green, 2)]);
}

#[test]
fn the_dry_run_names_the_drain_and_its_deadline() {
    let mut s = settings(Strategy::BlueGreen, 2);
    (s.keep_warm, s.drain) = (Duration::from_secs(5), Duration::from_secs(30));
    let world = World::live(Blue, 2, V1);
    let steps = Machine::new(s, &Action::Deploy(image(V2)), world.observed()).unwrap().preview();
    let lines: Vec<String> = steps.iter().map(ToString::to_string).collect();
    assert!(
        lines.iter().any(|l| l == "drain blue replicas all: until their open connections end, at most 25s"),
        "{lines:#?}"
    );
}
