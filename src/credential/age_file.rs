//! The embedded default store: one age-encrypted file, no daemon.
//!
//! The store file (`credentials.age` in the data directory) is a JSON document encrypted to one
//! X25519 recipient. Its identity lives in the config directory, either as `identity.txt` (0600,
//! like `age-keygen` writes it) or, when protected by a passphrase, as `identity.age` (the same
//! text encrypted with scrypt). The passphrase only ever unwraps the identity, so the per-call
//! cost of `get` is one X25519 decryption, not an scrypt run.
//!
//! Both directories and both files must be private to the user (see [`crate::private_path`]):
//! whoever else could write there could swap the identity for one of their own.
//!
//! Reads take no lock: a write replaces the file with one atomic rename, so a reader sees the old
//! or the new store. Writes serialize on an exclusive lock of `credentials.lock`, re-read the
//! store under the lock and replace it whole, so parallel `docker login`s lose nothing and a
//! writer killed at any instant leaves the old or the new store.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Credential, Listing, RegistryKey, Secret, Store, StoreError};
use crate::atomic_file;
use crate::dirs::Dirs;
use crate::private_path::{self, NotPrivate};

/// The store file format version written into every store.
const FORMAT_VERSION: u32 = 1;
/// The scrypt work factor (log2 N) that wraps a passphrase-protected identity: about 0.1 s here,
/// paid once per helper call, not the ~1 s age calibrates for whole files.
const IDENTITY_SCRYPT_LOG_N: u8 = 16;
/// The largest scrypt work factor accepted when unwrapping an identity (bounds a hostile file).
const IDENTITY_SCRYPT_MAX_LOG_N: u8 = 20;

/// An age-encrypted credential file.
#[derive(Debug)]
pub struct AgeFileStore {
    config_dir: PathBuf,
    data_dir: PathBuf,
    identity_path: PathBuf,
    protected_identity_path: PathBuf,
    store_path: PathBuf,
    lock_path: PathBuf,
    passphrase: Option<Secret>,
}

/// What [`AgeFileStore::init`] found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitOutcome {
    /// A new identity was generated.
    Created,
    /// An identity was already there and was left as it is.
    Existed,
}

/// How the identity is kept on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityKind {
    /// No identity yet: the first store creates one.
    Missing,
    /// `identity.txt`, readable by the owner only.
    Plain,
    /// `identity.age`, encrypted with a passphrase.
    Passphrase,
}

#[derive(Default, Serialize, Deserialize)]
struct Contents {
    version: u32,
    entries: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Versioned {
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    server_url: String,
    username: String,
    secret: Secret,
}

impl AgeFileStore {
    /// The store in `dirs`; `passphrase` unlocks a passphrase-protected identity.
    pub fn new(dirs: &Dirs, passphrase: Option<Secret>) -> Self {
        Self {
            config_dir: dirs.config.clone(),
            data_dir: dirs.data.clone(),
            identity_path: dirs.config.join("identity.txt"),
            protected_identity_path: dirs.config.join("identity.age"),
            store_path: dirs.data.join("credentials.age"),
            lock_path: dirs.data.join("credentials.lock"),
            passphrase,
        }
    }

    /// The encrypted store file.
    pub fn store_path(&self) -> &Path {
        &self.store_path
    }

    /// The identity file in use (or the one the first write will create); for display, so
    /// when the config directory cannot be read it names `identity.txt`.
    pub fn identity_path(&self) -> &Path {
        match self.identity_kind() {
            Ok(IdentityKind::Passphrase) => &self.protected_identity_path,
            _ => &self.identity_path,
        }
    }

    /// How the identity is kept. A directory that cannot be read is an error, not a missing
    /// identity.
    pub fn identity_kind(&self) -> Result<IdentityKind, StoreError> {
        Ok(if exists(&self.protected_identity_path)? {
            IdentityKind::Passphrase
        } else if exists(&self.identity_path)? {
            IdentityKind::Plain
        } else {
            IdentityKind::Missing
        })
    }

    /// The config directory (the identity) and the data directory (the store and its lock).
    pub fn directories(&self) -> [&Path; 2] {
        [&self.config_dir, &self.data_dir]
    }

    /// Checks the directories that exist already (see [`crate::private_path`]).
    fn check_directories(&self) -> Result<(), NotPrivate> {
        for dir in self.directories() {
            private_path::check_dir_if_present(dir)?;
        }
        Ok(())
    }

    /// Creates the identity if there is none, protected by `passphrase` when given.
    pub fn init(&self, passphrase: Option<&Secret>) -> Result<InitOutcome, StoreError> {
        let _lock = self.lock()?;
        if self.identity_kind()? != IdentityKind::Missing {
            return Ok(InitOutcome::Existed);
        }
        self.create_identity(passphrase)?;
        Ok(InitOutcome::Created)
    }

    /// Creates and checks both directories, then takes the write lock.
    fn lock(&self) -> Result<File, StoreError> {
        for dir in self.directories() {
            private_path::ensure_dir(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.lock_path)
            .map_err(StoreError::io("opening", &self.lock_path))?;
        // Released when the file is closed, also when the process dies.
        file.lock().map_err(StoreError::io("locking", &self.lock_path))?;
        Ok(file)
    }

    fn create_identity(&self, passphrase: Option<&Secret>) -> Result<x25519::Identity, StoreError> {
        let identity = x25519::Identity::generate();
        let key = identity.to_string();
        let text = Zeroizing::new(format!(
            "# imgctl credential store identity\n# public key: {}\n{}\n",
            identity.to_public(),
            key.expose_secret()
        ));
        match passphrase {
            None => atomic_file::write(&self.identity_path, text.as_bytes(), 0o600)
                .map_err(StoreError::io("writing", &self.identity_path))?,
            Some(passphrase) => {
                let mut recipient = age::scrypt::Recipient::new(secret_string(passphrase));
                recipient.set_work_factor(IDENTITY_SCRYPT_LOG_N);
                let wrapped =
                    age::encrypt(&recipient, text.as_bytes()).map_err(|e| StoreError::Encrypt(e.to_string()))?;
                atomic_file::write(&self.protected_identity_path, &wrapped, 0o600)
                    .map_err(StoreError::io("writing", &self.protected_identity_path))?;
            }
        }
        Ok(identity)
    }

    fn load_identity(&self) -> Result<Option<x25519::Identity>, StoreError> {
        let text = match read_optional(&self.protected_identity_path)? {
            Some(wrapped) => {
                let path = &self.protected_identity_path;
                let passphrase =
                    self.passphrase.as_ref().ok_or_else(|| StoreError::PassphraseRequired { path: path.clone() })?;
                let mut unwrap = age::scrypt::Identity::new(secret_string(passphrase));
                unwrap.set_max_work_factor(IDENTITY_SCRYPT_MAX_LOG_N);
                Zeroizing::new(age::decrypt(&unwrap, &wrapped).map_err(|e| match e {
                    age::DecryptError::DecryptionFailed
                    | age::DecryptError::KeyDecryptionFailed
                    | age::DecryptError::NoMatchingKeys => StoreError::WrongPassphrase { path: path.clone() },
                    other => StoreError::InvalidIdentity { path: path.clone(), reason: other.to_string() },
                })?)
            }
            None => match read_optional(&self.identity_path)? {
                Some(text) => text,
                None => return Ok(None),
            },
        };
        parse_identity(&text, self.identity_path()).map(Some)
    }

    fn read_contents(&self, identity: &x25519::Identity) -> Result<Contents, StoreError> {
        let Some(ciphertext) = read_optional(&self.store_path)? else {
            return Ok(Contents { version: FORMAT_VERSION, ..Contents::default() });
        };
        let corrupt = |reason: String| StoreError::Corrupt { path: self.store_path.clone(), reason };
        let plaintext = Zeroizing::new(age::decrypt(identity, &ciphertext).map_err(|e| corrupt(e.to_string()))?);
        // The version first, so a newer format is named as such; serde_json's messages may quote
        // a value (a secret), so only the position of an error is reported.
        let at = |e: serde_json::Error| {
            corrupt(format!("not a store: {:?} error at line {} column {}", e.classify(), e.line(), e.column()))
        };
        let Versioned { version } = serde_json::from_slice(&plaintext).map_err(at)?;
        if version != FORMAT_VERSION {
            return Err(corrupt(format!("format version {version} is not {FORMAT_VERSION}; a newer imgctl wrote it")));
        }
        serde_json::from_slice(&plaintext).map_err(at)
    }

    fn write_contents(&self, identity: &x25519::Identity, contents: &Contents) -> Result<(), StoreError> {
        let plaintext = Zeroizing::new(serde_json::to_vec(contents).map_err(|e| StoreError::Encrypt(e.to_string()))?);
        let ciphertext =
            age::encrypt(&identity.to_public(), &plaintext).map_err(|e| StoreError::Encrypt(e.to_string()))?;
        atomic_file::write(&self.store_path, &ciphertext, 0o600).map_err(StoreError::io("writing", &self.store_path))
    }

    /// Runs `change` on the current contents under the write lock, and writes the result back
    /// when `change` says it changed something.
    fn update<T>(&self, change: impl FnOnce(&mut Contents) -> (bool, T)) -> Result<T, StoreError> {
        let _lock = self.lock()?;
        for path in [&self.store_path, &self.identity_path, &self.protected_identity_path] {
            atomic_file::remove_stale_temporaries(path)
                .map_err(StoreError::io("cleaning temporary files next to", path))?;
        }
        let identity = match self.load_identity()? {
            Some(identity) => identity,
            None => {
                self.no_store_without_identity()?;
                self.create_identity(None)?
            }
        };
        let mut contents = self.read_contents(&identity)?;
        let (changed, result) = change(&mut contents);
        if changed {
            self.write_contents(&identity, &contents)?;
        }
        Ok(result)
    }

    fn read_only(&self) -> Result<Option<Contents>, StoreError> {
        self.check_directories()?;
        match self.load_identity()? {
            Some(identity) => self.read_contents(&identity).map(Some),
            None => self.no_store_without_identity().map(|()| None),
        }
    }

    /// A store whose identity is gone must not look empty, nor get a new identity that would
    /// make the old one useless if it is restored.
    fn no_store_without_identity(&self) -> Result<(), StoreError> {
        if exists(&self.store_path)? {
            return Err(StoreError::IdentityMissing {
                store: self.store_path.clone(),
                identity: self.identity_path.clone(),
            });
        }
        Ok(())
    }
}

impl Store for AgeFileStore {
    fn get(&self, server_url: &str) -> Result<Credential, StoreError> {
        let key = RegistryKey::parse(server_url)?;
        let mut contents = self.read_only()?.ok_or(StoreError::NotFound)?;
        let entry = contents.entries.remove(key.as_str()).ok_or(StoreError::NotFound)?;
        Ok(Credential { server_url: entry.server_url, username: entry.username, secret: entry.secret })
    }

    fn store(&self, credential: &Credential) -> Result<(), StoreError> {
        let key = RegistryKey::parse(&credential.server_url)?;
        if credential.username.is_empty() {
            return Err(StoreError::MissingUsername);
        }
        let entry = Entry {
            server_url: credential.server_url.trim().to_owned(),
            username: credential.username.clone(),
            secret: credential.secret.clone(),
        };
        self.update(|contents| {
            contents.entries.insert(key.to_string(), entry);
            (true, ())
        })
    }

    fn erase(&self, server_url: &str) -> Result<bool, StoreError> {
        let key = RegistryKey::parse(server_url)?;
        // Erasing what is not there must not create a store (docker logout erases four
        // spellings). Anything else goes through the update, which refuses a store whose
        // identity is gone.
        self.check_directories()?;
        if self.identity_kind()? == IdentityKind::Missing && !exists(&self.store_path)? {
            return Ok(false);
        }
        self.update(|contents| {
            let removed = contents.entries.remove(key.as_str()).is_some();
            (removed, removed)
        })
    }

    fn list(&self) -> Result<Vec<Listing>, StoreError> {
        let contents = self.read_only()?.unwrap_or_default();
        Ok(contents
            .entries
            .into_values()
            .map(|entry| Listing { server_url: entry.server_url, username: entry.username })
            .collect())
    }

    fn describe(&self) -> String {
        format!("age-encrypted file {}", self.store_path.display())
    }
}

/// The permission bits of `path`, if it exists.
pub fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o777)
}

fn secret_string(secret: &Secret) -> SecretString {
    SecretString::from(secret.expose().to_owned())
}

/// Whether `path` is there; errors other than NotFound (a directory that cannot be searched)
/// are errors, not absence.
fn exists(path: &Path) -> Result<bool, StoreError> {
    path.try_exists().map_err(StoreError::io("looking for", path))
}

/// The contents of `path`, `None` if it does not exist; a file open to others is refused before
/// it is read (see [`crate::private_path`]).
fn read_optional(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("reading", path)(e)),
    };
    private_path::check_file(&file, path)?;
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(StoreError::io("reading", path))?;
    Ok(Some(bytes))
}

fn parse_identity(text: &[u8], path: &Path) -> Result<x25519::Identity, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidIdentity { path: path.to_owned(), reason: reason.into() };
    let text = std::str::from_utf8(text).map_err(|_| invalid("not UTF-8"))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(|| invalid("no AGE-SECRET-KEY line"))?;
    x25519::Identity::from_str(line).map_err(|_| invalid("malformed AGE-SECRET-KEY line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDirs(Dirs);
    impl TempDirs {
        fn new(name: &str) -> Self {
            let base = std::env::temp_dir().join(format!("imgctl-age-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&base);
            Self(Dirs { config: base.join("config"), data: base.join("data") })
        }
    }
    impl Drop for TempDirs {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(self.0.config.parent().unwrap());
        }
    }

    fn credential(server: &str, user: &str, secret: &str) -> Credential {
        Credential { server_url: server.into(), username: user.into(), secret: Secret::new(secret.into()) }
    }

    #[test]
    fn store_get_list_erase() {
        let dirs = TempDirs::new("roundtrip");
        let store = AgeFileStore::new(&dirs.0, None);
        assert!(matches!(store.get("host:5000"), Err(StoreError::NotFound)));
        assert!(!store.erase("host:5000").unwrap());
        assert_eq!(store.identity_kind().unwrap(), IdentityKind::Missing, "erase creates nothing");

        store.store(&credential("https://host:5000", "alice", "s3cret")).unwrap();
        let got = store.get("host:5000/").unwrap();
        assert_eq!((got.username.as_str(), got.secret.expose()), ("alice", "s3cret"));
        assert_eq!(got.server_url, "https://host:5000");

        store.store(&credential("host:5000", "bob", "other")).unwrap();
        let listed = store.list().unwrap();
        assert_eq!(listed, vec![Listing { server_url: "host:5000".into(), username: "bob".into() }]);

        assert!(store.erase("http://host:5000").unwrap());
        assert!(matches!(store.get("host:5000"), Err(StoreError::NotFound)));
        assert_eq!(mode_of(store.store_path()), Some(0o600));
        assert_eq!(mode_of(store.identity_path()), Some(0o600));
        assert_eq!(mode_of(&dirs.0.config), Some(0o700));
    }

    #[test]
    fn the_file_never_holds_the_secret_in_plain_text() {
        let dirs = TempDirs::new("plaintext");
        let store = AgeFileStore::new(&dirs.0, None);
        store.store(&credential("ghcr.io", "alice", "PLAINTEXT-CANARY")).unwrap();
        let bytes = fs::read(store.store_path()).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1"));
        assert!(!bytes.windows(16).any(|w| w == b"PLAINTEXT-CANARY"));
        assert!(!bytes.windows(7).any(|w| w == b"ghcr.io"));
    }

    #[test]
    fn passphrase_protected_identity() {
        let dirs = TempDirs::new("passphrase");
        let pass = Secret::new("correct horse".into());
        let store = AgeFileStore::new(&dirs.0, Some(pass.clone()));
        assert_eq!(store.init(Some(&pass)).unwrap(), InitOutcome::Created);
        assert_eq!(store.init(Some(&pass)).unwrap(), InitOutcome::Existed);
        assert_eq!(store.identity_kind().unwrap(), IdentityKind::Passphrase);
        store.store(&credential("ghcr.io", "alice", "tok")).unwrap();
        assert_eq!(store.get("ghcr.io").unwrap().secret.expose(), "tok");

        let without = AgeFileStore::new(&dirs.0, None);
        assert!(matches!(without.get("ghcr.io"), Err(StoreError::PassphraseRequired { .. })));
        let wrong = AgeFileStore::new(&dirs.0, Some(Secret::new("wrong".into())));
        assert!(matches!(wrong.get("ghcr.io"), Err(StoreError::WrongPassphrase { .. })));
        assert!(!fs::read(dirs.0.config.join("identity.age")).unwrap().windows(15).any(|w| w == b"AGE-SECRET-KEY-"));
    }

    #[test]
    fn a_store_without_its_identity_is_an_error_and_no_identity_is_made() {
        let dirs = TempDirs::new("no-identity");
        let store = AgeFileStore::new(&dirs.0, None);
        store.store(&credential("ghcr.io", "alice", "tok")).unwrap();
        fs::remove_file(dirs.0.config.join("identity.txt")).unwrap();
        assert!(matches!(store.get("ghcr.io"), Err(StoreError::IdentityMissing { .. })));
        assert!(matches!(store.list(), Err(StoreError::IdentityMissing { .. })));
        assert!(matches!(store.store(&credential("x.io", "a", "b")), Err(StoreError::IdentityMissing { .. })));
        assert_eq!(store.identity_kind().unwrap(), IdentityKind::Missing, "no new identity was made");
    }

    #[test]
    fn a_store_encrypted_to_another_identity_is_reported_not_overwritten() {
        let dirs = TempDirs::new("foreign");
        let store = AgeFileStore::new(&dirs.0, None);
        store.store(&credential("ghcr.io", "alice", "tok")).unwrap();
        fs::remove_file(dirs.0.config.join("identity.txt")).unwrap();
        AgeFileStore::new(&dirs.0, None).init(None).unwrap();
        let before = fs::read(store.store_path()).unwrap();
        assert!(matches!(store.get("ghcr.io"), Err(StoreError::Corrupt { .. })));
        assert!(matches!(store.store(&credential("x.io", "a", "b")), Err(StoreError::Corrupt { .. })));
        assert_eq!(fs::read(store.store_path()).unwrap(), before);
    }
}
