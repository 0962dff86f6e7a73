//! Which store serves credentials: the age file, the Secret Service, or `auto`.
//!
//! The choice comes from `IMGCTL_BACKEND`, else from `config.json` in imgctl's config
//! directory (written by `imgctl creds backend NAME`), else the age file: the embedded default
//! needs no daemon, and a default that changed with the desktop session would hide credentials.
//!
//! `auto` saved in the config file is decided once, when it is saved, and the decision is
//! recorded: a store that switched with every call (keyring unlocked on the desktop, locked over
//! SSH) would split credentials between the two, and a logout would erase only one. `auto` in
//! `IMGCTL_BACKEND` is decided per process, for one-off runs, and says so on stderr when it falls
//! back.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::age_file::AgeFileStore;
#[cfg(target_os = "linux")]
use super::secret_service::SecretServiceStore;
use super::{Credential, Listing, Secret, Store, StoreError};
use crate::atomic_file;
use crate::dirs::Dirs;

/// The backend a user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    /// The age-encrypted file (the default).
    AgeFile,
    /// The OS keyring through the Secret Service.
    SecretService,
    /// The Secret Service when one answers and is unlocked, else the age file.
    Auto,
}

/// Where the choice came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChoiceSource {
    /// `IMGCTL_BACKEND`.
    Environment,
    /// imgctl's config.json.
    ConfigFile,
    /// imgctl's config.json, where `auto` recorded what it decided.
    Auto,
    /// Nothing was set.
    Default,
}

/// A store of either backend.
#[derive(Debug)]
pub enum AnyStore {
    /// The age-encrypted file.
    AgeFile(AgeFileStore),
    /// The Secret Service.
    #[cfg(target_os = "linux")]
    SecretService(SecretServiceStore),
}

/// The store in use and how it was chosen.
#[derive(Debug)]
pub struct Selection {
    /// What was asked for.
    pub choice: BackendChoice,
    /// Where that came from.
    pub source: ChoiceSource,
    /// The store that serves.
    pub store: AnyStore,
    /// Under `auto`, why the Secret Service was not used.
    pub fallback: Option<StoreError>,
}

/// The backend could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// An unknown backend name.
    #[error("unknown backend {0:?}: expected age-file, secret-service or auto")]
    Unknown(String),
    /// The backend does not exist on this platform.
    #[error("the {0} backend is not available on this platform; use age-file")]
    Unsupported(BackendChoice),
    /// imgctl's config.json is unreadable.
    #[error("{path}: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The environment does not say where imgctl's directories are.
    #[error(transparent)]
    Dirs(#[from] crate::dirs::DirsError),
    /// The chosen store failed to open.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Default, Serialize, Deserialize)]
struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backend: Option<BackendChoice>,
    /// `backend` was decided by `auto` when it was saved.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    chosen_by_auto: bool,
    /// Keys of later versions, kept as they are.
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// What [`save_choice`] recorded.
#[derive(Debug)]
pub struct SavedChoice {
    /// The settings file.
    pub path: PathBuf,
    /// The backend recorded (`auto` is decided before it is saved).
    pub backend: BackendChoice,
    /// Under `auto`, why the Secret Service was not chosen.
    pub fallback: Option<StoreError>,
}

impl FromStr for BackendChoice {
    type Err = BackendError;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim() {
            "age-file" | "age" | "file" => Ok(Self::AgeFile),
            "secret-service" | "secretservice" | "keyring" => Ok(Self::SecretService),
            "auto" => Ok(Self::Auto),
            other => Err(BackendError::Unknown(other.to_owned())),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AgeFile => "age-file",
            Self::SecretService => "secret-service",
            Self::Auto => "auto",
        })
    }
}

impl AnyStore {
    /// The backend this store is.
    pub fn backend(&self) -> BackendChoice {
        match self {
            Self::AgeFile(_) => BackendChoice::AgeFile,
            #[cfg(target_os = "linux")]
            Self::SecretService(_) => BackendChoice::SecretService,
        }
    }

    fn inner(&self) -> &dyn Store {
        match self {
            Self::AgeFile(store) => store,
            #[cfg(target_os = "linux")]
            Self::SecretService(store) => store,
        }
    }
}

impl Store for AnyStore {
    fn get(&self, server_url: &str) -> Result<Credential, StoreError> {
        self.inner().get(server_url)
    }
    fn store(&self, credential: &Credential) -> Result<(), StoreError> {
        self.inner().store(credential)
    }
    fn erase(&self, server_url: &str) -> Result<bool, StoreError> {
        self.inner().erase(server_url)
    }
    fn list(&self) -> Result<Vec<Listing>, StoreError> {
        self.inner().list()
    }
    fn describe(&self) -> String {
        self.inner().describe()
    }
}

fn settings_path(dirs: &Dirs) -> PathBuf {
    dirs.config.join("config.json")
}

fn load_settings(dirs: &Dirs) -> Result<Settings, BackendError> {
    let path = settings_path(dirs);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| BackendError::ConfigFile { path, reason: format!("not imgctl settings: {e}") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(BackendError::ConfigFile { path, reason: e.to_string() }),
    }
}

/// The configured choice: `env_value` (`IMGCTL_BACKEND`), else the config file, else age-file.
pub fn configured(dirs: &Dirs, env_value: Option<&str>) -> Result<(BackendChoice, ChoiceSource), BackendError> {
    if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
        return Ok((value.parse()?, ChoiceSource::Environment));
    }
    let settings = load_settings(dirs)?;
    Ok(match settings.backend {
        Some(choice) if settings.chosen_by_auto => (choice, ChoiceSource::Auto),
        Some(choice) => (choice, ChoiceSource::ConfigFile),
        None => (BackendChoice::AgeFile, ChoiceSource::Default),
    })
}

/// Records `choice` in imgctl's config.json, keeping its other keys; `auto` is decided now and
/// the decision recorded.
pub fn save_choice(dirs: &Dirs, choice: BackendChoice) -> Result<SavedChoice, BackendError> {
    let mut settings = load_settings(dirs)?;
    let (backend, fallback) = match choice {
        BackendChoice::Auto => match probe_secret_service() {
            Ok(()) => (BackendChoice::SecretService, None),
            Err(why) => (BackendChoice::AgeFile, Some(why)),
        },
        concrete => (concrete, None),
    };
    settings.backend = Some(backend);
    settings.chosen_by_auto = choice == BackendChoice::Auto;
    let path = settings_path(dirs);
    let io = |e: std::io::Error| BackendError::ConfigFile { path: path.clone(), reason: e.to_string() };
    atomic_file::create_dir(&dirs.config, 0o700).map_err(io)?;
    let json = serde_json::to_vec_pretty(&settings).expect("settings serialize");
    atomic_file::write(&path, &json, 0o600).map_err(io)?;
    Ok(SavedChoice { path, backend, fallback })
}

fn probe_secret_service() -> Result<(), StoreError> {
    #[cfg(target_os = "linux")]
    return SecretServiceStore::new().probe();
    #[cfg(not(target_os = "linux"))]
    return Err(StoreError::Unavailable { reason: "there is no Secret Service on this platform".into() });
}

/// Opens the store the environment and config file choose.
pub fn open_from_env() -> Result<Selection, BackendError> {
    let dirs = Dirs::from_env()?;
    let passphrase = std::env::var("IMGCTL_PASSPHRASE").ok().filter(|p| !p.is_empty()).map(Secret::new);
    let env_value = std::env::var("IMGCTL_BACKEND").ok();
    let (choice, source) = configured(&dirs, env_value.as_deref())?;
    open(&dirs, passphrase, choice, source)
}

/// Opens the store for `choice`. Under `auto` the Secret Service is probed (two seconds at
/// most) and the age file serves when it is unreachable or locked, with the reason kept.
pub fn open(
    dirs: &Dirs,
    passphrase: Option<Secret>,
    choice: BackendChoice,
    source: ChoiceSource,
) -> Result<Selection, BackendError> {
    let age = || AnyStore::AgeFile(AgeFileStore::new(dirs, passphrase.clone()));
    let (store, fallback) = match choice {
        BackendChoice::AgeFile => (age(), None),
        #[cfg(target_os = "linux")]
        BackendChoice::SecretService => (AnyStore::SecretService(SecretServiceStore::new()), None),
        #[cfg(target_os = "linux")]
        BackendChoice::Auto => match probe_secret_service() {
            Ok(()) => (AnyStore::SecretService(SecretServiceStore::new()), None),
            Err(why) => (age(), Some(why)),
        },
        #[cfg(not(target_os = "linux"))]
        BackendChoice::SecretService => return Err(BackendError::Unsupported(choice)),
        #[cfg(not(target_os = "linux"))]
        BackendChoice::Auto => (age(), None),
    };
    Ok(Selection { choice, source, store, fallback })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_then_file_then_default() {
        let base = std::env::temp_dir().join(format!("imgctl-backend-{}", std::process::id()));
        let dirs = Dirs { config: base.join("c"), data: base.join("d") };
        assert_eq!(configured(&dirs, None).unwrap(), (BackendChoice::AgeFile, ChoiceSource::Default));
        std::fs::create_dir_all(&dirs.config).unwrap();
        std::fs::write(dirs.config.join("config.json"), r#"{"future":{"x":1}}"#).unwrap();
        let saved = save_choice(&dirs, BackendChoice::SecretService).unwrap();
        assert_eq!(saved.backend, BackendChoice::SecretService);
        assert_eq!(configured(&dirs, None).unwrap(), (BackendChoice::SecretService, ChoiceSource::ConfigFile));
        let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&saved.path).unwrap()).unwrap();
        assert_eq!(kept["future"]["x"], 1, "other keys are kept");
        assert_eq!(configured(&dirs, Some("auto")).unwrap(), (BackendChoice::Auto, ChoiceSource::Environment));
        assert!(matches!(configured(&dirs, Some("pass")), Err(BackendError::Unknown(_))));
        std::fs::remove_dir_all(base).unwrap();
    }
}
