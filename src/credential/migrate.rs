//! Moving credentials kept elsewhere into imgctl's store: plaintext `auths` in docker's
//! config.json, a pass store of docker-credential-pass, docker-credential-secretservice items.
//!
//! Every source works the same way: each credential is stored first (one already there with the
//! same username and secret counts as unchanged, so a second run moves nothing), and only when
//! all are stored, and only when asked, is the source cleaned. A failure part-way loses nothing.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use serde::Serialize;

use super::{Credential, RegistryKey, Secret, Store, StoreError};
use crate::docker_config::{DockerConfig, DockerConfigError, PlaintextAuth};

/// The directory docker-credential-pass keeps its entries in, inside the pass store.
pub const PASS_FOLDER: &str = "docker-credential-helpers";

/// What a migration does besides storing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Report what would move; write nothing anywhere.
    pub dry_run: bool,
    /// Remove each moved credential from its source once all are stored.
    pub remove_source: bool,
    /// Replace a different credential the store already holds for the same registry (without
    /// it, such an entry is skipped: which of the two is newer cannot be told).
    pub overwrite: bool,
}

/// What a migration did (or, with `dry_run`, would do).
#[derive(Debug, Default, Serialize)]
pub struct MigrationReport {
    /// Where the credentials came from.
    pub source: &'static str,
    /// Server URLs stored (or that would be).
    pub migrated: Vec<String>,
    /// Server URLs whose identical credential was already in the store.
    pub unchanged: Vec<String>,
    /// Entries left where they were, with the reason.
    pub skipped: Vec<Skipped>,
    /// How many entries were removed from the source.
    pub removed_from_source: usize,
    /// Nothing was written.
    pub dry_run: bool,
    /// Registries seen so far in this source.
    #[serde(skip)]
    seen: BTreeSet<RegistryKey>,
}

/// An entry a migration did not move.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// Its server URL (or its path, when that is all there is).
    pub server_url: String,
    /// Why it was left.
    pub kind: SkipKind,
    /// The details (never the value).
    pub reason: String,
}

/// Why an entry was left where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipKind {
    /// The store holds a different credential for the registry (see [`Options::overwrite`]).
    Conflict,
    /// The source holds another entry for the same registry, which was taken.
    Duplicate,
    /// The entry could not be read (not decodable, not decryptable).
    Unreadable,
}

/// A migration failed; what was stored before the failure stays stored, the source is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The store refused a credential.
    #[error("storing the credential of {server_url}: {source}")]
    Store {
        /// The credential's server URL.
        server_url: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Reading the source failed.
    #[error("reading {source_name}: {source}")]
    Source {
        /// The source.
        source_name: &'static str,
        /// What failed.
        #[source]
        source: StoreError,
    },
    /// The pass store does not exist.
    #[error("{0} does not exist: no pass store for docker credentials (set PASSWORD_STORE_DIR if it is elsewhere)")]
    NoPassStore(PathBuf),
    /// Cleaning a pass entry failed.
    #[error("removing {path}: {source}")]
    RemovePassEntry {
        /// The entry.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Source and destination are the same items.
    #[error(
        "nothing to move: the store in use is the Secret Service, which serves docker-credential-secretservice's items as they are"
    )]
    SameStore,
    /// config.json could not be rewritten.
    #[error(transparent)]
    DockerConfig(#[from] DockerConfigError),
}

impl MigrationReport {
    fn new(source: &'static str, options: Options) -> Self {
        Self { source, dry_run: options.dry_run, ..Self::default() }
    }

    /// Whether an entry could not be read: the migration is incomplete.
    pub fn has_unreadable(&self) -> bool {
        self.skipped.iter().any(|s| s.kind == SkipKind::Unreadable)
    }

    /// Stores `credential` unless the same one is there; records what happened. Returns whether
    /// the credential is now in the store (so the source may be cleaned).
    fn import(&mut self, target: &dyn Store, credential: &Credential, options: Options) -> Result<bool, MigrateError> {
        let server_url = credential.server_url.clone();
        let key = RegistryKey::parse(&server_url)
            .map_err(|e| MigrateError::Store { server_url: server_url.clone(), source: e.into() })?;
        if !self.seen.insert(key) {
            self.skip(server_url, SkipKind::Duplicate, "another entry of this source for the same registry was taken");
            return Ok(false);
        }
        let existing = match target.get(&server_url) {
            Ok(existing) => Some(existing),
            Err(StoreError::NotFound) => None,
            Err(source) => return Err(MigrateError::Store { server_url, source }),
        };
        if let Some(existing) = existing {
            if existing.username == credential.username && existing.secret == credential.secret {
                self.unchanged.push(server_url);
                return Ok(true);
            }
            if !options.overwrite {
                let reason = format!(
                    "the store already holds another credential for it (user {}); --overwrite replaces it",
                    existing.username
                );
                self.skip(server_url, SkipKind::Conflict, reason);
                return Ok(false);
            }
        }
        if !options.dry_run {
            target
                .store(credential)
                .map_err(|source| MigrateError::Store { server_url: server_url.clone(), source })?;
        }
        self.migrated.push(server_url);
        Ok(true)
    }

    fn skip(&mut self, server_url: impl Into<String>, kind: SkipKind, reason: impl Into<String>) {
        self.skipped.push(Skipped { server_url: server_url.into(), kind, reason: reason.into() });
    }
}

/// Moves the plaintext `auths` of `config` into `target`; with `remove_source`, strips them from
/// `config` in memory once every credential is stored. The caller saves `config`.
pub fn from_docker_config(
    config: &mut DockerConfig,
    target: &dyn Store,
    options: Options,
) -> Result<MigrationReport, MigrateError> {
    let mut report = MigrationReport::new("config", options);
    let mut moved = Vec::new();
    for found in config.plaintext_auths() {
        match found {
            PlaintextAuth::Credential(credential) => {
                if report.import(target, &credential, options)? {
                    moved.push(credential.server_url);
                }
            }
            PlaintextAuth::Unreadable { server_url, reason } => report.skip(server_url, SkipKind::Unreadable, reason),
        }
    }
    if options.remove_source && !options.dry_run && !moved.is_empty() {
        for server_url in &moved {
            config.strip_plaintext(server_url);
        }
        report.removed_from_source = moved.len();
    }
    Ok(report)
}

/// The pass store docker-credential-pass uses: `$PASSWORD_STORE_DIR`, else `~/.password-store`.
pub fn default_pass_dir() -> Option<PathBuf> {
    crate::dirs::env_or_home("PASSWORD_STORE_DIR", ".password-store")
}

/// Moves docker-credential-pass entries into `target`: `<pass dir>/docker-credential-helpers/
/// <base64url(server)>/<username>.gpg`, decrypted with `gpg --batch` (no pass binary needed, no
/// prompt: an entry whose key needs a passphrase the agent does not hold is skipped).
pub fn from_pass(pass_dir: &Path, target: &dyn Store, options: Options) -> Result<MigrationReport, MigrateError> {
    let mut report = MigrationReport::new("pass", options);
    let folder = pass_dir.join(PASS_FOLDER);
    if !folder.is_dir() {
        return Err(MigrateError::NoPassStore(folder));
    }
    let mut moved = Vec::new();
    for registry_dir in sorted_entries(&folder) {
        // Helpers up to 0.6 left a plain file (docker-pass-initialized-check) here.
        if !registry_dir.is_dir() {
            continue;
        }
        let name = registry_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let Some(server_url) = URL_SAFE.decode(&name).ok().and_then(|bytes| String::from_utf8(bytes).ok()) else {
            report.skip(
                registry_dir.display().to_string(),
                SkipKind::Unreadable,
                "the folder name is not base64url of a server URL",
            );
            continue;
        };
        let entries: Vec<PathBuf> = sorted_entries(&registry_dir)
            .into_iter()
            .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "gpg"))
            .collect();
        // docker-credential-pass serves the first entry by name; so does the migration.
        let Some(entry) = entries.first() else { continue };
        for extra in &entries[1..] {
            report.skip(
                &server_url,
                SkipKind::Duplicate,
                format!("{} is a second username for this registry; only the first is served", extra.display()),
            );
        }
        let username = entry.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let secret = match gpg_decrypt(entry) {
            Ok(secret) => secret,
            Err(reason) => {
                report.skip(&server_url, SkipKind::Unreadable, reason);
                continue;
            }
        };
        let credential = Credential { server_url: server_url.clone(), username, secret };
        if report.import(target, &credential, options)? {
            moved.push(entry.clone());
        }
    }
    if options.remove_source && !options.dry_run {
        for entry in &moved {
            fs::remove_file(entry).map_err(|source| MigrateError::RemovePassEntry { path: entry.clone(), source })?;
            if let Some(dir) = entry.parent() {
                let _ = fs::remove_dir(dir); // only when empty
            }
        }
        report.removed_from_source = moved.len();
    }
    Ok(report)
}

/// Moves docker-credential-secretservice items (found by `docker_cli=1`, read from their
/// attributes, never their labels) into `target`.
#[cfg(target_os = "linux")]
pub fn from_secret_service(
    source: &super::secret_service::SecretServiceStore,
    target: &super::backend::AnyStore,
    options: Options,
) -> Result<MigrationReport, MigrateError> {
    if target.backend() == super::backend::BackendChoice::SecretService {
        return Err(MigrateError::SameStore);
    }
    let mut report = MigrationReport::new("secretservice", options);
    let items =
        source.docker_items().map_err(|source| MigrateError::Source { source_name: "the Secret Service", source })?;
    let mut moved = Vec::new();
    for item in items {
        let credential = Credential { server_url: item.server_url, username: item.username, secret: item.secret };
        if report.import(target, &credential, options)? {
            moved.push(credential.server_url);
        }
    }
    if options.remove_source && !options.dry_run {
        for server_url in &moved {
            report.removed_from_source += source
                .delete_registry(server_url)
                .map_err(|source| MigrateError::Source { source_name: "the Secret Service", source })?;
        }
    }
    Ok(report)
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> =
        fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    entries.sort();
    entries
}

/// The decrypted content of a pass entry: exactly the secret (pass inserts it with no newline).
fn gpg_decrypt(entry: &Path) -> Result<Secret, String> {
    let output = Command::new("gpg")
        .args(["--batch", "--quiet", "--no-tty", "--pinentry-mode", "error", "--decrypt"])
        .arg(entry)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running gpg: {e} (install gnupg)"))?;
    let stdout = zeroize::Zeroizing::new(output.stdout);
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        let why = why.lines().last().unwrap_or("gpg failed").trim();
        return Err(format!("gpg could not decrypt {}: {why}", entry.display()));
    }
    let text = std::str::from_utf8(&stdout).map_err(|_| format!("{} does not hold UTF-8 text", entry.display()))?;
    Ok(Secret::new(text.to_owned()))
}
