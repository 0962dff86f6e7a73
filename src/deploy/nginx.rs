//! The nginx traffic switch: the service's `upstream` block in a file nginx includes, written
//! atomically, tested with `nginx -t`, then reloaded with a configurable command.
//!
//! The file is also where the deploy state lives between runs: its first lines carry which
//! color is live and, during a canary or rolling update, what is in flight. One atomic rename
//! changes traffic and state together, so they can never disagree after a crash.

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
    /// `nginx -t` refused the configuration with the new upstream; the old file was put back.
    #[error("the nginx configuration test ({command}) failed, so traffic was not switched: {output}")]
    TestFailed {
        /// The command.
        command: String,
        /// What it printed.
        output: String,
    },
    /// The reload command failed; the old file was put back.
    #[error("the nginx reload ({command}) failed, so traffic was not switched: {output}")]
    ReloadFailed {
        /// The command.
        command: String,
        /// What it printed.
        output: String,
    },
    /// The service has no upstream file (swarm's own rolling update) to send traffic with.
    #[error("{0} has no x-imgctl.proxy.upstream_file: imgctl moves no traffic for it")]
    NoSwitch(String),
    /// No server would be left in the upstream.
    #[error("refusing to write an upstream for {0} with no server: nginx would point at nothing")]
    NoServers(String),
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

/// The switch over one upstream file.
#[derive(Debug)]
pub struct Switch<'a> {
    settings: &'a ProxySettings,
    env: ChildEnv,
}

impl<'a> Switch<'a> {
    /// A switch driven by `settings`, running its test and reload commands with `env`.
    pub fn new(settings: &'a ProxySettings, env: ChildEnv) -> Self {
        Self { settings, env }
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

    /// Sends traffic where `traffic` says: writes the file atomically, tests the configuration,
    /// reloads. On any failure the previous file is put back (and nginx, which was not
    /// reloaded with the new one, keeps serving the old). Returns how long it took.
    pub fn apply(&self, traffic: &Traffic) -> Result<Duration, ProxyError> {
        if traffic.servers.is_empty() {
            return Err(ProxyError::NoServers(traffic.service.clone()));
        }
        let started = Instant::now();
        let Some(path) = self.path() else { return Err(ProxyError::NoSwitch(traffic.service.clone())) };
        let previous = match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ProxyError::File { action: "reading", path: path.into(), source }),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ProxyError::File {
                action: "creating",
                path: dir.into(),
                source,
            })?;
        }
        let text = render(&self.settings.upstream, traffic);
        crate::atomic_file::write(path, text.as_bytes(), 0o644).map_err(|source| ProxyError::File {
            action: "writing",
            path: path.into(),
            source,
        })?;
        let restore = || match &previous {
            Some(bytes) => {
                let _ = crate::atomic_file::write(path, bytes, 0o644);
            }
            None => {
                let _ = std::fs::remove_file(path);
            }
        };
        if let Err(output) = run(&self.settings.test, &self.env) {
            restore();
            return Err(ProxyError::TestFailed { command: self.settings.test.join(" "), output });
        }
        if let Err(output) = run(&self.settings.reload, &self.env) {
            restore();
            return Err(ProxyError::ReloadFailed { command: self.settings.reload.join(" "), output });
        }
        Ok(started.elapsed())
    }

    /// Reloads nginx with the file as it is (after a crash between writing and reloading).
    pub fn reload(&self) -> Result<(), ProxyError> {
        if self.path().is_none() {
            return Ok(());
        }
        run(&self.settings.test, &self.env)
            .map_err(|output| ProxyError::TestFailed { command: self.settings.test.join(" "), output })?;
        run(&self.settings.reload, &self.env)
            .map_err(|output| ProxyError::ReloadFailed { command: self.settings.reload.join(" "), output })
    }
}

/// Runs `argv` with `env`; `Err` holds its combined output (trimmed) when it fails or cannot
/// start.
fn run(argv: &[String], env: &ChildEnv) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    match env.apply(&mut Command::new(program)).args(args).stdin(std::process::Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !stdout.trim().is_empty() {
                text = format!("{text} {}", stdout.trim());
            }
            Err(format!("{} ({})", if text.is_empty() { "no output" } else { &text }, out.status))
        }
        Err(e) => Err(format!("cannot run {program}: {e}")),
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
        let dir = std::env::temp_dir().join(format!("imgctl-nginx-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let parent = [
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("IMGCTL_PASSPHRASE".into(), "hunter2".into()),
            ("NGINX_CONF".into(), "/etc/nginx/test.conf".into()),
        ];
        let env = ChildEnv::select(parent, &["NGINX_CONF".to_owned()]);
        let dump = |name: &str| format!("env > {}", dir.join(name).display());
        let proxy = settings(&dir, &dump("test.env"), &dump("reload.env"));
        Switch::new(&proxy, env).apply(&traffic()).unwrap();
        for name in ["test.env", "reload.env"] {
            let seen = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(seen.contains("NGINX_CONF=/etc/nginx/test.conf\n"), "{name}: {seen}");
            assert!(!seen.contains("IMGCTL_PASSPHRASE") && !seen.contains("hunter2"), "{name}: {seen}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
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
        let dir = std::env::temp_dir().join(format!("imgctl-nginx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = settings(&dir, "true", "true");
        let first = traffic();
        Switch::new(&good, env()).apply(&first).unwrap();
        let before = std::fs::read(dir.join("web.conf")).unwrap();

        let mut second = traffic();
        second.phase = Phase::Stable;
        let refused = settings(&dir, "echo 'emerg: bad' >&2; exit 1", "true");
        let error = Switch::new(&refused, env()).apply(&second).unwrap_err();
        assert!(matches!(error, ProxyError::TestFailed { ref output, .. } if output.contains("emerg: bad")), "{error}");
        assert_eq!(std::fs::read(dir.join("web.conf")).unwrap(), before);

        let reload_fails = settings(&dir, "true", "exit 3");
        assert!(matches!(Switch::new(&reload_fails, env()).apply(&second), Err(ProxyError::ReloadFailed { .. })));
        assert_eq!(Switch::new(&good, env()).read().unwrap(), Some(first));

        let mut empty = traffic();
        empty.servers.clear();
        assert!(matches!(Switch::new(&good, env()).apply(&empty), Err(ProxyError::NoServers(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
