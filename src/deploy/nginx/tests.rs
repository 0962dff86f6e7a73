//! The nginx switch: rendering, the state line, the staged test, and the commands' environment.

use super::*;
use crate::deploy::color::Color;
use crate::deploy::model::{Phase, Server};

fn traffic() -> Traffic {
    Traffic {
        service: "web".into(),
        live: Color::Blue,
        live_digest: "sha256:aa".into(),
        deploy_id: "d1".into(),
        phase: Phase::Canary {
            color: Color::Green,
            image: "r/web@sha256:bb".into(),
            digest: "sha256:bb".into(),
            step: 0,
            weight: 10,
        },
        servers: vec![
            Server { addr: "127.0.0.1:32768".into(), weight: 9, container: "web-blue-1".into(), color: Color::Blue },
            Server { addr: "127.0.0.1:32769".into(), weight: 1, container: "web-green-1".into(), color: Color::Green },
        ],
    }
}

#[test]
fn the_state_line_round_trips_through_the_file() {
    let text = render("web_upstream", &traffic());
    assert!(text.contains("upstream web_upstream {\n    server 127.0.0.1:32768 weight=9;\n"), "{text}");
    assert_eq!(parse_state(&text).unwrap(), Some(traffic()));
    assert_eq!(parse_state("upstream web { server 127.0.0.1:80; }").unwrap(), None);
    assert!(parse_state("# imgctl-state: {broken").is_err());
}

#[test]
fn no_value_breaks_out_of_a_comment_line() {
    // A service and container name holding a line break and a directive: only the JSON
    // state line may carry them, escaped.
    let mut hostile = traffic();
    hostile.service = "web\nserver 198.51.100.1:80;".into();
    hostile.servers[0].container = "web-blue-1\nserver 198.51.100.2:80;".into();
    let text = render("web_upstream", &hostile);
    for line in text.lines() {
        let known = line == HEADER.trim_end()
            || line.starts_with(STATE_PREFIX)
            || line == "upstream web_upstream {"
            || line == "}"
            || line.starts_with("    server 127.0.0.1:3276");
        assert!(known, "a line imgctl did not mean to write: {line:?}\n{text}");
        assert!(!line.contains("198.51.100") || line.starts_with(STATE_PREFIX), "{line:?}");
    }
    assert_eq!(parse_state(&text).unwrap(), Some(hostile));
}

#[test]
fn canary_weights_carry_the_percentage() {
    // (percent, stable servers, new servers) -> (each stable, each new)
    let table = [
        ((10, 1, 1), (9, 1)),
        ((50, 2, 2), (1, 1)),
        ((10, 4, 4), (9, 1)),
        ((10, 2, 1), (9, 2)),
        ((25, 1, 3), (9, 1)),
        ((100, 4, 4), (0, 1)),
        ((0, 4, 4), (1, 0)),
        ((30, 0, 2), (0, 1)),
    ];
    for ((percent, stable, new), expected) in table {
        let (ws, wn) = canary_weights(percent, stable, new);
        assert_eq!((ws, wn), expected, "{percent}% over {stable}+{new}");
        if ws > 0 && wn > 0 {
            let new_share = f64::from(wn) * new as f64 / (f64::from(wn) * new as f64 + f64::from(ws) * stable as f64);
            assert!((new_share * 100.0 - f64::from(percent)).abs() < 0.01);
        }
    }
}

fn env() -> ChildEnv {
    ChildEnv::select([("PATH".into(), "/usr/bin:/bin".into())], &[])
}

#[test]
fn the_test_and_reload_commands_get_only_the_allowed_environment() {
    let scratch = Scratch::new("env");
    let dir = &scratch.0;
    let parent = [
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("IMGCTL_PASSPHRASE".into(), "hunter2".into()),
        ("NGINX_CONF".into(), "/etc/nginx/test.conf".into()),
    ];
    let env = ChildEnv::select(parent, &["NGINX_CONF".to_owned()]);
    let dump = |name: &str| format!("env > {}", dir.join(name).display());
    let proxy = settings(dir, &dump("test.env"), &dump("reload.env"));
    Switch::new(&proxy, env).apply(&traffic()).unwrap();
    for name in ["test.env", "reload.env"] {
        let seen = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(seen.contains("NGINX_CONF=/etc/nginx/test.conf\n"), "{name}: {seen}");
        assert!(!seen.contains("IMGCTL_PASSPHRASE") && !seen.contains("hunter2"), "{name}: {seen}");
    }
}

fn settings(dir: &Path, test: &str, reload: &str) -> ProxySettings {
    ProxySettings {
        upstream_file: Some(dir.join("web.conf")),
        upstream: "web".into(),
        test: vec!["sh".into(), "-c".into(), test.into()],
        reload: vec!["sh".into(), "-c".into(), reload.into()],
        verify_url: None,
        verify_count: 1,
        host: "127.0.0.1".into(),
        network: None,
    }
}

#[test]
fn a_failed_test_or_reload_puts_the_old_file_back() {
    let scratch = Scratch::new("restore");
    let dir = &scratch.0;
    let good = settings(dir, "true", "true");
    let first = traffic();
    Switch::new(&good, env()).apply(&first).unwrap();
    let before = std::fs::read(dir.join("web.conf")).unwrap();

    let mut second = traffic();
    second.phase = Phase::Stable;
    let refused = settings(dir, "printf 'em%s\\n' 'erg: bad' >&2; exit 1", "true");
    let error = Switch::new(&refused, env()).apply(&second).unwrap_err();
    assert!(matches!(error, ProxyError::TestFailed { ref output, .. } if output.text() == "emerg: bad"), "{error:?}");
    assert!(!error.to_string().contains("emerg"), "the history gets no output: {error}");
    assert_eq!(error.output(), "emerg: bad");
    assert_eq!(std::fs::read(dir.join("web.conf")).unwrap(), before);

    let reload_fails = settings(dir, "true", "exit 3");
    assert!(matches!(Switch::new(&reload_fails, env()).apply(&second), Err(ProxyError::ReloadFailed { .. })));
    assert_eq!(Switch::new(&good, env()).read().unwrap(), Some(first));

    let mut empty = traffic();
    empty.servers.clear();
    assert!(matches!(Switch::new(&good, env()).apply(&empty), Err(ProxyError::NoServers(_))));
}

struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("imgctl-nginx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        Self(dir)
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.0.join("calls.log")).unwrap_or_default()
    }
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A stand-in for nginx, `bin/nginx`: logs each call, what the live upstream file's state
/// line was at that moment and, for a test given `-c`, the file that configuration
/// includes and its state line; refuses (as nginx does a `weight=0`) when `refuse_alone`.
fn fake_nginx(scratch: &Scratch, refuse_alone: bool) -> ProxySettings {
    let nginx = scratch.0.join("bin/nginx");
    let refuse = if refuse_alone { "echo '[emerg] invalid parameter \"weight=0\"' >&2; exit 1" } else { "" };
    let script = format!(
        r#"#!/bin/sh
log='{log}'
echo "call: $*" >> "$log"
echo "live: $(grep '^# imgctl-state' '{live}' 2>/dev/null || echo none)" >> "$log"
conf=; prev=
for a in "$@"; do [ "$prev" = -c ] && conf=$a; prev=$a; done
if [ -n "$conf" ]; then
  staged=$(sed -n 's/^ *include "\(.*\)";$/\1/p' "$conf")
  echo "staged: $staged" >> "$log"
  echo "staged state: $(grep '^# imgctl-state' "$staged" || echo none)" >> "$log"
  grep -q 'proxy_pass http://web;' "$conf" || {{ echo '[emerg] no proxy_pass to the upstream' >&2; exit 1; }}
  {refuse}
fi
"#,
        log = scratch.0.join("calls.log").display(),
        live = scratch.0.join("web.conf").display(),
    );
    std::fs::write(&nginx, script).unwrap();
    std::fs::set_permissions(&nginx, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let nginx = nginx.display().to_string();
    ProxySettings {
        test: vec![nginx.clone(), "-t".into(), "-q".into()],
        reload: vec![nginx, "-s".into(), "reload".into()],
        ..settings(&scratch.0, "true", "true")
    }
}

fn deploy(id: &str) -> Traffic {
    Traffic { deploy_id: id.into(), phase: Phase::Stable, ..traffic() }
}

// Issue 11: the new file was written in place, then tested: a crash before the test (or
// anyone's reload meanwhile) left nginx with an untested file. Before the fix, the first
// call to nginx already saw the new file live.
#[test]
fn the_new_file_is_tested_alone_before_it_goes_live() {
    let scratch = Scratch::new("staged");
    let proxy = fake_nginx(&scratch, false);
    Switch::new(&proxy, env()).apply(&deploy("d1")).unwrap();
    std::fs::remove_file(scratch.0.join("calls.log")).unwrap();
    Switch::new(&proxy, env()).apply(&deploy("d2")).unwrap();

    let log = scratch.log();
    let calls: Vec<&str> = log.lines().filter(|l| l.starts_with("call: ")).collect();
    assert_eq!(calls.len(), 3, "{log}");
    assert!(calls[0].starts_with("call: -t -q -p ") && calls[0].contains(" -c "), "first the file alone: {log}");
    assert_eq!(&calls[1..], ["call: -t -q", "call: -s reload"], "{log}");
    let lives: Vec<&str> = log.lines().filter(|l| l.starts_with("live: ")).collect();
    assert!(lives[0].contains(r#""deploy_id":"d1""#), "tested alone while the old file was live: {log}");
    assert!(lives[1].contains(r#""deploy_id":"d2""#) && lives[2].contains(r#""deploy_id":"d2""#), "{log}");
    let staged = log.lines().find_map(|l| l.strip_prefix("staged: ")).unwrap();
    assert!(staged.starts_with(&format!("{}/.web.conf.imgctl-staged.tmp-", scratch.0.display())), "{log}");
    assert!(
        log.contains(r#"staged state: # imgctl-state: {"service":"web""#) && log.contains(r#""deploy_id":"d2""#),
        "{log}"
    );
    assert_eq!(scratch.names(), [".imgctl-switch.lock", "bin", "calls.log", "web.conf"]);
}

#[test]
fn a_file_nginx_refuses_alone_never_goes_live() {
    let scratch = Scratch::new("refused-alone");
    Switch::new(&fake_nginx(&scratch, false), env()).apply(&deploy("d1")).unwrap();
    let before = std::fs::read(scratch.0.join("web.conf")).unwrap();
    std::fs::remove_file(scratch.0.join("calls.log")).unwrap();

    let refusing = fake_nginx(&scratch, true);
    let error = Switch::new(&refusing, env()).apply(&deploy("d2")).unwrap_err();
    assert!(matches!(error, ProxyError::StagedTestFailed { .. }), "{error}");
    assert!(error.output().contains("invalid parameter"), "{:?}", error.output());
    assert!(!error.to_string().contains("invalid parameter"), "the history gets no output: {error}");
    assert_eq!(std::fs::read(scratch.0.join("web.conf")).unwrap(), before, "the live file was never touched");
    assert_eq!(
        scratch.log().lines().filter(|l| l.starts_with("call: ")).count(),
        1,
        "no test of the live config, no reload"
    );
    assert_eq!(scratch.names(), [".imgctl-switch.lock", "bin", "calls.log", "web.conf"], "no staged file is left");
}

#[test]
fn switches_of_services_sharing_a_directory_take_turns() {
    let scratch = Scratch::new("turns");
    // The test marks nginx busy and the reload clears it: a second switch in between fails.
    let busy = scratch.0.join("busy");
    let test = format!("mkdir {}", busy.display());
    let reload = format!("sleep 0.02; rmdir {}", busy.display());
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|threads| {
        for service in ["web", "api"] {
            let (test, reload, barrier, dir) = (&test, &reload, &barrier, &scratch.0);
            threads.spawn(move || {
                let proxy = ProxySettings {
                    upstream_file: Some(dir.join(format!("{service}.conf"))),
                    upstream: service.into(),
                    ..settings(dir, test, reload)
                };
                barrier.wait();
                for round in 0..10 {
                    let traffic = Traffic { service: service.into(), ..deploy(&format!("d{round}")) };
                    Switch::new(&proxy, env())
                        .apply(&traffic)
                        .unwrap_or_else(|e| panic!("{service} round {round}: {e}"));
                }
            });
        }
    });
}

#[test]
fn a_switch_that_never_ends_is_reported_not_waited_for_forever() {
    let scratch = Scratch::new("busy");
    let held = switch_lock::take(&scratch.0, Duration::ZERO).unwrap();
    let proxy = settings(&scratch.0, "true", "true");
    let mut switch = Switch::new(&proxy, env());
    switch.wait = Duration::from_millis(100);
    let error = switch.apply(&deploy("d1")).unwrap_err();
    assert!(matches!(error, ProxyError::SwitchBusy { .. }), "{error}");
    assert!(!scratch.0.join("web.conf").exists());
    drop(held);
    switch.apply(&deploy("d1")).unwrap();
}
