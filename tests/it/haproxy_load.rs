//! The rest of issue 12's cases behind haproxy (the runtime-API switch), each under a load of
//! `Connection: close` clients and keep-alive clients running at once: a rolling update over
//! four replicas, a bad version, `imgctl rollback`, and a deploy killed with SIGKILL at the
//! switch and then run again. No request of either kind may fail, and traffic must end where
//! the run says. `deploy_haproxy.rs` has blue/green, canary and a haproxy restart.
#![allow(clippy::print_stderr)] // the tallies, for whoever reads the test log

use crate::common;
use crate::deploy_haproxy::{Proxy, Service};

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::haproxy::Haproxy;
use common::load::{Load, Mode};
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, stderr, stdout};

/// This file's `x-imgctl` keys besides `proxy`: short health checks (a gate that gives up
/// after `deadline`), a short warm period and drain, a hooks folder, and `extra`.
fn settings(deadline: &str, extra: &str) -> String {
    format!(
        "      health: {{path: /health, interval: 200ms, healthy_threshold: 2, deadline: {deadline}}}\n\
         \x20     keep_warm: 1s\n      drain: 2s\n      hooks: hooks\n{extra}"
    )
}

/// One client load of each kind through haproxy, started together.
struct Loads {
    close: Load,
    keep_alive: Load,
}

impl Loads {
    fn start(haproxy: &Haproxy) -> Self {
        let loads = Self {
            close: Load::start(haproxy.addr(), "/", Mode::Close, 3),
            keep_alive: Load::start(haproxy.addr(), "/", Mode::KeepAlive, 3),
        };
        std::thread::sleep(Duration::from_millis(300));
        loads
    }

    /// Stops both a moment after the last step, prints them, and asserts that no request of
    /// either kind failed, that every answer was one of `versions` and each of them was served,
    /// and that haproxy kept every keep-alive connection (none replaced, none retried).
    fn stop(self, what: &str, versions: &[&str]) {
        std::thread::sleep(Duration::from_millis(300));
        let (close, keep_alive) = (self.close.stop(), self.keep_alive.stop());
        for (kind, tally) in [("close", &close), ("keep-alive", &keep_alive)] {
            eprintln!(
                "{what}: {kind:10} ok {:5} failed {} reconnects {} retries {} {:?} {:?}",
                tally.ok,
                tally.failed(),
                tally.reconnects,
                tally.retries,
                tally.by_body,
                tally.errors
            );
        }
        for (kind, tally) in [("Connection: close", &close), ("keep-alive", &keep_alive)] {
            assert!(tally.ok > 50, "{what}, {kind}: too few requests to judge ({tally:?})");
            assert_eq!(tally.failed(), 0, "{what}, {kind}: failed requests: {:?}", tally.errors);
            let seen: Vec<&str> = tally.by_body.keys().map(String::as_str).collect();
            assert_eq!(seen, versions, "{what}, {kind}: versions served");
        }
        assert_eq!((keep_alive.reconnects, keep_alive.retries), (0, 0), "{what}: {keep_alive:?}");
    }
}

/// A registry with the images, a HOME logged in to it, and one service behind its own haproxy.
fn setup(prefix: &str) -> (WebImages, TestHome, Service) {
    let images = WebImages::build(prefix);
    let mut home = TestHome::new(prefix);
    images.login(&mut home);
    let service = Service::new(prefix, &images, &home, true);
    fs::create_dir_all(service.dir.join("hooks")).unwrap();
    (images, home, service)
}

fn haproxy(service: &Service) -> &Haproxy {
    let Proxy::Haproxy(haproxy) = &service.proxy else { unreachable!("the services here are behind haproxy") };
    haproxy
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", stdout(out), stderr(out)))
}

/// `imgctl status`: which color is live, and (color, state, digest) of every replica, sorted.
fn status(service: &Service, home: &TestHome) -> (String, Vec<(String, String, String)>) {
    let out = service.imgctl(home, &["status", &service.name, "-o", "json"]);
    assert_success(&out, "status");
    let status = report(&out);
    let mut replicas: Vec<_> = status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let field = |key: &str| r[key].as_str().unwrap_or_default().to_owned();
            (field("color"), field("state"), field("digest"))
        })
        .collect();
    replicas.sort();
    (status["live"].as_str().unwrap_or_default().to_owned(), replicas)
}

/// What `n` fresh requests through haproxy got: every replica in traffic, round robin.
fn serving_all(service: &Service, n: usize) -> Vec<String> {
    let mut answers: Vec<String> = (0..n).map(|_| service.serving()).collect();
    answers.dedup();
    answers
}

fn hook(service: &Service, name: &str, script: &str) {
    let path = service.dir.join("hooks").join(name);
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn rolling_over_four_replicas_one_at_a_time_start_first_fails_no_request_of_either_kind() {
    let (images, home, service) = setup("hxroll");
    let update = "      update_config: {parallelism: 1, delay: 100ms, monitor: 500ms, order: start-first, failure_action: rollback}";
    service.compose_with(&images, 4, update, &settings("20s", "      strategy: rolling"));
    assert_success(&service.deploy(&home, &images.v1.digest), "deploy v1");
    let pid = haproxy(&service).pid();

    let loads = Loads::start(haproxy(&service));
    let started = Instant::now();
    let out = service.deploy(&home, &images.v2.digest);
    let took = started.elapsed();
    loads.stop("rolling v1 -> v2", &["v1", "v2"]);
    assert_success(&out, "rolling v1 -> v2");
    eprintln!("rolling over 4 replicas took {took:?}");
    assert_eq!(report(&out)["outcome"], "succeeded");
    assert_eq!(stderr(&out).matches("switch batch").count(), 4, "four batches of one: {}", stderr(&out));

    // Every slot in traffic now serves v2; the four v1 replicas are stopped, none is left over.
    assert_eq!(serving_all(&service, 12), ["v2"]);
    let (live, replicas) = status(&service, &home);
    let running: Vec<_> = replicas.iter().filter(|(_, state, _)| state == "running").collect();
    assert_eq!(running.len(), 4, "{replicas:?}");
    assert!(running.iter().all(|(color, _, digest)| color == &live && digest == &images.v2.digest), "{replicas:?}");
    assert_eq!(replicas.len(), 8, "four running, four stopped: {replicas:?}");
    assert_eq!(haproxy(&service).pid(), pid, "haproxy was never restarted or reloaded");
}

#[test]
fn a_bad_version_exits_1_and_traffic_stays_on_v1_with_no_failed_request() {
    let (images, home, service) = setup("hxbad");
    service.compose_with(&images, 2, "", &settings("20s", ""));
    assert_success(&service.deploy(&home, &images.v1.digest), "deploy v1");
    let (live, _) = status(&service, &home);
    // v1 passed its gate; a version whose /health is missing never will: give up after 3 s.
    service.compose_with(&images, 2, "", &settings("3s", ""));

    let loads = Loads::start(haproxy(&service));
    let out = service.deploy(&home, &images.bad.digest);
    loads.stop("the bad version", &["v1"]);
    assert_eq!(out.status.code(), Some(1), "{} {}", stdout(&out), stderr(&out));
    let report = report(&out);
    assert_eq!(report["failure"], "before-switch", "{report}");

    assert_eq!(serving_all(&service, 8), ["v1"]);
    // The bad color is removed; the v1 replicas are the only ones, running and live.
    let (after, replicas) = status(&service, &home);
    assert_eq!(after, live);
    let expected: Vec<_> = (0..2).map(|_| (live.clone(), "running".to_owned(), images.v1.digest.clone())).collect();
    assert_eq!(replicas, expected);
}

#[test]
fn rollback_after_a_good_deploy_returns_to_v1_with_no_failed_request() {
    let (images, home, service) = setup("hxrb");
    service.compose_with(&images, 2, "", &settings("20s", ""));
    assert_success(&service.deploy(&home, &images.v1.digest), "deploy v1");
    let (v1_color, _) = status(&service, &home);
    assert_success(&service.deploy(&home, &images.v2.digest), "deploy v2");
    assert_eq!(serving_all(&service, 4), ["v2"]);

    let loads = Loads::start(haproxy(&service));
    let started = Instant::now();
    let out = service.imgctl(&home, &["rollback", &service.name, "-o", "json"]);
    let took = started.elapsed();
    loads.stop("rollback", &["v1", "v2"]);
    assert_success(&out, "rollback");
    eprintln!("rollback took {took:?}");
    let report = report(&out);
    assert_eq!(report["digest"], images.v1.digest.as_str(), "{report}");

    assert_eq!(serving_all(&service, 8), ["v1"]);
    let (live, replicas) = status(&service, &home);
    assert_eq!(live, v1_color);
    let running: Vec<_> = replicas.iter().filter(|(_, state, _)| state == "running").collect();
    assert_eq!(running.len(), 2, "{replicas:?}");
    assert!(running.iter().all(|(color, _, digest)| color == &live && digest == &images.v1.digest), "{replicas:?}");
}

/// A hook that SIGKILLs the deploy running it: it checks first that its parent is imgctl
/// (never anything else), and records the parent's pid and name in `killed-by-<hook>`.
fn killing_hook(service: &Service, name: &str) {
    let marker = service.dir.join(format!("killed-by-{name}"));
    hook(
        service,
        name,
        &format!(
            "#!/bin/sh\n\
             parent=$(cat /proc/$PPID/comm)\n\
             [ \"$parent\" = imgctl ] || {{ echo \"parent $PPID is $parent, not imgctl\" >&2; exit 1; }}\n\
             echo \"$PPID $parent\" > {marker}.tmp && mv {marker}.tmp {marker}\n\
             kill -9 $PPID\n",
            marker = marker.display()
        ),
    );
}

/// Runs a deploy of `digest` whose `hook` kills it; checks the hook killed that very process.
fn deploy_killed_by(service: &Service, home: &TestHome, hook: &str, digest: &str) {
    killing_hook(service, hook);
    let child = home
        .command(IMGCTL)
        .args(["deploy", &service.name, "--digest", digest])
        .current_dir(&service.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(9), "the {hook} hook did not SIGKILL the deploy: {}", stderr(&out));
    let marker = fs::read_to_string(service.dir.join(format!("killed-by-{hook}"))).unwrap();
    assert_eq!(marker.trim(), format!("{pid} imgctl"), "the hook's parent was the deploy it killed");
    fs::remove_file(service.dir.join("hooks").join(hook)).unwrap();
}

/// The rerun after a kill: it takes over the dead run's lock and converges on `version`.
fn rerun_converges(service: &Service, home: &TestHome, version: &str, digest: &str) {
    let out = service.deploy(home, digest);
    assert_success(&out, &format!("the rerun of {version} after the kill"));
    let err = stderr(&out);
    eprintln!("the rerun of {version}:\n{err}");
    assert!(err.contains("took over the lock of a run that died"), "{err}");
    assert_eq!(report(&out)["outcome"], "succeeded");
    assert_eq!(serving_all(service, 8), [version]);
    let (live, replicas) = status(service, home);
    let running: Vec<_> = replicas.iter().filter(|(_, state, _)| state == "running").collect();
    assert_eq!(running.len(), 2, "{replicas:?}");
    assert!(running.iter().all(|(color, _, d)| color == &live && d == digest), "{replicas:?}");
    eprintln!("after the rerun of {version}: live {live}, {replicas:?}");
    // No orphans: besides the live color, only the stopped previous version.
    let stopped = replicas.iter().filter(|(color, state, _)| color != &live && state == "exited").count();
    assert_eq!((replicas.len(), stopped), (4, 2), "{replicas:?}");
}

#[test]
fn a_deploy_sigkilled_at_the_switch_and_rerun_fails_no_request_of_either_kind() {
    let (images, home, service) = setup("hxkill");
    service.compose_with(&images, 2, "", &settings("20s", ""));
    assert_success(&service.deploy(&home, &images.v1.digest), "deploy v1");

    let loads = Loads::start(haproxy(&service));
    // Killed just before the switch (v2 up and healthy, traffic on v1), then rerun.
    deploy_killed_by(&service, &home, "pre-switch", &images.v2.digest);
    assert_eq!(serving_all(&service, 4), ["v1"]);
    std::thread::sleep(Duration::from_millis(500)); // the gap: nobody runs
    rerun_converges(&service, &home, "v2", &images.v2.digest);
    // Killed just after the switch (traffic on v3, v2 still up), then rerun.
    deploy_killed_by(&service, &home, "post-switch", &images.v3.digest);
    assert_eq!(serving_all(&service, 4), ["v3"]);
    std::thread::sleep(Duration::from_millis(500));
    rerun_converges(&service, &home, "v3", &images.v3.digest);
    loads.stop("two kills and their reruns", &["v1", "v2", "v3"]);
}
