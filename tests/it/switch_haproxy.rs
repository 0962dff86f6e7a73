//! The haproxy switch against a real haproxy on loopback, with in-process HTTP servers as the
//! two colors: traffic moves over the stats socket while a keep-alive connection stays open,
//! and a haproxy restart (which forgets every runtime change) is repaired from the state file.

#![allow(clippy::print_stderr)] // the switch time, as measured

use crate::common;

use std::fs;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use imgctl::deploy::Color;
use imgctl::deploy::model::{Phase, Server, Traffic};
use imgctl::deploy::spec;
use imgctl::deploy::switch::haproxy::HaproxyError;
use imgctl::deploy::switch::{AnySwitch, SwitchError, TrafficSwitch};

use common::haproxy::{Answerer, Haproxy};
use common::load::{get, read_response};
use common::{TestHome, random_hex};

fn traffic(service: &str, live: Color, servers: &[(&Answerer, Color)]) -> Traffic {
    Traffic {
        service: service.into(),
        live,
        live_digest: format!("sha256:{}", random_hex(32)),
        deploy_id: format!("run-{}", random_hex(2)),
        phase: Phase::Stable,
        servers: servers
            .iter()
            .enumerate()
            .map(|(i, (answerer, color))| Server {
                addr: answerer.addr.to_string(),
                weight: 1,
                container: format!("{service}-{color}-{i}"),
                color: *color,
            })
            .collect(),
    }
}

fn body_through(haproxy: &Haproxy) -> (u16, String) {
    let response = get(haproxy.addr(), "/").unwrap_or_else(|e| panic!("GET through haproxy: {e}; {}", haproxy.logs()));
    (response.status, response.text())
}

#[test]
fn haproxy_switches_without_closing_a_keep_alive_connection_and_replays_its_state_after_a_restart() {
    let home = TestHome::new("haproxy");
    let name = format!("hx{}", random_hex(3));
    let mut haproxy = Haproxy::start(&name, 4);
    let state_file = home.dir.join("state").join(format!("{name}.json"));
    let yaml = format!(
        "services:\n  {name}:\n    image: 127.0.0.1:5000/web:v1\n    expose: [\"8080\"]\n    x-imgctl:\n      health: {{path: /health}}\n      proxy: {{kind: haproxy, socket: {}, state_file: {}}}\n",
        haproxy.socket.display(),
        state_file.display(),
    );
    let path = home.dir.join("compose.yaml");
    fs::write(&path, yaml).unwrap();
    let service = spec::load(&path, &name).unwrap();
    let switch = AnySwitch::of(&service);
    assert_eq!(body_through(&haproxy).0, 503, "every slot starts in maint");

    let (blue, green) = (Answerer::start("v1"), Answerer::start("v2"));
    let on_blue = traffic(&name, Color::Blue, &[(&blue, Color::Blue)]);
    switch.apply(&on_blue).unwrap();
    assert_eq!(body_through(&haproxy), (200, "v1".into()));

    // A client keeps one connection across the switch: the next request on it reaches green.
    let stream = TcpStream::connect(haproxy.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = |stream: &TcpStream| {
        write!(&*stream, "GET / HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        read_response(&mut reader).unwrap_or_else(|e| panic!("a request on the kept connection: {e}"))
    };
    let first = request(&stream);
    assert_eq!((first.status, first.text().as_str(), first.close), (200, "v1", false));
    let on_green = traffic(&name, Color::Green, &[(&green, Color::Green)]);
    let took = switch.apply(&on_green).unwrap();
    let second = request(&stream);
    assert_eq!((second.status, second.text().as_str(), second.close), (200, "v2", false), "same connection");
    eprintln!("haproxy switch blue -> green: {took:?}");
    assert!(took < Duration::from_millis(500), "the switch took {took:?}");
    assert_eq!(switch.read().unwrap().as_ref(), Some(&on_green));

    // A pool too small for the traffic: refused before anything changed.
    let answerers: Vec<Answerer> = (0..5).map(|_| Answerer::start("v3")).collect();
    let many: Vec<(&Answerer, Color)> = answerers.iter().map(|a| (a, Color::Blue)).collect();
    let error = switch.apply(&traffic(&name, Color::Blue, &many)).unwrap_err();
    assert!(matches!(error, SwitchError::Haproxy(HaproxyError::PoolTooSmall { slots: 4, needed: 5, .. })), "{error}");
    assert_eq!(switch.read().unwrap().as_ref(), Some(&on_green));
    assert_eq!(body_through(&haproxy), (200, "v2".into()));

    // A socket that may read but not change: refused after the state file was written, so
    // the file is put back, and so are the slots.
    let operator = fs::read_to_string(&path)
        .unwrap()
        .replace(&haproxy.socket.display().to_string(), &haproxy.operator_socket.display().to_string());
    fs::write(&path, operator).unwrap();
    let read_only = spec::load(&path, &name).unwrap();
    let refused = AnySwitch::of(&read_only).apply(&on_blue).unwrap_err();
    assert!(matches!(refused, SwitchError::Haproxy(HaproxyError::NotAdmin { .. })), "{refused}");
    assert!(refused.to_string().contains("level admin"), "{refused}");
    assert_eq!(switch.read().unwrap().as_ref(), Some(&on_green), "the state file is put back");
    assert_eq!(body_through(&haproxy), (200, "v2".into()));

    // haproxy restarts and forgets: every slot is back in maint. A replay of the state file
    // (what the interpreter runs when it takes over, and --repair) serves green again.
    haproxy.restart();
    assert_eq!(body_through(&haproxy).0, 503, "a restarted haproxy has no runtime changes");
    switch.reload().unwrap();
    assert_eq!(body_through(&haproxy), (200, "v2".into()));
    assert_eq!(switch.read().unwrap().as_ref(), Some(&on_green));
    // Replaying what haproxy already has changes nothing.
    switch.reload().unwrap();
    assert_eq!(body_through(&haproxy), (200, "v2".into()));
}
