//! The harness's own check of the swarm peers: a loopback-only single-node swarm, busybox web
//! services pulled from the htpasswd registry with registry auth, and nginx in a container on
//! the swarm's overlay network in front of them. The two tests run in parallel threads and
//! share one swarm: the first to start initializes it, the last to finish leaves it.
#![allow(clippy::print_stderr)] // the tallies, for whoever reads the test log

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::load::{self, Load, Mode};
use common::nginx_container::{NginxContainer, ProxyImage, Resolution};
use common::swarm::{Swarm, WebService};
use common::web::WebImages;
use common::{assert_success, stderr};

const CONVERGE: Duration = Duration::from_secs(90);

fn run_argv(argv: &[String]) -> std::process::Output {
    Command::new(&argv[0]).args(&argv[1..]).output().unwrap()
}

/// The upstream addresses in nginx's access log that answered 200.
fn upstreams(nginx: &NginxContainer) -> BTreeSet<String> {
    nginx
        .access_log()
        .lines()
        .filter_map(|line| line.strip_prefix("200 "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn swarm_service_behind_nginx_follows_a_rolling_update_without_failed_requests() {
    // Declared first, dropped last: the swarm's tasks are gone before its images are removed.
    let web = WebImages::build("swarm-rolling");
    let swarm = Swarm::start();
    let proxy = ProxyImage::build();

    let name = swarm.service_name("web");
    swarm.create_service(&web, &WebService::new(&name, &web.v1.image));
    let took = swarm.wait_converged(&name, &web.v1.image, 2, CONVERGE);
    eprintln!("{name}: 2 healthy replicas of v1 after {took:?}");
    assert_eq!(swarm.running_images(&name), vec![web.v1.image.clone(); 2]);

    let nginx = NginxContainer::start(&swarm, &proxy, "web", Resolution::PerRequest);
    assert!(nginx.addr().ip().is_loopback());
    let placeholder = load::get(nginx.addr(), "/").unwrap();
    assert_eq!(placeholder.status, 502, "before the switch: {placeholder:?}");
    nginx.switch_to(&format!("tasks.{name}:8080"));
    assert_eq!(load::get(nginx.addr(), "/").unwrap().text(), "v1");

    let load = Load::start(nginx.addr(), "/", Mode::Close, 4);
    std::thread::sleep(Duration::from_secs(2));
    let tally = load.stop();
    eprintln!("Close load through the nginx container for 2 s: {tally:?}");
    assert!(tally.ok > 50, "only {} answers in 2 s: {tally:?}", tally.ok);
    assert_eq!(tally.failed(), 0, "{tally:?}\n{}", nginx.logs());
    assert_eq!(tally.by_body, BTreeMap::from([("v1".to_owned(), tally.ok)]));
    assert_eq!(upstreams(&nginx).len(), 2, "both replicas answer: {:?}", upstreams(&nginx));

    // The swarm replaces both tasks (start-first); nginx resolves tasks.NAME per request and
    // follows without a reload.
    let load = Load::start(nginx.addr(), "/", Mode::Close, 4);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let update = web
        .docker()
        .args(["service", "update", "--detach", "--with-registry-auth", "--image", &web.v2.image, &name])
        .output()
        .unwrap();
    assert_success(&update, "docker service update --image");
    let mut states = Vec::new();
    while swarm.update_state(&name).as_deref() != Some("completed") {
        let state = swarm.update_state(&name);
        if states.last() != Some(&state) {
            states.push(state);
        }
        assert!(started.elapsed() < CONVERGE, "no completed update in {CONVERGE:?}: {states:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    swarm.wait_converged(&name, &web.v2.image, 2, CONVERGE);
    std::thread::sleep(Duration::from_millis(500));
    let tally = load.stop();
    eprintln!("rolling update v1 -> v2 completed after {took:?} (states {states:?}); load: {tally:?}");
    assert_eq!(tally.failed(), 0, "{tally:?}\n{}", nginx.logs());
    assert_eq!(tally.by_body.keys().collect::<Vec<_>>(), ["v1", "v2"], "{tally:?}");
    assert_eq!(load::get(nginx.addr(), "/").unwrap().text(), "v2");
}

#[test]
fn swarm_service_created_by_the_cli_with_registry_auth_is_reached_by_name() {
    let web = WebImages::build("swarm-cli");
    let swarm = Swarm::start();
    let proxy = ProxyImage::build();

    // The CLI route: --with-registry-auth sends the throwaway config's credential along. (No
    // healthcheck: the CLI makes --health-cmd a CMD-SHELL and the image has no shell.)
    let name = swarm.service_name("cli");
    let create = web
        .docker()
        .args(["service", "create", "--detach", "--with-registry-auth", "--name", &name, "--replicas", "2"])
        .args(["--network", &swarm.network, "--endpoint-mode", "dnsrr", "--stop-grace-period", "1s", &web.v3.image])
        .output()
        .unwrap();
    assert_success(&create, "docker service create --with-registry-auth");
    swarm.wait_converged(&name, &web.v3.image, 2, CONVERGE);

    // Resolved at reload: a service that does not exist is refused by nginx -t.
    let nginx = NginxContainer::start(&swarm, &proxy, "web", Resolution::AtReload);
    let missing = swarm.service_name("missing");
    std::fs::write(nginx.upstream_file(), nginx.upstream_config(&format!("tasks.{missing}:8080"))).unwrap();
    let refused = run_argv(&nginx.test_command());
    assert!(!refused.status.success(), "nginx -t accepted an unknown service");
    assert!(stderr(&refused).contains("host not found in upstream"), "{}", stderr(&refused));

    nginx.switch_to(&format!("tasks.{name}:8080"));
    let load = Load::start(nginx.addr(), "/", Mode::Close, 4);
    std::thread::sleep(Duration::from_secs(2));
    let tally = load.stop();
    eprintln!("Close load through the nginx container for 2 s: {tally:?}");
    assert!(tally.ok > 50, "only {} answers in 2 s: {tally:?}", tally.ok);
    assert_eq!(tally.failed(), 0, "{tally:?}\n{}", nginx.logs());
    assert_eq!(tally.by_body, BTreeMap::from([("v3".to_owned(), tally.ok)]));
    assert_eq!(upstreams(&nginx).len(), 2, "both replicas answer: {:?}", upstreams(&nginx));
}
