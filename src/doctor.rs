//! `imgctl creds doctor`: is the store healthy, and is docker wired to it?

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::credential::age_file::{AgeFileStore, IdentityKind, mode_of};
use crate::credential::backend::{AnyStore, Selection};
use crate::credential::{Store, StoreError};
use crate::docker_config::{DockerConfig, HELPER_NAME};
use crate::private_path;

/// The helper binary docker runs for `credsStore: imgctl`.
pub const HELPER_BINARY: &str = "docker-credential-imgctl";
/// The server URL of the probe credential (`.invalid` names no real host, RFC 2606).
const PROBE_SERVER: &str = "https://imgctl-doctor.invalid";

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but worth fixing.
    Warn,
    /// Broken.
    Fail,
}

/// One line of the report.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found, and what to do when it is not ok.
    pub detail: String,
}

/// Every check, in order.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// No check failed.
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|check| check.status != Status::Fail)
    }
}

/// Runs every check: the store's files, docker's config.json, the helper on `path_var`, and a
/// store/get/erase round trip through that helper exactly as docker runs it.
pub fn run(selection: &Selection, docker_dir: &Path, path_var: Option<&OsStr>) -> Report {
    let mut checks = vec![check_backend(selection)];
    match &selection.store {
        AnyStore::AgeFile(store) => {
            checks.push(check_directories(store));
            checks.push(check_age_store(store));
        }
        #[cfg(target_os = "linux")]
        AnyStore::SecretService(store) => checks.push(check_listable(store)),
    }
    checks.extend(check_docker_config(docker_dir));
    let helper = find_on_path(HELPER_BINARY, path_var);
    checks.push(match &helper {
        Some(path) => Check { name: "helper", status: Status::Ok, detail: path.display().to_string() },
        None => Check {
            name: "helper",
            status: Status::Fail,
            detail: format!("{HELPER_BINARY} is not on PATH, so docker cannot run it; install it with install/install.sh or add its directory to PATH"),
        },
    });
    if let Some(helper) = helper {
        checks.push(round_trip(&helper));
    }
    Report { checks }
}

fn check_backend(selection: &Selection) -> Check {
    let source = match selection.source {
        crate::credential::backend::ChoiceSource::Environment => "IMGCTL_BACKEND",
        crate::credential::backend::ChoiceSource::ConfigFile => "imgctl's config.json",
        crate::credential::backend::ChoiceSource::Default => "the default",
        crate::credential::backend::ChoiceSource::Auto => "auto when it was set",
    };
    let serving = selection.store.backend();
    match &selection.fallback {
        None => Check {
            name: "backend",
            status: Status::Ok,
            detail: format!("{serving} (chosen by {source}: {})", selection.choice),
        },
        Some(why) => Check {
            name: "backend",
            status: Status::Warn,
            detail: format!("{serving}: {} (chosen by {source}) fell back because {why}", selection.choice),
        },
    }
}

fn check_listable(store: &dyn Store) -> Check {
    match store.list() {
        Ok(entries) => Check {
            name: "store",
            status: Status::Ok,
            detail: format!("{}; {} credential(s)", store.describe(), entries.len()),
        },
        Err(e) => Check { name: "store", status: Status::Fail, detail: format!("{}: {e}", store.describe()) },
    }
}

/// The store's directories by the rule the store itself applies ([`crate::private_path`]): the
/// same refusal, said here with its reason and fix.
fn check_directories(store: &AgeFileStore) -> Check {
    let name = "directories";
    let mut found = Vec::new();
    for dir in store.directories() {
        match private_path::check_dir_if_present(dir) {
            Ok(true) => found.push(format!("{} is private", dir.display())),
            Ok(false) => found.push(format!("{} is not created yet", dir.display())),
            Err(e) => return Check { name, status: Status::Fail, detail: e.to_string() },
        }
    }
    Check { name, status: Status::Ok, detail: found.join("; ") }
}

fn check_age_store(store: &AgeFileStore) -> Check {
    let identity = store.identity_path();
    let kind = match store.identity_kind() {
        Ok(kind) => kind,
        Err(e) => return Check { name: "store", status: Status::Fail, detail: format!("{}: {e}", store.describe()) },
    };
    let base = format!("{}; identity {}", store.describe(), identity.display());
    let loose = |path: &Path| mode_of(path).is_some_and(|mode| mode & 0o077 != 0);
    if kind != IdentityKind::Missing && (loose(identity) || loose(store.store_path())) {
        return Check {
            name: "store",
            status: Status::Fail,
            detail: format!(
                "{base}: readable by others; run: chmod 600 {} {}",
                identity.display(),
                store.store_path().display()
            ),
        };
    }
    let (status, note) = match kind {
        IdentityKind::Missing => {
            (Status::Warn, " (not created yet: the first login creates it, or run imgctl creds init)")
        }
        IdentityKind::Plain => (Status::Ok, ""),
        IdentityKind::Passphrase => (Status::Ok, " (passphrase-protected)"),
    };
    let detail = match store.list() {
        Ok(entries) => format!("{base}{note}; {} credential(s)", entries.len()),
        Err(e) => return Check { name: "store", status: Status::Fail, detail: format!("{base}: {e}") },
    };
    Check { name: "store", status, detail }
}

fn check_docker_config(docker_dir: &Path) -> Vec<Check> {
    let config = match DockerConfig::load(docker_dir) {
        Ok(config) => config,
        Err(e) => return vec![Check { name: "docker config", status: Status::Fail, detail: e.to_string() }],
    };
    let path = config.path().display();
    let scoped = config.registries_using_helper(HELPER_NAME);
    let wiring = match config.creds_store() {
        Some(HELPER_NAME) => {
            Check { name: "docker config", status: Status::Ok, detail: format!("{path}: credsStore is {HELPER_NAME}") }
        }
        _ if !scoped.is_empty() => Check {
            name: "docker config",
            status: Status::Ok,
            detail: format!("{path}: credHelpers sends {} to {HELPER_NAME}", scoped.join(", ")),
        },
        other => Check {
            name: "docker config",
            status: Status::Warn,
            detail: format!(
                "{path}: credsStore is {}, so docker does not use imgctl; run: imgctl creds configure-docker",
                other.map_or("unset".to_string(), |s| format!("{s:?}"))
            ),
        },
    };
    // Every plaintext field docker reads, in any spelling, and those a later `auths` hides.
    let plaintext = config.servers_with_plaintext();
    let leftovers = if plaintext.is_empty() {
        Check { name: "plaintext", status: Status::Ok, detail: format!("{path} holds no plaintext credentials") }
    } else {
        Check {
            name: "plaintext",
            status: Status::Fail,
            detail: format!(
                "{path} holds plaintext credentials for {}; run: imgctl creds migrate --from config --remove-source",
                plaintext.join(", ")
            ),
        }
    };
    vec![wiring, leftovers]
}

/// store, get, erase, get through the helper binary with a random probe secret.
fn round_trip(helper: &Path) -> Check {
    let name = "round trip";
    let secret = random_hex(16);
    let request = serde_json::json!({"ServerURL": PROBE_SERVER, "Username": "imgctl-doctor", "Secret": secret});
    let steps = (|| -> Result<(), String> {
        call(helper, "store", request.to_string().as_bytes())?;
        let got = call(helper, "get", PROBE_SERVER.as_bytes())?;
        let got: serde_json::Value =
            serde_json::from_slice(&got).map_err(|_| "get printed something that is not JSON".to_string())?;
        if got["Secret"] != secret.as_str() || got["Username"] != "imgctl-doctor" {
            return Err("get returned another credential than the one stored".into());
        }
        call(helper, "erase", PROBE_SERVER.as_bytes())?;
        match call(helper, "get", PROBE_SERVER.as_bytes()) {
            Err(message) if message == StoreError::NotFound.to_string() => Ok(()),
            Err(message) => Err(format!("get after erase: {message}")),
            Ok(_) => Err("the credential was still there after erase".into()),
        }
    })();
    match steps {
        Ok(()) => {
            Check { name, status: Status::Ok, detail: format!("store, get, erase through {} work", helper.display()) }
        }
        Err(message) => {
            // Leave no probe behind when a step after the store failed.
            let _ = call(helper, "erase", PROBE_SERVER.as_bytes());
            Check { name, status: Status::Fail, detail: message }
        }
    }
}

/// Runs `helper action` with `input` on stdin: stdout on success, the helper's one-line error
/// otherwise.
fn call(helper: &Path, action: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(helper)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("running {}: {e}", helper.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(input).map_err(|e| format!("writing to {action}: {e}"))?;
    drop(stdin);
    let mut stdout = Vec::new();
    child.stdout.take().expect("piped").read_to_end(&mut stdout).map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() { Ok(stdout) } else { Err(String::from_utf8_lossy(&stdout).trim().to_owned()) }
}

/// The first executable `name` in the directories of `path_var`.
pub fn find_on_path(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(name))
        .find(|path| path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        let _ = urandom.read_exact(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
