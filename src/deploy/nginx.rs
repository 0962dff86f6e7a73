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

pub use super::model::canary_weights;

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

#[cfg(test)]
mod tests;
