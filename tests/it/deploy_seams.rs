//! One conformance suite per deploy seam, run unchanged on every implementation: each
//! [`Target`] (the Docker Engine, swarm colors) against this machine's engine and a real
//! registry, and each [`TrafficSwitch`] (nginx and haproxy, real ones on loopback; and "no
//! switch").

use crate::common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use imgctl::deploy::Color;
use imgctl::deploy::docker::PullAuth;
use imgctl::deploy::events::Events;
use imgctl::deploy::model::{ContainerState, Phase, PinnedImage, Server, Traffic};
use imgctl::deploy::spec::{self, ServiceSpec};
use imgctl::deploy::switch::{AnySwitch, TrafficSwitch};
use imgctl::deploy::target::{self, AnyTarget, Placement, Target};
use imgctl::registry::credentials::RegistryCredential;

use common::haproxy::Haproxy;
use common::nginx::Nginx;
use common::swarm::Swarm;
use common::web::{Pushed, WebImages};
use common::{TestHome, random_hex};

/// Events, kept.
#[derive(Default)]
struct Kept(Vec<String>);

impl Events for Kept {
    fn step(&mut self, step: &str, _: Duration) {
        self.0.push(step.to_owned());
    }
    fn note(&mut self, text: &str) {
        self.0.push(text.to_owned());
    }
}

fn pinned(pushed: &Pushed) -> PinnedImage {
    let reference: imgctl::reference::Reference = pushed.image.parse().unwrap();
    PinnedImage { digest: reference.digest().cloned().unwrap(), repository: reference }
}

fn auth(images: &WebImages) -> PullAuth {
    PullAuth {
        server: images.registry.addr.clone(),
        credential: RegistryCredential::Basic {
            username: images.user.clone(),
            password: imgctl::credential::Secret::new(images.password.clone()),
        },
    }
}

/// A compose service for the target under test.
fn service(dir: &Path, name: &str, images: &WebImages, extension: &str) -> ServiceSpec {
    let text = format!(
        r#"services:
  {name}:
    image: {repo}:v1
    expose: ["8080"]
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 1s
      retries: 2
    x-imgctl:
{extension}
"#,
        repo = images.repo,
    );
    let path = dir.join("compose.yaml");
    fs::write(&path, text).unwrap();
    spec::load(&path, name).unwrap()
}

/// What every target of colors must do.
async fn conformance(target: &mut AnyTarget<'_>, images: &WebImages, what: &str) {
    let mut events = Kept::default();
    assert!(target.observe().await.unwrap().is_empty(), "{what}: a new service has no replicas");
    let v1 = pinned(&images.v1);
    target.prepare(&v1, auth(images), &mut events).await.unwrap_or_else(|e| panic!("{what}: prepare: {e}"));

    // start: healthy replicas of the color, labelled with the run, at an address a switch can use.
    let started = target.start(Color::Blue, &v1, &[1], "conf-1", &mut events).await;
    let started = started.unwrap_or_else(|e| panic!("{what}: start: {e}; {:?}", events.0));
    assert_eq!(started.replicas.len(), 1, "{what}");
    let replicas = target.observe().await.unwrap();
    let blue = replicas.iter().find(|r| r.color == Color::Blue).unwrap_or_else(|| panic!("{what}: {replicas:?}"));
    assert_eq!(
        (blue.state, blue.digest.as_str(), blue.deploy_id.as_str()),
        (ContainerState::Running, images.v1.digest.as_str(), "conf-1"),
        "{what}"
    );
    assert!(target.address(blue).is_some(), "{what}: no address for a switch");
    target.check(blue).await.unwrap_or_else(|e| panic!("{what}: check of a healthy replica: {e}"));

    // retire (stop): kept, not running, and a check says so.
    target.retire(blue, false).await.unwrap();
    let stopped = target.observe().await.unwrap().into_iter().find(|r| r.color == Color::Blue).expect("kept");
    assert_ne!(stopped.state, ContainerState::Running, "{what}");
    assert!(target.check(&stopped).await.is_err(), "{what}: a stopped replica passes its check");

    // resume: running and healthy again.
    let resumed = target.resume(std::slice::from_ref(&stopped), &mut events).await;
    resumed.unwrap_or_else(|e| panic!("{what}: resume: {e}"));
    let back = target.observe().await.unwrap().into_iter().find(|r| r.color == Color::Blue).unwrap();
    assert_eq!(back.state, ContainerState::Running, "{what}");
    target.check(&back).await.unwrap_or_else(|e| panic!("{what}: check after resume: {e}"));

    // A version that fails its health gate: an error, and nothing of it is left.
    let bad = pinned(&images.bad);
    target.prepare(&bad, auth(images), &mut events).await.unwrap();
    let failed = target.start(Color::Green, &bad, &[1], "conf-2", &mut events).await;
    assert!(failed.is_err(), "{what}: a bad version passed its gate");
    let left = target.observe().await.unwrap();
    assert!(left.iter().all(|r| r.color == Color::Blue), "{what}: a failed start left {left:?}");

    // retire (remove): gone.
    target.retire(&back, true).await.unwrap();
    assert!(target.observe().await.unwrap().is_empty(), "{what}: removed");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn every_target_of_colors_passes_the_conformance_suite() {
    let images = WebImages::build("seams");
    let home = TestHome::new("seams");
    let name = format!("seams{}", random_hex(3));
    let cleanup = |name: &str| {
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("docker rm -f $(docker ps -aq --filter label=imgctl.service={name}) 2>/dev/null; docker service rm {name}-blue {name}-green 2>/dev/null"))
            .output();
    };
    let engine = service(
        &home.dir,
        &name,
        &images,
        "      health: {interval: 200ms, healthy_threshold: 2, deadline: 20s}\n      proxy: {upstream_file: upstream.conf}",
    );
    let rt = runtime();
    rt.block_on(async {
        let Placement::Colors(mut target) = target::open(&engine).await.unwrap() else {
            panic!("the engine has colors")
        };
        assert!(matches!(target, AnyTarget::Engine(_)));
        conformance(&mut target, &images, "engine").await;
    });
    cleanup(&name);

    let swarm = Swarm::start();
    let swarm_name = format!("seamsw{}", random_hex(3));
    swarm.track(&format!("{swarm_name}-blue"));
    swarm.track(&format!("{swarm_name}-green"));
    let extension = format!(
        "      target: swarm\n      swarm: {{network: {}, converge_timeout: 60s}}\n      health: {{deadline: 25s}}\n      proxy: {{upstream_file: upstream.conf}}",
        swarm.network
    );
    let colors = service(&home.dir, &swarm_name, &images, &extension);
    rt.block_on(async {
        let Placement::Colors(mut target) = target::open(&colors).await.unwrap() else {
            panic!("swarm blue/green has colors")
        };
        assert!(matches!(target, AnyTarget::Swarm(_)));
        conformance(&mut target, &images, "swarm colors").await;
    });
    cleanup(&swarm_name);
}

fn traffic(service: &str, addr: &str, phase: Phase) -> Traffic {
    Traffic {
        service: service.into(),
        live: Color::Green,
        live_digest: "sha256:2222222222222222222222222222222222222222222222222222222222222222".into(),
        deploy_id: format!("run-{}", random_hex(2)),
        phase,
        servers: vec![Server {
            addr: addr.into(),
            weight: 3,
            container: format!("{service}-green-1"),
            color: Color::Green,
        }],
    }
}

/// What every traffic switch must do: read back what it applied; a failed apply leaves what
/// was there.
fn switch_conformance(switch: &AnySwitch<'_>, service: &str, applies: bool, what: &str) {
    let before = switch.read().unwrap();
    let first = traffic(service, "127.0.0.1:9", Phase::Stable);
    match switch.apply(&first) {
        Ok(_) => {
            assert!(applies, "{what}: applied");
            assert_eq!(switch.read().unwrap().as_ref(), Some(&first), "{what}: read back");
        }
        Err(_) => {
            assert!(!applies, "{what}: refused");
            assert_eq!(switch.read().unwrap(), before, "{what}: a refused apply changed the state");
        }
    }
    let now = switch.read().unwrap();
    // A backend the proxy cannot use: refused, and the state is what it was.
    let broken = traffic(service, "no-such-host.invalid:80", Phase::Stable);
    assert!(switch.apply(&broken).is_err(), "{what}: a backend nginx cannot resolve was applied");
    assert_eq!(switch.read().unwrap(), now, "{what}: a failed apply changed the state");
    // The state travels with the traffic: an in-flight phase reads back as written.
    let canary = traffic(
        service,
        "127.0.0.1:9",
        Phase::Canary {
            color: Color::Green,
            image: "web@sha256:2".into(),
            digest: "sha256:2".into(),
            step: 1,
            weight: 50,
        },
    );
    if applies {
        switch.apply(&canary).unwrap();
        assert_eq!(switch.read().unwrap(), Some(canary), "{what}: phase read back");
    } else {
        assert!(switch.apply(&canary).is_err());
    }
    switch.reload().unwrap_or_else(|e| panic!("{what}: reload: {e}"));
}

#[test]
fn every_traffic_switch_passes_the_conformance_suite() {
    let home = TestHome::new("switch");
    let name = format!("sw{}", random_hex(3));
    let nginx = Nginx::start(&name);
    let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
    let text = format!(
        "services:\n  {name}:\n    image: 127.0.0.1:5000/web:v1\n    expose: [\"8080\"]\n    x-imgctl:\n      health: {{path: /health}}\n      proxy:\n        upstream_file: {}\n        test: {}\n        reload: {}\n",
        nginx.upstream_file.display(),
        json(nginx.test_command()),
        json(nginx.reload_command()),
    );
    let path = home.dir.join("compose.yaml");
    fs::write(&path, &text).unwrap();
    let with_nginx = spec::load(&path, &name).unwrap();
    let switch = AnySwitch::of(&with_nginx);
    assert!(matches!(switch, AnySwitch::Nginx { .. }));
    switch_conformance(&switch, &name, true, "nginx");

    // haproxy, by its runtime API: the same suite, and its slots say what was applied.
    let haproxy = Haproxy::start(&name, 4);
    let text = format!(
        "services:\n  {name}:\n    image: 127.0.0.1:5000/web:v1\n    expose: [\"8080\"]\n    x-imgctl:\n      health: {{path: /health}}\n      proxy:\n        kind: haproxy\n        socket: {}\n        state_file: {}\n",
        haproxy.socket.display(),
        home.dir.join("haproxy-state.json").display(),
    );
    fs::write(&path, &text).unwrap();
    let with_haproxy = spec::load(&path, &name).unwrap();
    let switch = AnySwitch::of(&with_haproxy);
    assert!(matches!(switch, AnySwitch::Haproxy { .. }));
    switch_conformance(&switch, &name, true, "haproxy");
    let slots = haproxy.command(&format!("show servers state {name}"));
    let app1 = slots.lines().find(|l| l.contains(" app1 ")).unwrap_or_else(|| panic!("{slots}"));
    // srv_addr, op state 2 (running), admin state 4 (CMAINT only: ready), weight 3, port 9.
    assert!(app1.contains(" app1 127.0.0.1 2 4 3 "), "{slots}");
    assert!(app1.contains(" - 9 "), "{slots}");

    // Swarm's own rolling update moves traffic itself: no proxy block, no switch.
    let rolling = format!(
        "services:\n  {name}:\n    image: 127.0.0.1:5000/web:v1\n    healthcheck: {{test: [\"CMD\", \"true\"]}}\n    x-imgctl: {{target: swarm, strategy: rolling}}\n"
    );
    fs::write(&path, rolling).unwrap();
    let without = spec::load(&path, &name).unwrap();
    let none = AnySwitch::of(&without);
    assert!(matches!(none, AnySwitch::None { .. }));
    switch_conformance(&none, &name, false, "no switch");
}
