//! The Engine suite's peers: the two procedures people script by hand, behind nginx, under the
//! same load as imgctl.

use std::fs;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{DEPLOY_MAX, EngineSuite, Step};
use crate::common::nginx::Nginx;
use crate::common::web::Pushed;
use crate::interrupt;
use crate::probe::{self, FirstAnswer};
use crate::report::{Run, round2};
use crate::wrk::{ClientKind, Wrk};

impl EngineSuite<'_> {
    /// One measured peer procedure: the load, a poller for the first answer of `to`, and
    /// `procedure`, which returns its disruptive step's duration.
    fn peer_measured(
        &mut self,
        step: Step,
        (tool, switch): (&str, &'static str),
        addr: SocketAddr,
        procedure: impl FnOnce(&Self) -> Duration,
    ) {
        let Step { case, mode, from, to } = step;
        let case = case.as_str();
        interrupt::check();
        probe::expect_serving(addr, &from.version, case);
        let base = self.logs.scratch(tool);
        let wrk = Wrk::start(addr, mode, self.threads, self.connections, base.with_extension("wrk.txt"));
        interrupt::sleep(self.settings.settle);
        let t0 = Instant::now();
        let first = FirstAnswer::start(addr, &to.version, t0, DEPLOY_MAX);
        let took = procedure(self);
        let wall = t0.elapsed();
        let ttt = first.finish(Duration::from_secs(10));
        interrupt::sleep(self.settings.settle);
        let load = wrk.stop();
        probe::await_serving(addr, &to.version, Duration::from_secs(10), case);
        let run = Run {
            case: case.to_owned(),
            tool: tool.to_owned(),
            switch,
            mode,
            failed: load.failed(),
            load,
            switch_ms: Some(took.as_millis() as u64),
            time_to_traffic_ms: ttt.map(|d| d.as_millis() as u64),
            wall_s: round2(wall.as_secs_f64()),
            outcome: "done".to_owned(),
            long_request: None,
            swarm: None,
        };
        self.record(run, &base);
    }

    /// Peer A: as `docker compose up -d` on a new image: pull, remove the old container, run the
    /// new one on the same host port. nginx's upstream never changes.
    pub(super) fn recreate(&mut self) {
        let name = self.names.name("recreate");
        let nginx = Nginx::start(&name);
        let images = self.images;
        let v1 = &images.v1;
        self.docker(&["pull", &v1.image]);
        // The host port is picked now, retried if someone else took it meanwhile.
        let mut port = 0;
        for attempt in 0.. {
            port = probe::fixed_port();
            let mut command = self.images.docker();
            command.args(["run", "-d", "--name", &name, "--stop-signal", "SIGKILL", "-p"]);
            command.arg(format!("127.0.0.1:{port}:8080")).arg(&v1.image);
            if command.output().is_ok_and(|o| o.status.success()) {
                break;
            }
            let _ = self.images.docker().args(["rm", "-f", &name]).output();
            assert!(attempt < 5, "could not run the recreate container");
        }
        point(&nginx, &format!("127.0.0.1:{port}"));
        probe::await_serving(nginx.addr(), &v1.version, Duration::from_secs(10), "recreate");
        let steps = [(&images.v1, &images.v2, ClientKind::Close), (&images.v2, &images.v3, ClientKind::KeepAlive)];
        for (from, to, mode) in steps {
            if !self.settings.kinds().contains(&mode) {
                continue;
            }
            let case = format!("A recreate {}->{}", from.version, to.version);
            let step = Step { case, mode, from, to };
            self.peer_measured(step, ("recreate", "same-port"), nginx.addr(), |suite| {
                suite.docker(&["pull", &to.image]);
                let started = Instant::now();
                suite.docker(&["rm", "-f", &name]);
                let publish = format!("127.0.0.1:{port}:8080");
                suite.docker(&["run", "-d", "--name", &name, "--stop-signal", "SIGKILL", "-p", &publish, &to.image]);
                started.elapsed()
            });
        }
        drop(nginx);
        crate::remove_containers("name", &name);
    }

    /// Peer B: the hand-run switch: the new container on a new port, the upstream rewritten at
    /// once, nginx reloaded, the old container removed; no health gate, no drain.
    pub(super) fn handrun(&mut self) {
        let name = self.names.name("handrun");
        let nginx = Nginx::start(&name);
        let switch_to = |suite: &Self, version: &Pushed, current: &mut Option<String>| -> Duration {
            let container = format!("{name}-{}", version.version);
            suite.docker(&["pull", &version.image]);
            suite.docker(&[
                "run",
                "-d",
                "--name",
                &container,
                "--stop-signal",
                "SIGKILL",
                "-p",
                "127.0.0.1::8080",
                &version.image,
            ]);
            let addr = suite.docker(&["port", &container, "8080/tcp"]);
            let addr = addr.lines().next().unwrap_or_default().trim().to_owned();
            let started = Instant::now();
            fs::write(&nginx.upstream_file, format!("upstream {name} {{ server {addr}; }}\n")).unwrap();
            let reload = nginx.reload_command();
            let out = Command::new(&reload[0]).args(&reload[1..]).output().expect("nginx -s reload");
            assert!(out.status.success(), "nginx -s reload: {}", String::from_utf8_lossy(&out.stderr));
            let took = started.elapsed();
            if let Some(old) = current.replace(container) {
                suite.docker(&["rm", "-f", &old]);
            }
            took
        };
        let images = self.images;
        let mut current = None;
        let before = nginx.reloads();
        switch_to(self, &images.v1, &mut current);
        nginx.wait_reloaded(before + 1);
        probe::await_serving(nginx.addr(), &images.v1.version, Duration::from_secs(10), "handrun");
        let steps = [(&images.v1, &images.v2, ClientKind::Close), (&images.v2, &images.v3, ClientKind::KeepAlive)];
        for (from, to, mode) in steps {
            if !self.settings.kinds().contains(&mode) {
                continue;
            }
            let case = format!("B hand switch {}->{}", from.version, to.version);
            let step = Step { case, mode, from, to };
            self.peer_measured(step, ("handrun", "nginx-reload"), nginx.addr(), |suite| {
                switch_to(suite, to, &mut current)
            });
        }
        drop(nginx);
        crate::remove_containers("name", &name);
    }
}

/// Points nginx's upstream at `addr` and waits until the reload took over.
fn point(nginx: &Nginx, addr: &str) {
    fs::write(&nginx.upstream_file, format!("upstream {} {{ server {addr}; }}\n", nginx.upstream_name)).unwrap();
    let before = nginx.reloads();
    let reload = nginx.reload_command();
    let out = Command::new(&reload[0]).args(&reload[1..]).output().expect("nginx -s reload");
    assert!(out.status.success(), "nginx -s reload: {}", String::from_utf8_lossy(&out.stderr));
    nginx.wait_reloaded(before + 1);
}
