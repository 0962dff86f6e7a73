//! The environment of the programs a deploy runs (hooks, the proxy's test and reload): an
//! allow-list, not imgctl's own environment. imgctl's environment holds secrets
//! (`IMGCTL_PASSPHRASE`, `DOCKER_AUTH_CONFIG`, a CI's tokens), and a hook is a script anyone
//! with write access to the hooks folder can change.

use std::ffi::{OsStr, OsString};
use std::process::Command;

/// Variables every child gets, when imgctl has them: what a shell script needs to find
/// programs, write temporary files and print dates and text; and which Docker Engine to talk
/// to, so a reload through `docker exec proxy nginx -s reload` reaches the engine imgctl
/// deploys on.
pub const ALLOWED: [&str; 8] = ["PATH", "HOME", "USER", "LANG", "TZ", "TMPDIR", "DOCKER_HOST", "DOCKER_CONTEXT"];

/// Locale variables (`LC_ALL`, `LC_CTYPE`, ...) pass too.
pub const ALLOWED_PREFIX: &str = "LC_";

/// imgctl's own secrets: `x-imgctl.pass_env` cannot name them.
pub const NEVER: [&str; 2] = ["IMGCTL_PASSPHRASE", "DOCKER_AUTH_CONFIG"];

/// Why a name cannot be in `x-imgctl.pass_env`; `None` when it can.
pub fn refuse_pass_env(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let is_name = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_name {
        Some("is not a variable name (letters, digits and '_', not starting with a digit)")
    } else if NEVER.contains(&name) {
        Some("is a secret of imgctl's own, and never goes to hooks or proxy commands")
    } else {
        None
    }
}

/// The variables a child runs with.
#[derive(Clone, Default)]
pub struct ChildEnv {
    vars: Vec<(OsString, OsString)>,
}

impl ChildEnv {
    /// The allowed variables of this process's environment, and those named in `pass`.
    pub fn inherit(pass: &[String]) -> Self {
        Self::select(std::env::vars_os(), pass)
    }

    /// The allowed variables of `vars`, and those named in `pass`.
    pub fn select(vars: impl IntoIterator<Item = (OsString, OsString)>, pass: &[String]) -> Self {
        let allowed = |name: &OsStr| {
            let Some(name) = name.to_str() else { return false };
            !NEVER.contains(&name)
                && (ALLOWED.contains(&name) || name.starts_with(ALLOWED_PREFIX) || pass.iter().any(|p| p == name))
        };
        Self { vars: vars.into_iter().filter(|(name, _)| allowed(name)).collect() }
    }

    /// Adds `vars` (imgctl's own `IMGCTL_*` values), each replacing an inherited one of the
    /// same name.
    pub fn with(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        for (name, value) in vars {
            self.vars.retain(|(n, _)| n.as_os_str() != OsStr::new(&name));
            self.vars.push((name.into(), value.into()));
        }
        self
    }

    /// Gives `command` exactly these variables.
    pub fn apply<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command.env_clear().envs(self.vars.iter().map(|(k, v)| (k, v)))
    }
}

/// Names only: a passed-through value may be a credential (a webhook URL).
impl std::fmt::Debug for ChildEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.vars.iter().map(|(name, _)| name)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        list.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect()
    }

    #[test]
    fn only_allowed_and_passed_variables_reach_a_child() {
        let parent = vars(&[
            ("PATH", "/usr/bin:/bin"),
            ("LC_ALL", "C.UTF-8"),
            ("IMGCTL_PASSPHRASE", "hunter2"),
            ("DOCKER_AUTH_CONFIG", "{}"),
            ("CI_TOKEN", "t0ken"),
            ("SMOKE_PATHS", "/ /health"),
        ]);
        let pass = ["SMOKE_PATHS".to_owned(), "IMGCTL_PASSPHRASE".to_owned()];
        let env = ChildEnv::select(parent, &pass).with([("IMGCTL_SERVICE".to_owned(), "web".to_owned())]);
        let out = env.apply(Command::new("/usr/bin/env").arg("-0")).output().unwrap();
        let mut seen: Vec<String> =
            String::from_utf8(out.stdout).unwrap().split('\0').filter(|l| !l.is_empty()).map(str::to_owned).collect();
        seen.sort();
        assert_eq!(seen, ["IMGCTL_SERVICE=web", "LC_ALL=C.UTF-8", "PATH=/usr/bin:/bin", "SMOKE_PATHS=/ /health"]);
        assert_eq!(format!("{env:?}"), r#"["PATH", "LC_ALL", "SMOKE_PATHS", "IMGCTL_SERVICE"]"#);
    }

    #[test]
    fn pass_env_refuses_secrets_and_non_names() {
        assert_eq!(refuse_pass_env("SMOKE_PATHS"), None);
        assert_eq!(refuse_pass_env("_X1"), None);
        for bad in ["IMGCTL_PASSPHRASE", "DOCKER_AUTH_CONFIG", "", "1X", "A=B", "A B"] {
            assert!(refuse_pass_env(bad).is_some(), "{bad:?}");
        }
    }
}
