//! The nginx switch against a real nginx that the test runs itself on loopback, with its own
//! prefix directory (no Docker): the new upstream file is tested alone before it goes live,
//! traffic follows each switch, and a file nginx refuses never reaches the live configuration.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};

use imgctl::deploy::child_env::ChildEnv;
use imgctl::deploy::color::Color;
use imgctl::deploy::model::{Phase, Server, Traffic};
use imgctl::deploy::nginx::{ProxyError, Switch};
use imgctl::deploy::spec::ProxySettings;

use crate::common::assert_success;
use crate::common::load::get;
use crate::common::nginx::Nginx;

/// A backend on loopback that answers every request with `name`, for as long as the test
/// process runs.
fn backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ =
                write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}", name.len());
        }
    });
    addr
}

fn proxy(nginx: &Nginx) -> ProxySettings {
    ProxySettings {
        upstream_file: Some(nginx.upstream_file.clone()),
        upstream: nginx.upstream_name.clone(),
        test: nginx.test_command(),
        reload: nginx.reload_command(),
        verify_url: None,
        verify_count: 1,
        host: "127.0.0.1".into(),
        network: None,
    }
}

fn to(addr: SocketAddr, weight: u32, id: &str) -> Traffic {
    Traffic {
        service: "web".into(),
        live: Color::Blue,
        live_digest: "sha256:aa".into(),
        deploy_id: id.into(),
        phase: Phase::Stable,
        servers: vec![Server { addr: addr.to_string(), weight, container: "web-blue-1".into(), color: Color::Blue }],
    }
}

fn env() -> ChildEnv {
    ChildEnv::select([("PATH".into(), "/usr/sbin:/usr/bin:/bin".into())], &[])
}

fn answer(nginx: &Nginx) -> String {
    get(nginx.addr(), "/").unwrap_or_else(|e| panic!("GET through nginx: {e}; {}", nginx.logs())).text()
}

fn staged_leftovers(nginx: &Nginx) -> Vec<String> {
    std::fs::read_dir(&nginx.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("imgctl-staged"))
        .collect()
}

#[test]
fn each_switch_is_tested_alone_then_live_then_reloaded() {
    let nginx = Nginx::start("web_upstream");
    let (a, b) = (backend("a"), backend("b"));
    let proxy = proxy(&nginx);
    let switch = Switch::new(&proxy, env());
    for (addr, name, id) in [(a, "a", "d1"), (b, "b", "d2"), (a, "a", "d3")] {
        let reloads = nginx.reloads();
        switch.apply(&to(addr, 1, id)).unwrap_or_else(|e| panic!("{e}: {}\n{}", e.output(), nginx.logs()));
        nginx.wait_reloaded(reloads + 1);
        assert_eq!(answer(&nginx), name);
        assert_eq!(switch.read().unwrap().map(|t| t.deploy_id), Some(id.to_owned()));
    }
    assert_eq!(staged_leftovers(&nginx), Vec::<String>::new());
}

#[test]
fn a_file_nginx_refuses_never_reaches_the_live_configuration() {
    let nginx = Nginx::start("web_upstream");
    let a = backend("a");
    let proxy = proxy(&nginx);
    let switch = Switch::new(&proxy, env());
    let reloads = nginx.reloads();
    switch.apply(&to(a, 1, "d1")).unwrap_or_else(|e| panic!("{e}: {}\n{}", e.output(), nginx.logs()));
    nginx.wait_reloaded(reloads + 1);
    let before = std::fs::read(&nginx.upstream_file).unwrap();

    // nginx refuses `weight=0`: tested alone, the file is refused before it replaces the live one.
    let error = switch.apply(&to(a, 0, "d2")).unwrap_err();
    assert!(matches!(error, ProxyError::StagedTestFailed { .. }), "{error}");
    assert!(error.output().contains("invalid parameter \"weight=0\""), "{:?}", error.output());
    assert!(!error.to_string().contains("weight=0"), "the message the history keeps has no nginx output: {error}");
    assert_eq!(std::fs::read(&nginx.upstream_file).unwrap(), before, "the live file was never replaced");
    assert_eq!(nginx.reloads(), reloads + 1, "no reload");
    assert_success(&argv(&nginx.test_command()).output().unwrap(), "the live configuration still tests");
    assert_eq!(answer(&nginx), "a");
    assert_eq!(staged_leftovers(&nginx), Vec::<String>::new());
}

fn argv(argv: &[String]) -> std::process::Command {
    let mut command = std::process::Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}
