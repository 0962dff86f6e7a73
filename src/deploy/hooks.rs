//! Lifecycle hooks: executables named after the moment they run, in the service's hooks folder,
//! given `IMGCTL_*` variables and an allow-listed environment ([`ChildEnv`]). A hook that
//! fails before the switch aborts the deploy.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::child_env::ChildEnv;

/// The moments a hook can run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    /// Before anything is pulled or started; a failure aborts.
    PreDeploy,
    /// The new color is healthy, traffic has not moved; a failure aborts (the new color is
    /// removed). `IMGCTL_NEW_ADDRS` lists the new replicas for a smoke test.
    PreSwitch,
    /// Traffic has moved; a failure moves it back.
    PostSwitch,
    /// The deploy succeeded and the old color is stopped; a failure is reported only.
    PostDeploy,
    /// Traffic went back to the old color (a failed check, `imgctl rollback`, `--abort`); a
    /// failure is reported only.
    OnRollback,
}

impl Hook {
    /// The executable's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::PreDeploy => "pre-deploy",
            Self::PreSwitch => "pre-switch",
            Self::PostSwitch => "post-switch",
            Self::PostDeploy => "post-deploy",
            Self::OnRollback => "on-rollback",
        }
    }
}

/// A hook failed. The messages say which hook and how it ended, never what it printed: they
/// go into the history, the report and `IMGCTL_REASON`, and a hook's output may hold what it
/// read (a token, a URL with credentials). The output travels beside, for the terminal.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// It exited non-zero or was killed.
    #[error("the {hook} hook ({path}) failed ({status})")]
    Failed {
        /// Which hook.
        hook: &'static str,
        /// Its file.
        path: PathBuf,
        /// How it ended.
        status: String,
        /// The end of what it printed.
        output: HookOutput,
    },
    /// It ran past its time limit and was killed, with every process it started.
    #[error("the {hook} hook ({path}) ran longer than {limit:?} and was killed")]
    TimedOut {
        /// Which hook.
        hook: &'static str,
        /// Its file.
        path: PathBuf,
        /// The limit.
        limit: Duration,
        /// The end of what it printed.
        output: HookOutput,
    },
    /// The file exists but cannot be run.
    #[error("the {hook} hook {path} cannot run: {reason}")]
    CannotRun {
        /// Which hook.
        hook: &'static str,
        /// Its file.
        path: PathBuf,
        /// Why (not executable, ...).
        reason: String,
    },
}

impl HookError {
    /// What the hook printed before it failed (empty when it did not run).
    pub fn output(&self) -> &str {
        match self {
            Self::Failed { output, .. } | Self::TimedOut { output, .. } => output.text(),
            Self::CannotRun { .. } => "",
        }
    }
}

/// The end of what a hook printed (stdout and stderr): for the person watching the run,
/// never for a stored record. Its `Debug` form is its length only, so an error printed with
/// `{:?}` does not carry it either.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HookOutput(String);

impl HookOutput {
    /// The text.
    pub fn text(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for HookOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookOutput({} bytes)", self.0.len())
    }
}

/// A hook that ran.
#[derive(Clone, Debug)]
pub struct HookRun {
    /// Which.
    pub hook: Hook,
    /// How long it took.
    pub elapsed: Duration,
    /// The end of what it printed.
    pub output: HookOutput,
}

const OUTPUT_TAIL: usize = 2048;

/// Runs `hook` from `dir` with exactly the variables of `env` if the file exists; `Ok(None)`
/// when there is no such hook. Blocks until the hook ends or `limit` passes; then the hook's
/// whole process group is killed, so what it started in the background dies with it.
pub fn run(dir: &Path, hook: Hook, env: &ChildEnv, limit: Duration) -> Result<Option<HookRun>, HookError> {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let path = dir.join(hook.file_name());
    let Ok(meta) = std::fs::metadata(&path) else { return Ok(None) };
    let name = hook.file_name();
    let cannot = |reason: String| HookError::CannotRun { hook: name, path: path.clone(), reason };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(cannot("it is not an executable file (chmod +x it, or remove it)".into()));
    }
    let started = Instant::now();
    let (reader, writer) = std::io::pipe().map_err(|e| cannot(e.to_string()))?;
    let mut command = Command::new(&path);
    env.apply(&mut command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(writer.try_clone().map_err(|e| cannot(e.to_string()))?)
        .stderr(writer)
        // A group of its own (its id is the hook's pid): a timeout kills the group.
        .process_group(0);
    let mut child = command.spawn().map_err(|e| cannot(e.to_string()))?;
    // The command holds the pipe's writing end: dropped, the reader sees the end when the
    // hook (and whatever it started) closes its copies.
    drop(command);
    // Read from a thread: a chatty hook must not block on a full pipe.
    let (sender, collected) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = (&reader).take(1 << 20).read_to_end(&mut all);
        let _ = sender.send(all);
        let _ = std::io::copy(&mut &reader, &mut std::io::sink());
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= limit => {
                let group = rustix::process::Pid::from_child(&child);
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(cannot(e.to_string())),
        }
    };
    // A background process the hook left behind may hold the pipe open: wait for it briefly.
    let output = HookOutput(tail(&collected.recv_timeout(Duration::from_secs(2)).unwrap_or_default()));
    match status {
        Some(status) if status.success() => Ok(Some(HookRun { hook, elapsed: started.elapsed(), output })),
        Some(status) => Err(HookError::Failed { hook: name, path, status: status.to_string(), output }),
        None => Err(HookError::TimedOut { hook: name, path, limit, output }),
    }
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().rev().nth(OUTPUT_TAIL) {
        Some((cut, _)) => format!("...{}", &text[cut..]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("imgctl-hooks-{}", std::process::id()))
    }

    fn hook_dir(name: &str, script: &str, mode: u32) -> PathBuf {
        let dir = scratch().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pre-switch");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        dir
    }

    #[test]
    fn a_hook_sees_its_variables_and_its_failure_is_reported() {
        let env = ChildEnv::select([("PATH".into(), "/usr/bin:/bin".into())], &[])
            .with([("IMGCTL_SERVICE".to_owned(), "web".to_owned())]);
        let dir = hook_dir("ok", "#!/bin/sh\necho \"service $IMGCTL_SERVICE\"\n", 0o755);
        let ran = run(&dir, Hook::PreSwitch, &env, Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(ran.output.text(), "service web");
        assert!(run(&dir, Hook::PostSwitch, &env, Duration::from_secs(10)).unwrap().is_none(), "no file, no hook");

        let dir = hook_dir("fails", "#!/bin/sh\necho smoke test failed >&2\nexit 3\n", 0o755);
        let error = run(&dir, Hook::PreSwitch, &env, Duration::from_secs(10)).unwrap_err();
        assert!(error.to_string().contains("pre-switch") && error.to_string().contains("exit status: 3"), "{error}");
        assert!(!error.to_string().contains("smoke test failed"), "the output stays out of the message: {error}");
        assert!(!format!("{error:?}").contains("smoke test failed"), "and out of its Debug form: {error:?}");
        assert_eq!(error.output(), "smoke test failed");

        let dir = hook_dir("slow", "#!/bin/sh\nexec sleep 30\n", 0o755);
        let started = Instant::now();
        let error = run(&dir, Hook::PreSwitch, &env, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(error, HookError::TimedOut { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));

        let dir = hook_dir("mode", "#!/bin/sh\ntrue\n", 0o644);
        let error = run(&dir, Hook::PreSwitch, &env, Duration::from_secs(10)).unwrap_err();
        assert!(error.to_string().contains("chmod +x"), "{error}");
        std::fs::remove_dir_all(scratch()).unwrap();
    }

    /// Whether process `pid` still runs (a zombie waiting for its reaper does not).
    fn running(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
            Err(_) => false,
        }
    }

    #[test]
    fn a_timed_out_hook_is_killed_with_what_it_started_in_the_background() {
        let scratch = std::env::temp_dir().join(format!("imgctl-hooks-group-{}", std::process::id()));
        let pid_file = scratch.join("background.pid");
        std::fs::create_dir_all(&scratch).unwrap();
        let script = format!("#!/bin/sh\nsleep 1000 &\necho $! > {}\nexec sleep 30\n", pid_file.display());
        let path = scratch.join("pre-switch");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = ChildEnv::select([("PATH".into(), "/usr/bin:/bin".into())], &[]);

        let error = run(&scratch, Hook::PreSwitch, &env, Duration::from_millis(500)).unwrap_err();
        assert!(matches!(error, HookError::TimedOut { .. }), "{error}");
        let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        // A killed process takes a moment to exit; it then lingers, if at all, as a zombie.
        let deadline = Instant::now() + Duration::from_secs(5);
        while running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let alive = running(pid);
        if alive {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        std::fs::remove_dir_all(&scratch).unwrap();
        assert!(!alive, "the hook's background `sleep 1000` (pid {pid}) outlived the hook's timeout");
    }
}
