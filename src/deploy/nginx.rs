//! The nginx traffic switch: the service's `upstream` block in a file nginx includes, staged
//! beside it and tested alone ([`stage`]), renamed into place, tested with the configured
//! command (`nginx -t`), then reloaded with a configurable command; one switch at a time
//! through the directory ([`switch_lock`]).
//!
//! The file is also where the deploy state lives between runs: its first lines carry which
//! color is live and, during a canary or rolling update, what is in flight. One atomic rename
//! changes traffic and state together, so they can never disagree after a crash.

mod stage;
mod switch_lock;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::child_env::ChildEnv;
use super::model::Traffic;
use super::spec::ProxySettings;

const STATE_PREFIX: &str = "# imgctl-state: ";

/// The switch failed; the previous file is back in place.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream file could not be read or written.
    #[error("{action} {path}: {source}")]
    File {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds an imgctl state line that does not parse (edited by hand?).
    #[error("{path}: its imgctl-state line is damaged ({reason}); fix or remove the file")]
    DamagedState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// nginx refused the new upstream file tested alone, before it replaced the live one: the
    /// live configuration was never touched.
    #[error(
        "nginx refused the new upstream file, tested on its own ({command}: {status}), so it never went live and traffic was not switched"
    )]
    StagedTestFailed {
        /// The command.
        command: String,
        /// How it ended.
        status: String,
        /// What it printed.
        output: CommandOutput,
    },
    /// `nginx -t` refused the configuration with the new upstream; the old file was put back.
    #[error(
        "the nginx configuration test ({command}) failed ({status}) with the new upstream file, so the old one was put back and traffic was not switched"
    )]
    TestFailed {
        /// The command.
        command: String,
        /// How it ended.
        status: String,
        /// What it printed.
        output: CommandOutput,
    },
    /// The reload command failed; the old file was put back.
    #[error("the nginx reload ({command}) failed ({status}), so traffic was not switched")]
    ReloadFailed {
        /// The command.
        command: String,
        /// How it ended.
        status: String,
        /// What it printed.
        output: CommandOutput,
    },
    /// Another run's switch through the same directory did not end in time.
    #[error(
        "another imgctl run has held the nginx switch {path} for over {waited:?} (a test or reload command that hangs?), so traffic was not switched"
    )]
    SwitchBusy {
        /// The switch's lock file.
        path: PathBuf,
        /// How long this run waited.
        waited: Duration,
    },
    /// The service has no upstream file (swarm's own rolling update) to send traffic with.
    #[error("{0} has no x-imgctl.proxy.upstream_file: imgctl moves no traffic for it")]
    NoSwitch(String),
    /// No server would be left in the upstream.
    #[error("refusing to write an upstream for {0} with no server: nginx would point at nothing")]
    NoServers(String),
}

impl ProxyError {
    /// What the failed test or reload command printed (empty for the other errors): for the
    /// person watching, not part of the message, which the history keeps.
    pub fn output(&self) -> &str {
        match self {
            Self::StagedTestFailed { output, .. }
            | Self::TestFailed { output, .. }
            | Self::ReloadFailed { output, .. } => output.text(),
            _ => "",
        }
    }
}

/// What a test or reload command printed (stderr, then stdout, trimmed): for the terminal,
/// never for a stored record, as a reload command (`ssh`, `docker exec`, a script) may print
/// what it read. Its `Debug` form is its length only, so an error printed with `{:?}` does not
/// carry it either.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CommandOutput(String);

impl CommandOutput {
    /// The text.
    pub fn text(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for CommandOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommandOutput({} bytes)", self.0.len())
    }
}

const HEADER: &str = "# Written by imgctl deploy: edits are overwritten by the next deploy.\n";

/// Renders the upstream file for `traffic`.
///
/// No comment holds a value taken as it is from the compose file: a line break in one would
/// end the comment and make the rest a directive. The state line is JSON, whose strings
/// escape every control character, so it stays one line whatever the values hold; the
/// upstream name and the addresses are checked when the compose file is read.
pub fn render(upstream: &str, traffic: &Traffic) -> String {
    let state = serde_json::to_string(traffic).expect("traffic serializes");
    let mut text = format!("{HEADER}{STATE_PREFIX}{state}\nupstream {upstream} {{\n");
    for server in &traffic.servers {
        text.push_str(&format!("    server {} weight={};\n", server.addr, server.weight));
    }
    text.push_str("}\n");
    text
}

/// Reads the state line of an upstream file's text; `Ok(None)` when it has none (a file not
/// written by imgctl yet).
pub fn parse_state(text: &str) -> Result<Option<Traffic>, String> {
    let Some(line) = text.lines().find_map(|l| l.strip_prefix(STATE_PREFIX)) else { return Ok(None) };
    serde_json::from_str(line).map(Some).map_err(|e| e.to_string())
}

/// How long a switch waits for another one through the same directory (each is a test and
/// a reload, normally well under a second).
const SWITCH_WAIT: Duration = Duration::from_secs(60);

/// The switch over one upstream file.
#[derive(Debug)]
pub struct Switch<'a> {
    settings: &'a ProxySettings,
    env: ChildEnv,
    wait: Duration,
}

impl<'a> Switch<'a> {
    /// A switch driven by `settings`, running its test and reload commands with `env`.
    pub fn new(settings: &'a ProxySettings, env: ChildEnv) -> Self {
        Self { settings, env, wait: SWITCH_WAIT }
    }

    /// The upstream file (`None`: the service has no switch).
    pub fn path(&self) -> Option<&Path> {
        self.settings.upstream_file.as_deref()
    }

    /// The state in the upstream file (`None`: no switch, no file, or one imgctl has not
    /// written yet).
    pub fn read(&self) -> Result<Option<Traffic>, ProxyError> {
        let Some(path) = self.path() else { return Ok(None) };
        match std::fs::read_to_string(path) {
            Ok(text) => parse_state(&text).map_err(|reason| ProxyError::DamagedState { path: path.into(), reason }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ProxyError::File { action: "reading", path: path.into(), source }),
        }
    }

    /// Sends traffic where `traffic` says: stages the new file beside the live one and, when
    /// the test command is nginx itself, tests it alone; renames it into place; runs the
    /// configured test; reloads. On any failure the previous file is back in place (and
    /// nginx, which was not reloaded with the new one, keeps serving the old). Another
    /// service's switch through the same directory waits until this one ends. Returns how
    /// long it took.
    pub fn apply(&self, traffic: &Traffic) -> Result<Duration, ProxyError> {
        if traffic.servers.is_empty() {
            return Err(ProxyError::NoServers(traffic.service.clone()));
        }
        let started = Instant::now();
        let Some(path) = self.path() else { return Err(ProxyError::NoSwitch(traffic.service.clone())) };
        let dir = stage::parent(path);
        crate::atomic_file::create_dir(dir, 0o755).map_err(|source| ProxyError::File {
            action: "creating",
            path: dir.into(),
            source,
        })?;
        let _turn = switch_lock::take(dir, self.wait)?;
        // What a run killed half-way through a switch left; only imgctl writes these names.
        let _ = crate::atomic_file::remove_stale_temporaries(path);
        let _ = crate::atomic_file::remove_stale_temporaries(&stage::staged_name(path));
        let previous = match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ProxyError::File { action: "reading", path: path.into(), source }),
        };
        let text = render(&self.settings.upstream, traffic);
        let staged = stage::Staged::write(path, text.as_bytes()).map_err(|source| ProxyError::File {
            action: "staging the new upstream file beside",
            path: path.into(),
            source,
        })?;
        if let Some(nginx) = stage::nginx_program(&self.settings.test) {
            let (command, result) = stage::test_alone(nginx, staged.path(), &self.settings.upstream, &self.env);
            result.map_err(|f| ProxyError::StagedTestFailed { command, status: f.status, output: f.output })?;
        }
        staged.commit(path).map_err(|source| ProxyError::File {
            action: "renaming the tested upstream file into",
            path: path.into(),
            source,
        })?;
        let restore = || match &previous {
            Some(bytes) => {
                let _ = stage::Staged::write(path, bytes).and_then(|old| old.commit(path));
            }
            None => {
                let _ = std::fs::remove_file(path);
            }
        };
        if let Err(f) = run(&self.settings.test, &self.env) {
            restore();
            return Err(ProxyError::TestFailed {
                command: self.settings.test.join(" "),
                status: f.status,
                output: f.output,
            });
        }
        if let Err(f) = run(&self.settings.reload, &self.env) {
            restore();
            return Err(ProxyError::ReloadFailed {
                command: self.settings.reload.join(" "),
                status: f.status,
                output: f.output,
            });
        }
        Ok(started.elapsed())
    }

    /// Reloads nginx with the file as it is (after a crash between writing and reloading).
    pub fn reload(&self) -> Result<(), ProxyError> {
        let Some(path) = self.path() else { return Ok(()) };
        let _turn = switch_lock::take(stage::parent(path), self.wait)?;
        run(&self.settings.test, &self.env).map_err(|f| ProxyError::TestFailed {
            command: self.settings.test.join(" "),
            status: f.status,
            output: f.output,
        })?;
        run(&self.settings.reload, &self.env).map_err(|f| ProxyError::ReloadFailed {
            command: self.settings.reload.join(" "),
            status: f.status,
            output: f.output,
        })
    }
}

/// How a command failed.
struct Failure {
    /// `exit status: 1`, `signal: 9`, or why it could not start.
    status: String,
    output: CommandOutput,
}

/// Runs `argv` with `env`.
fn run(argv: &[String], env: &ChildEnv) -> Result<(), Failure> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Failure { status: "empty command".into(), output: CommandOutput::default() });
    };
    match env.apply(&mut Command::new(program)).args(args).stdin(std::process::Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !stdout.trim().is_empty() {
                text = format!("{text}\n{}", stdout.trim());
            }
            Err(Failure { status: out.status.to_string(), output: CommandOutput(text.trim().to_owned()) })
        }
        Err(e) => Err(Failure { status: format!("cannot run {program}: {e}"), output: CommandOutput::default() }),
    }
}

/// nginx weights for a canary step: `percent` of requests to the new color's `new` servers,
/// the rest to the stable color's `stable` servers, each server of a color weighted alike.
/// Returns (weight of each stable server, weight of each new server); a zero weight means the
/// color's servers leave the upstream.
pub fn canary_weights(percent: u32, stable: usize, new: usize) -> (u32, u32) {
    let percent = percent.min(100);
    if percent == 100 || stable == 0 {
        return (0, 1);
    }
    if percent == 0 || new == 0 {
        return (1, 0);
    }
    // Total new share = percent * stable, total stable share = (100 - percent) * new, so each
    // side's servers together carry exactly their percentage; then reduce.
    let (s, n) = ((100 - percent) * new as u32, percent * stable as u32);
    let g = gcd(s, n);
    (s / g, n / g)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
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
                Server {
                    addr: "127.0.0.1:32768".into(),
                    weight: 9,
                    container: "web-blue-1".into(),
                    color: Color::Blue,
                },
                Server {
                    addr: "127.0.0.1:32769".into(),
                    weight: 1,
                    container: "web-green-1".into(),
                    color: Color::Green,
                },
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
                let new_share =
                    f64::from(wn) * new as f64 / (f64::from(wn) * new as f64 + f64::from(ws) * stable as f64);
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
        assert!(
            matches!(error, ProxyError::TestFailed { ref output, .. } if output.text() == "emerg: bad"),
            "{error:?}"
        );
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
}
