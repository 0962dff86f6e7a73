//! Pointing docker at imgctl (`credsStore: imgctl`) and undoing it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::credential::migrate::{self, MigrateError, MigrationReport};
use crate::credential::{RegistryKey, Store};
use crate::docker_config::{DockerConfig, DockerConfigError, HELPER_NAME};

/// The backup written next to config.json before imgctl first changes `credsStore`.
pub const BACKUP_SUFFIX: &str = ".imgctl-backup";

/// The `credsStore` helpers whose credentials `imgctl creds migrate --from` moves.
pub const MIGRATABLE_STORES: &[&str] = &["pass", "secretservice"];

/// What [`configure`] did.
#[derive(Debug, Serialize)]
pub struct SetupReport {
    /// The config.json edited.
    pub config_path: PathBuf,
    /// `credsStore` before (None: unset).
    pub previous_creds_store: Option<String>,
    /// Whether `credsStore` was changed (false: it already named imgctl).
    pub changed: bool,
    /// The backup of config.json, when one was written by this run.
    pub backup: Option<PathBuf>,
    /// The plaintext credentials moved into the store.
    pub migration: MigrationReport,
    /// The logins left behind in the helper `credsStore` named before, when imgctl cannot
    /// move them (see [`MIGRATABLE_STORES`]).
    pub stranded: Option<StrandedLogins>,
}

/// Logins docker kept in a helper that imgctl cannot read them from (`desktop`, `ecr-login`,
/// `osxkeychain`, `wincred`, ...). They stay in that helper, but docker stops asking it once
/// `credsStore` is imgctl, until [`restore`] puts it back.
#[derive(Debug, Serialize)]
pub struct StrandedLogins {
    /// The helper's name (`docker-credential-<helper>`).
    pub helper: String,
    /// The registries docker lists in `auths` for that helper and will ask a login for again
    /// (neither sent elsewhere by `credHelpers` nor already in imgctl's store). Empty when
    /// config.json lists none: which registries the helper holds is then unknown.
    pub login_again: Vec<String>,
}

/// What [`restore`] did.
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    /// The config.json edited.
    pub config_path: PathBuf,
    /// The `credsStore` value put back (None: removed).
    pub restored_creds_store: Option<String>,
    /// Registries docker knows whose credentials stay in imgctl's store: docker asks for a
    /// login again (imgctl never writes them back in plain text).
    pub login_again: Vec<String>,
}

/// Setting docker up failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Reading or writing config.json (or its backup) failed.
    #[error(transparent)]
    DockerConfig(#[from] DockerConfigError),
    /// Moving plaintext credentials into the store failed; config.json was not changed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// Removing the backup failed.
    #[error("removing {path}: {source}")]
    RemoveBackup {
        /// The backup file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The backup file of `config`.
pub fn backup_path(config: &Path) -> PathBuf {
    let mut name = config.as_os_str().to_owned();
    name.push(BACKUP_SUFFIX);
    PathBuf::from(name)
}

/// Moves plaintext credentials from `docker_dir/config.json` into `store`, then sets
/// `credsStore` to imgctl, keeping every other key. Before the first change the configuration
/// (already free of plaintext credentials) is backed up, so [`restore`] can put the previous
/// `credsStore` back. Running it again changes nothing.
pub fn configure(docker_dir: &Path, store: &dyn Store) -> Result<SetupReport, SetupError> {
    let mut config = DockerConfig::load(docker_dir)?;
    let previous = config.creds_store().map(str::to_owned);
    let changed = previous.as_deref() != Some(HELPER_NAME);
    let mut backup = None;
    let backup_file = backup_path(config.path());
    if changed && !backup_file.exists() {
        // The backup exists for the previous credsStore; it never holds a plaintext credential.
        let mut copy = config.clone();
        copy.strip_all_plaintext();
        copy.save_to(&backup_file)?;
        backup = Some(backup_file);
    }
    // Before the migration, which leaves an empty entry for each plaintext credential it moves.
    let stranded = match previous.as_deref() {
        Some(helper) if changed && !helper.is_empty() && !MIGRATABLE_STORES.contains(&helper) => {
            Some(StrandedLogins { helper: helper.to_owned(), login_again: logins_left_in_helper(&config, store) })
        }
        _ => None,
    };
    let options = migrate::Options { dry_run: false, remove_source: true, overwrite: false };
    let migration = migrate::from_docker_config(&mut config, store, options)?;
    if changed {
        config.set_creds_store(Some(HELPER_NAME));
    }
    // One write: the credentials are stored, then leave config.json together with the switch.
    if changed || migration.removed_from_source > 0 {
        config.save()?;
    }
    Ok(SetupReport {
        config_path: config.path().to_owned(),
        previous_creds_store: previous,
        changed,
        backup,
        migration,
        stranded,
    })
}

/// The registries whose login only the `credsStore` helper holds: docker writes an empty
/// `auths` entry for each login it gives a helper.
fn logins_left_in_helper(config: &DockerConfig, store: &dyn Store) -> Vec<String> {
    // Only to leave out what imgctl already has: a store that cannot list leaves out nothing.
    let stored: Vec<RegistryKey> = store
        .list()
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| RegistryKey::parse(&entry.server_url).ok())
        .collect();
    config
        .auths_without_plaintext()
        .into_iter()
        .filter(|server| match RegistryKey::parse(server) {
            Ok(key) => config.cred_helper_for(&key).is_none() && !stored.contains(&key),
            Err(_) => false,
        })
        .collect()
}

/// Puts back the `credsStore` the backup recorded (or removes ours when there is no backup),
/// keeping every other key as it is now, and removes the backup.
pub fn restore(docker_dir: &Path) -> Result<RestoreReport, SetupError> {
    let mut config = DockerConfig::load(docker_dir)?;
    let backup = backup_path(config.path());
    let restored = if backup.exists() {
        let saved = DockerConfig::load_file(&backup)?;
        saved.creds_store().map(str::to_owned)
    } else if config.creds_store() == Some(HELPER_NAME) {
        None
    } else {
        config.creds_store().map(str::to_owned)
    };
    config.set_creds_store(restored.as_deref());
    config.save()?;
    match fs::remove_file(&backup) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(source) => return Err(SetupError::RemoveBackup { path: backup, source }),
    }
    let login_again = config.auths_without_plaintext();
    Ok(RestoreReport { config_path: config.path().to_owned(), restored_creds_store: restored, login_again })
}
