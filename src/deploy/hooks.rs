//! Lifecycle hooks: executables named after the moment they run, in the service's hooks folder,
//! given `IMGCTL_*` variables. A hook that fails before the switch aborts the deploy.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// A hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// It exited non-zero or was killed.
    #[error("the {hook} hook ({path}) failed ({status}){}", output_suffix(.output))]
    Failed {
        /// Which hook.
        hook: &'static str,
        /// Its file.
        path: PathBuf,
        /// How it ended.
        status: String,
        /// The end of what it printed.
        output: String,
    },
    /// It ran past its time limit and was killed.
    #[error("the {hook} hook ({path}) ran longer than {limit:?} and was killed{}", output_suffix(.output))]
    TimedOut {
        /// Which hook.
        hook: &'static str,
        /// Its file.
        path: PathBuf,
        /// The limit.
        limit: Duration,
        /// The end of what it printed.
        output: String,
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

fn output_suffix(output: &str) -> String {
    if output.is_empty() { String::new() } else { format!(": {output}") }
}

/// A hook that ran.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HookRun {
    /// Which.
    pub hook: Hook,
    /// How long it took.
    pub elapsed: Duration,
    /// The end of what it printed (stdout and stderr).
    pub output: String,
}

const OUTPUT_TAIL: usize = 2048;

/// Runs `hook` from `dir` with `env` if the file exists; `Ok(None)` when there is no such hook.
/// Blocks until the hook ends or `limit` passes.
pub fn run(dir: &Path, hook: Hook, env: &[(String, String)], limit: Duration) -> Result<Option<HookRun>, HookError> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(hook.file_name());
    let Ok(meta) = std::fs::metadata(&path) else { return Ok(None) };
    let name = hook.file_name();
    let cannot = |reason: String| HookError::CannotRun { hook: name, path: path.clone(), reason };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(cannot("it is not an executable file (chmod +x it, or remove it)".into()));
    }
    let started = Instant::now();
    let (reader, writer) = std::io::pipe().map_err(|e| cannot(e.to_string()))?;
    let mut child = Command::new(&path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(writer.try_clone().map_err(|e| cannot(e.to_string()))?)
        .stderr(writer)
        .spawn()
        .map_err(|e| cannot(e.to_string()))?;
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
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(cannot(e.to_string())),
        }
    };
    // A background process the hook left behind may hold the pipe open: wait for it briefly.
    let output = tail(&collected.recv_timeout(Duration::from_secs(2)).unwrap_or_default());
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
        let env = vec![("IMGCTL_SERVICE".to_owned(), "web".to_owned())];
        let dir = hook_dir("ok", "#!/bin/sh\necho \"service $IMGCTL_SERVICE\"\n", 0o755);
        let ran = run(&dir, Hook::PreSwitch, &env, Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(ran.output, "service web");
        assert!(run(&dir, Hook::PostSwitch, &env, Duration::from_secs(10)).unwrap().is_none(), "no file, no hook");

        let dir = hook_dir("fails", "#!/bin/sh\necho smoke test failed >&2\nexit 3\n", 0o755);
        let error = run(&dir, Hook::PreSwitch, &env, Duration::from_secs(10)).unwrap_err();
        assert!(error.to_string().contains("pre-switch") && error.to_string().contains("smoke test failed"), "{error}");

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
}
