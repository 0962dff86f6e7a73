//! Moving credentials that live elsewhere into an imgctl store.

use serde::Serialize;

use super::{Store, StoreError};
use crate::docker_config::{DockerConfig, DockerConfigError, PlaintextAuth};

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
    /// Nothing was written.
    pub dry_run: bool,
}

/// An entry a migration could not move.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// Its server URL.
    pub server_url: String,
    /// Why (never the value).
    pub reason: String,
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
    /// config.json could not be rewritten.
    #[error(transparent)]
    DockerConfig(#[from] DockerConfigError),
}

/// Moves the plaintext `auths` of `config` into `store`, then strips them from config.json.
/// The config file is rewritten only after every credential is stored, so a failure part-way
/// loses nothing. Running it again finds nothing left to move.
pub fn from_docker_config(
    config: &mut DockerConfig,
    store: &dyn Store,
    dry_run: bool,
) -> Result<MigrationReport, MigrateError> {
    let mut report = MigrationReport { source: "config", dry_run, ..MigrationReport::default() };
    let mut moved = Vec::new();
    for found in config.plaintext_auths() {
        let credential = match found {
            PlaintextAuth::Credential(credential) => credential,
            PlaintextAuth::Unreadable { server_url, reason } => {
                report.skipped.push(Skipped { server_url, reason: reason.into() });
                continue;
            }
        };
        let server_url = credential.server_url.clone();
        let same = match store.get(&server_url) {
            Ok(existing) => existing.username == credential.username && existing.secret == credential.secret,
            Err(StoreError::NotFound) => false,
            Err(source) => return Err(MigrateError::Store { server_url, source }),
        };
        if !same && !dry_run {
            store
                .store(&credential)
                .map_err(|source| MigrateError::Store { server_url: server_url.clone(), source })?;
        }
        if same { &mut report.unchanged } else { &mut report.migrated }.push(server_url.clone());
        moved.push(server_url);
    }
    if !dry_run && !moved.is_empty() {
        for server_url in &moved {
            config.strip_plaintext(server_url);
        }
        config.save()?;
    }
    Ok(report)
}
