//! Registry credentials and the stores that keep them.
//!
//! A [`Store`] holds one [`Credential`] per registry (see [`RegistryKey`]); the docker credential
//! helper protocol ([`helper`]) and `imgctl creds` both work over any store.

pub mod age_file;
pub mod backend;
pub mod helper;
pub mod migrate;
mod secret;
#[cfg(target_os = "linux")]
pub mod secret_service;
mod server;

use std::io;
use std::path::PathBuf;

pub use secret::{ReadSecretError, Secret, keep_memory_private, read_to_end_wiped};
pub use server::{DOCKER_HUB_SERVER, InvalidServerUrl, RegistryKey};

/// The username docker/cli stores when the credential is an identity (OAuth refresh) token;
/// the token itself is the secret. Stores pass it through like any other username.
pub const IDENTITY_TOKEN_USERNAME: &str = "<token>";

/// A username and secret for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The server URL as the client gave it when storing (`list` reports it back).
    pub server_url: String,
    /// The username, or [`IDENTITY_TOKEN_USERNAME`].
    pub username: String,
    /// The password or token.
    pub secret: Secret,
}

/// One entry of a [`Store::list`]: the server URL and username, never the secret.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Listing {
    /// The server URL as stored.
    pub server_url: String,
    /// The username.
    pub username: String,
}

/// A place credentials are kept: one credential per registry.
pub trait Store {
    /// The credential for the registry `server_url` names, in any spelling.
    fn get(&self, server_url: &str) -> Result<Credential, StoreError>;
    /// Stores `credential`, replacing whatever that registry had, whatever its username.
    fn store(&self, credential: &Credential) -> Result<(), StoreError>;
    /// Removes the registry's credential; `Ok(false)` when there was none.
    fn erase(&self, server_url: &str) -> Result<bool, StoreError>;
    /// Every stored server URL with its username, sorted by registry.
    fn list(&self) -> Result<Vec<Listing>, StoreError>;
    /// What this store is and where it keeps its data, for people (`imgctl creds doctor`).
    fn describe(&self) -> String;
}

/// Why a store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No credential for that registry. The helper protocol reports it with a fixed message
    /// that docker/cli recognizes and answers by prompting or going anonymous.
    #[error("credentials not found in native keychain")]
    NotFound,
    /// The server URL names no registry.
    #[error(transparent)]
    InvalidServerUrl(#[from] InvalidServerUrl),
    /// The store was asked to keep a credential with no username.
    #[error("no credentials username")]
    MissingUsername,
    /// The identity is protected by a passphrase and none was given.
    #[error(
        "the identity {path} is protected by a passphrase: set IMGCTL_PASSPHRASE in the environment of the process that runs the helper"
    )]
    PassphraseRequired {
        /// The passphrase-protected identity file.
        path: PathBuf,
    },
    /// The passphrase did not decrypt the identity.
    #[error("wrong passphrase for the identity {path}")]
    WrongPassphrase {
        /// The passphrase-protected identity file.
        path: PathBuf,
    },
    /// The identity file holds no age X25519 identity.
    #[error(
        "{path} is not an age identity file ({reason}); restore it from a backup or move it away to start a new store"
    )]
    InvalidIdentity {
        /// The identity file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A keyring item holds bytes that are not text, so no helper can answer with them.
    #[error("the stored secret for {server_url} is not UTF-8 text; store it again with docker login")]
    SecretNotUtf8 {
        /// The item's server URL.
        server_url: String,
    },
    /// The store exists but its identity does not: nothing can read it, and nothing is created.
    #[error(
        "{store} exists but its identity {identity} is missing: restore the identity from a backup (or move the store away to start over)"
    )]
    IdentityMissing {
        /// The store file.
        store: PathBuf,
        /// Where the identity should be.
        identity: PathBuf,
    },
    /// The store file could not be decrypted with the identity, or its contents are not a store.
    #[error(
        "{path} cannot be read ({reason}); was it encrypted to another identity? Restore it from a backup or move it away"
    )]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The OS keyring cannot be reached.
    #[error(
        "the Secret Service is unavailable: {reason}. On a desktop, log in to a session with a keyring; headless, run gnome-keyring-daemon --unlock --components=secrets under dbus-run-session; or use the age-file backend: imgctl creds backend age-file"
    )]
    Unavailable {
        /// What failed.
        reason: String,
    },
    /// The keyring collection is locked; imgctl never prompts.
    #[error(
        "the keyring collection {collection} is locked and imgctl does not prompt: unlock it (log in to the desktop, or printf %s \"$PASSWORD\" | gnome-keyring-daemon --unlock --replace), or use the age-file backend"
    )]
    Locked {
        /// The collection's label.
        collection: String,
    },
    /// Encryption failed (an age error, not an I/O one).
    #[error("encrypting the store failed: {0}")]
    Encrypt(String),
    /// A directory or file of the store can be changed by someone else than this user: it is
    /// not used until that is put right.
    #[error(transparent)]
    NotPrivate(#[from] crate::private_path::NotPrivate),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`reading`, `writing`, `locking`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }
}
