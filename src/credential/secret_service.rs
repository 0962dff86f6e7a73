//! The Linux Secret Service (gnome-keyring, KeePassXC, KWallet) as a store, item for item
//! compatible with docker-credential-secretservice.
//!
//! Items use that helper's schema: attributes `server` (the server URL as given), `username`,
//! `docker_cli=1`, `label=Docker Credentials` and `xdg:schema=io.docker.Credentials`, in the
//! default collection, labelled `Registry credentials for <server>`. Credentials either helper
//! saved are served by the other, so the two can be swapped either way.
//!
//! Lookups go by [`RegistryKey`] over the `server` attribute (the old helper matches the exact
//! string), `list` reports the `server` attribute (the old helper reports item labels), and
//! imgctl never prompts: a locked collection is an error that says how to unlock it. Every
//! call runs under a deadline, so a bus or daemon that does not answer fails in two seconds
//! instead of hanging `docker pull`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use secret_service::blocking::{Item, SecretService};
use secret_service::{EncryptionType, Error as SsError};

use super::{Credential, Listing, RegistryKey, Secret, Store, StoreError};

/// The attribute every docker credential item carries (docker-credential-helpers since 2016).
const DOCKER_CLI: (&str, &str) = ("docker_cli", "1");
/// docker-credential-helpers' `CredsLabel`, stored as the `label` attribute.
const CREDS_LABEL: &str = "Docker Credentials";
/// The libsecret schema name docker-credential-secretservice registers.
const SCHEMA: &str = "io.docker.Credentials";
/// How long any one operation may take before it is reported as unavailable.
const DEADLINE: Duration = Duration::from_secs(2);

/// Credentials kept as Secret Service items.
#[derive(Debug, Default)]
pub struct SecretServiceStore {
    _private: (),
}

/// A docker credential item read from the Secret Service.
#[derive(Debug)]
pub struct DockerItem {
    /// The `server` attribute.
    pub server_url: String,
    /// The `username` attribute.
    pub username: String,
    /// The secret.
    pub secret: Secret,
}

impl SecretServiceStore {
    /// A store over the session bus's Secret Service. Nothing is contacted until it is used;
    /// [`SecretServiceStore::probe`] checks it is reachable and unlocked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks that a Secret Service answers and its default collection is unlocked.
    pub fn probe(&self) -> Result<(), StoreError> {
        with_service(|ss| default_collection_unlocked(ss).map(|_| ()))
    }

    /// Every docker credential item (any helper's), newest first per registry.
    pub fn docker_items(&self) -> Result<Vec<DockerItem>, StoreError> {
        with_service(|ss| {
            let mut items = Vec::new();
            for item in docker_items(ss)? {
                let Some((server_url, username)) = server_and_username(&item)? else { continue };
                let secret = secret_of(&item, &server_url)?;
                items.push(DockerItem { server_url, username, secret });
            }
            Ok(items)
        })
    }

    /// Deletes every docker credential item of `server_url`'s registry; how many were deleted.
    pub fn delete_registry(&self, server_url: &str) -> Result<usize, StoreError> {
        let key = RegistryKey::parse(server_url)?;
        with_service(move |ss| {
            let matching = matching_items(ss, &key)?;
            for (item, _) in &matching {
                item.delete().map_err(ss_error)?;
            }
            Ok(matching.len())
        })
    }
}

impl Store for SecretServiceStore {
    fn get(&self, server_url: &str) -> Result<Credential, StoreError> {
        let key = RegistryKey::parse(server_url)?;
        with_service(move |ss| {
            let mut matching = matching_items(ss, &key)?;
            // Two helpers racing may leave two items; the newest is the one last stored.
            matching.sort_by_key(|(item, _)| std::cmp::Reverse(item.get_modified().unwrap_or(0)));
            let (item, (server_url, username)) = matching.into_iter().next().ok_or(StoreError::NotFound)?;
            let secret = secret_of(&item, &server_url)?;
            Ok(Credential { server_url, username, secret })
        })
    }

    fn store(&self, credential: &Credential) -> Result<(), StoreError> {
        let key = RegistryKey::parse(&credential.server_url)?;
        if credential.username.is_empty() {
            return Err(StoreError::MissingUsername);
        }
        let server_url = credential.server_url.trim().to_owned();
        let username = credential.username.clone();
        let secret = credential.secret.clone();
        with_service(move |ss| {
            let collection = default_collection_unlocked(ss)?;
            let others = matching_items(ss, &key)?;
            let attributes = HashMap::from([
                ("label", CREDS_LABEL),
                ("server", server_url.as_str()),
                ("username", username.as_str()),
                DOCKER_CLI,
                ("xdg:schema", SCHEMA),
            ]);
            let label = format!("Registry credentials for {server_url}");
            // replace=true updates the item with identical attributes in place. The new item is
            // written before the others go, so a failure part-way never leaves none.
            collection
                .create_item(&label, attributes, secret.expose().as_bytes(), true, "text/plain")
                .map_err(ss_error)?;
            // One credential per registry: other spellings and usernames go.
            for (item, (server, user)) in others {
                if server != server_url || user != username {
                    item.delete().map_err(ss_error)?;
                }
            }
            Ok(())
        })
    }

    fn erase(&self, server_url: &str) -> Result<bool, StoreError> {
        self.delete_registry(server_url).map(|deleted| deleted > 0)
    }

    fn list(&self) -> Result<Vec<Listing>, StoreError> {
        with_service(|ss| {
            let mut by_key = BTreeMap::new();
            for item in docker_items(ss)? {
                let Some((server_url, username)) = server_and_username(&item)? else { continue };
                let Ok(key) = RegistryKey::parse(&server_url) else { continue };
                let modified = item.get_modified().unwrap_or(0);
                let listing = Listing { server_url, username };
                match by_key.get(&key) {
                    Some((newer, _)) if *newer >= modified => {}
                    _ => {
                        by_key.insert(key, (modified, listing));
                    }
                }
            }
            Ok(by_key.into_values().map(|(_, listing)| listing).collect())
        })
    }

    fn describe(&self) -> String {
        "Secret Service (default collection, docker-credential-secretservice schema)".into()
    }
}

/// Runs `op` on a fresh connection in a thread, and gives up after [`DEADLINE`]: a session bus
/// that accepts the connection but whose keyring never answers must not hang docker.
fn with_service<T: Send + 'static>(
    op: impl FnOnce(&SecretService<'_>) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    session_bus_reachable()?;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        // The "plain" transfer algorithm of the Secret Service spec. The session bus is private
        // to the user, and any process that could read its traffic could as well ask the
        // service for the secret itself, so the DH transfer encryption protects nothing here;
        // the secret-service crate computes it with a naive bignum square-and-multiply that
        // costs ~3.5 ms a call, most of a `get` (bench/credential-get.sh).
        let result = connect().and_then(|ss| op(&ss));
        let _ = sender.send(result);
    });
    match receiver.recv_timeout(DEADLINE) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(StoreError::Unavailable {
            reason: format!("the Secret Service did not answer within {} s", DEADLINE.as_secs()),
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(StoreError::Unavailable { reason: "the Secret Service client stopped without an answer".into() })
        }
    }
}

/// A connection with an open session.
///
/// gnome-keyring-daemon (42 to 50 at least) registers a client when its first message arrives,
/// in an idle callback, and aborts if that client's `OpenSession` is handled before the
/// callback ran: a client whose first message is `OpenSession` kills the daemon now and then,
/// and with it every secret the desktop holds. So the first message is a property read that
/// needs no client (as libsecret's proxy does with its `GetAll`), and the session is opened
/// once that answer is back. Measured with `bench/keyring-race.sh`.
fn connect() -> Result<SecretService<'static>, StoreError> {
    let connection = zbus::blocking::Connection::session()
        .map_err(|e| StoreError::Unavailable { reason: format!("cannot connect to the session bus: {e}") })?;
    connection
        .call_method(
            Some("org.freedesktop.secrets"),
            "/org/freedesktop/secrets",
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.freedesktop.Secret.Service", "Collections"),
        )
        .map_err(|error| match &error {
            zbus::Error::MethodError(name, _, _)
                if matches!(
                    name.as_str(),
                    "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner"
                ) =>
            {
                ss_error(SsError::Unavailable)
            }
            _ => ss_error(SsError::from(error)),
        })?;
    SecretService::connect_with_existing(EncryptionType::Plain, connection).map_err(ss_error)
}

/// Fails at once when there is no session bus to connect to (a headless login, cron, CI).
fn session_bus_reachable() -> Result<(), StoreError> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty()) {
        return Ok(());
    }
    let runtime_bus = std::env::var_os("XDG_RUNTIME_DIR").map(|dir| Path::new(&dir).join("bus"));
    if runtime_bus.is_some_and(|bus| bus.exists()) {
        return Ok(());
    }
    Err(StoreError::Unavailable {
        reason: "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset and $XDG_RUNTIME_DIR/bus does not exist)"
            .into(),
    })
}

fn default_collection_unlocked<'a>(
    ss: &'a SecretService<'a>,
) -> Result<secret_service::blocking::Collection<'a>, StoreError> {
    // The default collection, as docker-credential-secretservice uses: the in-memory `session`
    // collection (which get_any_collection falls back to) would lose credentials at logout.
    let collection = ss.get_default_collection().map_err(|e| match e {
        SsError::NoResult | SsError::ZbusFdo(_) => StoreError::Unavailable {
            reason:
                "the keyring has no default collection (alias \"default\"); create one, e.g. log in to the desktop once"
                    .into(),
        },
        other => ss_error(other),
    })?;
    if collection.is_locked().map_err(ss_error)? {
        let label = collection.get_label().unwrap_or_else(|_| "default".into());
        return Err(StoreError::Locked { collection: label });
    }
    Ok(collection)
}

/// Every unlocked docker item; when all are locked, an error rather than a prompt.
fn docker_items<'a>(ss: &'a SecretService<'a>) -> Result<Vec<Item<'a>>, StoreError> {
    let found = ss.search_items(HashMap::from([DOCKER_CLI])).map_err(ss_error)?;
    if found.unlocked.is_empty() && !found.locked.is_empty() {
        return Err(StoreError::Locked { collection: "holding the docker credentials".into() });
    }
    Ok(found.unlocked)
}

/// An item's `server` and `username` attributes (None: not a complete docker item).
fn server_and_username(item: &Item<'_>) -> Result<Option<(String, String)>, StoreError> {
    let mut attributes = item.get_attributes().map_err(ss_error)?;
    Ok(attributes.remove("server").zip(attributes.remove("username")))
}

type Matching<'a> = Vec<(Item<'a>, (String, String))>;

/// The docker items of `key`'s registry. A matching item in a locked collection is an error:
/// answering "not found" would send docker anonymous or to a prompt of its own.
fn matching_items<'a>(ss: &'a SecretService<'a>, key: &RegistryKey) -> Result<Matching<'a>, StoreError> {
    let same_registry = |server: &str| RegistryKey::parse(server).is_ok_and(|found| &found == key);
    let found = ss.search_items(HashMap::from([DOCKER_CLI])).map_err(ss_error)?;
    let mut matching = Vec::new();
    for item in found.unlocked {
        if let Some((server, username)) = server_and_username(&item)?
            && same_registry(&server)
        {
            matching.push((item, (server, username)));
        }
    }
    if matching.is_empty() {
        for item in &found.locked {
            // Attributes are readable on locked items; only secrets are not.
            if let Ok(Some((server, _))) = server_and_username(item)
                && same_registry(&server)
            {
                return Err(StoreError::Locked { collection: "holding this registry's credential".into() });
            }
        }
    }
    Ok(matching)
}

fn secret_of(item: &Item<'_>, server_url: &str) -> Result<Secret, StoreError> {
    let bytes = zeroize::Zeroizing::new(item.get_secret().map_err(ss_error)?);
    let text =
        std::str::from_utf8(&bytes).map_err(|_| StoreError::SecretNotUtf8 { server_url: server_url.to_owned() })?;
    Ok(Secret::new(text.to_owned()))
}

fn ss_error(error: SsError) -> StoreError {
    match error {
        SsError::Locked | SsError::Prompt | SsError::PromptDisconnected => {
            StoreError::Locked { collection: "default".into() }
        }
        SsError::Unavailable => StoreError::Unavailable {
            reason: "no Secret Service provider on the session bus (org.freedesktop.secrets)".into(),
        },
        SsError::ZbusFdo(zbus_error) => StoreError::Unavailable { reason: zbus_error.to_string() },
        other => StoreError::Unavailable { reason: other.to_string() },
    }
}
