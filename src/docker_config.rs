//! Docker's `config.json`: which helper docker runs, and the plaintext `auths` to move out.
//!
//! The file belongs to the user and to docker: every key imgctl does not know is kept, in its
//! order, and writes replace the file atomically with its permissions kept (0600 when new).
//!
//! Docker decodes the file with Go's encoding/json, which matches keys without regard to case:
//! `"Auths"`, `"Auth"`, `"Password"` or `"CredsStore"` mean to docker what their lower-case
//! spellings mean. Every key here is read as docker reads it (the `go_json` module): repeated
//! `auths` or `credHelpers` objects merge into one map, the last matching key wins.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::credential::{Credential, IDENTITY_TOKEN_USERNAME, RegistryKey, Secret};
use crate::{atomic_file, go_json};

/// The `credsStore` / `credHelpers` name under which docker runs `docker-credential-imgctl`.
pub const HELPER_NAME: &str = "imgctl";

/// Fields of an `auths` entry that hold a credential in plain text.
const PLAINTEXT_FIELDS: &[&str] = &["auth", "username", "password", "identitytoken", "registrytoken"];
/// The top-level fields imgctl reads and writes, as docker/cli's `ConfigFile` names them.
const AUTHS: &str = "auths";
const CREDS_STORE: &str = "credsStore";
const CRED_HELPERS: &str = "credHelpers";

/// A docker `config.json`, loaded whole.
#[derive(Clone)]
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
}

/// The document may hold plaintext credentials: only the path is shown.
impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerConfig").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Reading or writing config.json failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerConfigError {
    /// The file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a JSON object (docker itself would refuse it too).
    #[error("{path} is not valid JSON ({reason}); fix or move it, docker cannot read it either")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where the syntax error is.
        reason: String,
    },
}

/// A credential found in plain text under `auths`, or why an entry could not be read.
#[derive(Debug)]
pub enum PlaintextAuth {
    /// A readable credential.
    Credential(Credential),
    /// An entry with plaintext fields that do not decode to a credential.
    Unreadable {
        /// The `auths` key.
        server_url: String,
        /// What is wrong with it (never the value).
        reason: &'static str,
    },
}

impl DockerConfig {
    /// The directory docker reads: `$DOCKER_CONFIG`, else `~/.docker`.
    pub fn default_dir() -> Option<PathBuf> {
        crate::dirs::env_or_home("DOCKER_CONFIG", ".docker")
    }

    /// Loads `dir/config.json`; a missing file is an empty configuration.
    pub fn load(dir: &Path) -> Result<Self, DockerConfigError> {
        Self::load_file(&dir.join("config.json"))
    }

    /// Loads a config.json at `path` (a backup, say); a missing file is an empty configuration.
    pub fn load_file(path: &Path) -> Result<Self, DockerConfigError> {
        let path = path.to_owned();
        let doc = match fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => parse(&path, serde_json::from_slice(&bytes))?,
            Err(e) if e.kind() == ErrorKind::NotFound => Map::new(),
            Err(source) => return Err(DockerConfigError::Io { action: "reading", path, source }),
        };
        Ok(Self { path, doc })
    }

    /// A configuration given as JSON text (`DOCKER_AUTH_CONFIG`); `origin` names it in errors.
    pub fn from_json(origin: &Path, text: &str) -> Result<Self, DockerConfigError> {
        Ok(Self { path: origin.to_owned(), doc: parse(origin, serde_json::from_str(text))? })
    }

    /// The helper `credHelpers` names for `registry` (matched by registry, in any spelling).
    pub fn cred_helper_for(&self, registry: &RegistryKey) -> Option<&str> {
        self.merged(CRED_HELPERS).into_iter().find_map(|(server, helper)| {
            (RegistryKey::parse(server).ok().as_ref() == Some(registry)).then(|| helper.as_str()).flatten()
        })
    }

    /// The plaintext credential `auths` holds for `registry` (matched by registry, as docker's
    /// file store matches its keys through ConvertToHostname).
    pub fn plaintext_auth_for(&self, registry: &RegistryKey) -> Option<PlaintextAuth> {
        self.plaintext_auths().into_iter().find(|found| {
            let server = match found {
                PlaintextAuth::Credential(c) => &c.server_url,
                PlaintextAuth::Unreadable { server_url, .. } => server_url,
            };
            RegistryKey::parse(server).ok().as_ref() == Some(registry)
        })
    }

    /// The file this configuration is read from and written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file exists on disk.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// The `credsStore` docker uses.
    pub fn creds_store(&self) -> Option<&str> {
        go_json::field(&self.doc, CREDS_STORE).and_then(Value::as_str)
    }

    /// Sets or removes `credsStore`, in every spelling: the value set is spelled `credsStore`
    /// and takes the place of the first spelling there was.
    pub fn set_creds_store(&mut self, store: Option<&str>) {
        let first = self.doc.keys().position(|key| go_json::key_matches(key, CREDS_STORE));
        self.doc.retain(|key, _| !go_json::key_matches(key, CREDS_STORE));
        if let Some(store) = store {
            let value = Value::String(store.into());
            match first {
                Some(index) => self.doc.shift_insert(index, CREDS_STORE.into(), value),
                None => self.doc.insert(CREDS_STORE.into(), value),
            };
        }
    }

    /// The registries `credHelpers` sends to `helper`.
    pub fn registries_using_helper(&self, helper: &str) -> Vec<String> {
        self.merged(CRED_HELPERS)
            .into_iter()
            .filter(|(_, name)| name.as_str() == Some(helper))
            .map(|(registry, _)| registry.clone())
            .collect()
    }

    /// Every `auths` entry docker reads that holds a credential in plain text.
    pub fn plaintext_auths(&self) -> Vec<PlaintextAuth> {
        self.merged(AUTHS)
            .into_iter()
            .filter_map(|(server_url, entry)| {
                let entry = entry.as_object()?;
                holds_plaintext(entry).then(|| decode_auth(server_url, entry))
            })
            .collect()
    }

    /// Every `auths` key whose entry holds a plaintext field, also one a later spelling of
    /// `auths` hides from docker: its secret is on disk all the same.
    pub fn servers_with_plaintext(&self) -> Vec<String> {
        let mut servers: Vec<String> = Vec::new();
        for (server, entry) in self.objects(AUTHS).flatten() {
            if entry.as_object().is_some_and(holds_plaintext) && !servers.contains(server) {
                servers.push(server.clone());
            }
        }
        servers
    }

    /// Removes the plaintext fields of `auths[server_url]`, in every spelling of `auths` and of
    /// the fields, leaving the empty entry docker itself writes when a helper holds the
    /// credential.
    pub fn strip_plaintext(&mut self, server_url: &str) {
        for auths in self.auths_objects_mut() {
            if let Some(entry) = auths.get_mut(server_url).and_then(Value::as_object_mut) {
                strip_entry(entry);
            }
        }
    }

    /// Removes every plaintext credential field of every `auths` entry.
    pub fn strip_all_plaintext(&mut self) {
        for auths in self.auths_objects_mut() {
            auths.values_mut().filter_map(Value::as_object_mut).for_each(strip_entry);
        }
    }

    /// The `auths` keys that hold no plaintext credential (docker keeps such an entry for each
    /// registry whose credential a helper holds).
    pub fn auths_without_plaintext(&self) -> Vec<String> {
        self.merged(AUTHS)
            .into_iter()
            .filter(|(_, entry)| entry.as_object().is_none_or(|e| !holds_plaintext(e)))
            .map(|(server, _)| server.clone())
            .collect()
    }

    /// The objects under every top-level key that matches `field`, in document order.
    fn objects<'a>(&'a self, field: &'a str) -> impl Iterator<Item = &'a Map<String, Value>> {
        self.doc.iter().filter(move |(key, _)| go_json::key_matches(key, field)).filter_map(|(_, v)| v.as_object())
    }

    fn auths_objects_mut(&mut self) -> impl Iterator<Item = &mut Map<String, Value>> {
        self.doc.iter_mut().filter(|(key, _)| go_json::key_matches(key, AUTHS)).filter_map(|(_, v)| v.as_object_mut())
    }

    /// The map docker decodes the top-level `field` into: Go decodes each matching object
    /// into the map it already has, so entries merge and a later one replaces an earlier one
    /// under the same key.
    fn merged<'a>(&'a self, field: &'a str) -> Vec<(&'a String, &'a Value)> {
        let mut merged: Vec<(&String, &Value)> = Vec::new();
        for (key, value) in self.objects(field).flatten() {
            match merged.iter_mut().find(|(seen, _)| *seen == key) {
                Some(slot) => slot.1 = value,
                None => merged.push((key, value)),
            }
        }
        merged
    }

    /// The document as docker would read it, pretty-printed with tabs as docker writes it.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        serde::Serialize::serialize(&self.doc, &mut serializer).expect("a JSON map serializes");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// Writes the configuration back atomically, keeping the file's permissions.
    pub fn save(&self) -> Result<(), DockerConfigError> {
        self.save_to(&self.path)
    }

    /// Writes the configuration to `path` atomically (0600 unless `path` exists with a mode).
    pub fn save_to(&self, path: &Path) -> Result<(), DockerConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |action| move |source| DockerConfigError::Io { action, path: path.to_owned(), source };
        // A dotfiles-managed config.json is often a symlink: replace its target, not the link.
        let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mode = fs::metadata(&target).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
        if let Some(dir) = target.parent() {
            atomic_file::create_dir(dir, 0o700).map_err(io("creating the directory of"))?;
        }
        atomic_file::write(&target, self.to_json().as_bytes(), mode).map_err(io("writing"))
    }
}

/// The document out of a parse, or why it is not one (never quoting it: it may hold secrets).
fn parse(
    path: &Path,
    parsed: serde_json::Result<go_json::StructObject>,
) -> Result<Map<String, Value>, DockerConfigError> {
    parsed.map(|go_json::StructObject(doc)| doc).map_err(|e| DockerConfigError::Invalid {
        path: path.to_owned(),
        reason: match e.classify() {
            serde_json::error::Category::Data => "not an object".to_owned(),
            _ => format!("line {} column {}", e.line(), e.column()),
        },
    })
}

/// Whether an `auths` entry has a plaintext credential field, in any spelling docker reads.
fn holds_plaintext(entry: &Map<String, Value>) -> bool {
    PLAINTEXT_FIELDS.iter().any(|field| go_json::has_field(entry, field))
}

/// Removes every spelling of every plaintext field of an `auths` entry.
fn strip_entry(entry: &mut Map<String, Value>) {
    entry.retain(|key, _| !PLAINTEXT_FIELDS.iter().any(|field| go_json::key_matches(key, field)));
}

fn decode_auth(server_url: &str, entry: &Map<String, Value>) -> PlaintextAuth {
    let text = |field: &str| go_json::field(entry, field).and_then(Value::as_str).filter(|v| !v.is_empty());
    let credential = |username: &str, secret: &str| {
        PlaintextAuth::Credential(Credential {
            server_url: server_url.to_owned(),
            username: username.to_owned(),
            secret: Secret::new(secret.to_owned()),
        })
    };
    let unreadable = |reason| PlaintextAuth::Unreadable { server_url: server_url.to_owned(), reason };
    if let Some(token) = text("identitytoken") {
        return credential(IDENTITY_TOKEN_USERNAME, token);
    }
    if let Some(auth) = text("auth") {
        let Ok(decoded) = STANDARD.decode(auth.trim()) else {
            return unreadable("the auth field is not base64");
        };
        let decoded = zeroize::Zeroizing::new(decoded);
        let Ok(decoded) = std::str::from_utf8(&decoded) else {
            return unreadable("the auth field is not UTF-8");
        };
        return match decoded.split_once(':') {
            Some((user, secret)) if !user.is_empty() => credential(user, secret),
            _ => unreadable("the auth field is not base64 of username:password"),
        };
    }
    match (text("username"), text("password")) {
        (Some(user), Some(password)) => credential(user, password),
        _ => unreadable("no auth, identitytoken or username and password"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> DockerConfig {
        DockerConfig { path: PathBuf::from("/nonexistent/config.json"), doc: serde_json::from_str(json).unwrap() }
    }

    #[test]
    fn finds_and_strips_plaintext_auths_keeping_everything_else() {
        let mut cfg = config(
            r#"{"auths":{"reg.io":{"auth":"YWxpY2U6cDpzcw==","email":"a@b"},"ghcr.io":{"identitytoken":"tok"},"empty.io":{}},
                "psFormat":"table {{.ID}}","credHelpers":{"gcr.io":"gcloud","x.io":"imgctl"}}"#,
        );
        let found = cfg.plaintext_auths();
        assert_eq!(found.len(), 2);
        let PlaintextAuth::Credential(alice) = &found[0] else { panic!("unreadable") };
        assert_eq!(
            (alice.server_url.as_str(), alice.username.as_str(), alice.secret.expose()),
            ("reg.io", "alice", "p:ss")
        );
        let PlaintextAuth::Credential(token) = &found[1] else { panic!("unreadable") };
        assert_eq!((token.username.as_str(), token.secret.expose()), ("<token>", "tok"));

        cfg.strip_plaintext("reg.io");
        cfg.strip_plaintext("ghcr.io");
        assert!(cfg.plaintext_auths().is_empty());
        let json = cfg.to_json();
        assert!(json.contains("\"email\": \"a@b\""), "{json}");
        assert!(json.contains("psFormat"));
        assert_eq!(cfg.registries_using_helper("imgctl"), vec!["x.io".to_string()]);
    }

    #[test]
    fn unreadable_entries_are_reported_without_their_value() {
        let cfg = config(r#"{"auths":{"bad.io":{"auth":"%%%SECRET"}}}"#);
        let found = cfg.plaintext_auths();
        let PlaintextAuth::Unreadable { reason, .. } = &found[0] else { panic!("decoded junk") };
        assert!(!reason.contains("SECRET"));
    }

    fn found(cfg: &DockerConfig) -> Vec<(String, String, String)> {
        cfg.plaintext_auths()
            .into_iter()
            .map(|found| match found {
                PlaintextAuth::Credential(c) => (c.server_url, c.username, c.secret.expose().to_owned()),
                PlaintextAuth::Unreadable { server_url, reason } => (server_url, "unreadable".into(), reason.into()),
            })
            .collect()
    }

    #[test]
    fn auths_spelled_in_any_case_are_read_as_docker_reads_them() {
        let cfg = config(
            r#"{"Auths":{"reg.io":{"Auth":"YWxpY2U6cGFzcw=="},"ghcr.io":{"IdentityToken":"tok"},
                         "pw.io":{"USERNAME":"bob","Password":"pw"},"shadowed.io":{"auth":"b2xkOm9sZA=="}},
                "auths":{"shadowed.io":{"password":"new","username":"carol"},"late.io":{"auth":"bGF0ZTp4","Auth":"bGF0ZTp5"}}}"#,
        );
        assert_eq!(
            found(&cfg),
            [
                ("reg.io", "alice", "pass"),
                ("ghcr.io", "<token>", "tok"),
                ("pw.io", "bob", "pw"),
                ("shadowed.io", "carol", "new"),
                ("late.io", "late", "y"),
            ]
            .map(|(s, u, p)| (s.to_owned(), u.to_owned(), p.to_owned()))
        );
        let registry = RegistryKey::parse("https://pw.io/").unwrap();
        assert!(matches!(cfg.plaintext_auth_for(&registry), Some(PlaintextAuth::Credential(c)) if c.username == "bob"));
        assert_eq!(cfg.servers_with_plaintext(), ["reg.io", "ghcr.io", "pw.io", "shadowed.io", "late.io"]);
    }

    #[test]
    fn plaintext_fields_in_any_case_and_any_auths_are_stripped() {
        let mut cfg = config(
            r#"{"Auths":{"a.io":{"Auth":"x","Email":"a@b"},"b.io":{"IdentityToken":"t"}},
                "auths":{"a.io":{"PASSWORD":"p","username":"u"},"c.io":{}}}"#,
        );
        cfg.strip_plaintext("a.io");
        assert_eq!(cfg.servers_with_plaintext(), ["b.io"]);
        assert!(cfg.to_json().contains("\"Email\": \"a@b\""), "{}", cfg.to_json());
        cfg.strip_all_plaintext();
        assert!(cfg.servers_with_plaintext().is_empty());
        assert!(cfg.plaintext_auths().is_empty());
        assert_eq!(cfg.auths_without_plaintext(), ["a.io", "b.io", "c.io"]);
        for secret in ["\"x\"", "\"t\"", "\"p\"", "\"u\""] {
            assert!(!cfg.to_json().contains(secret), "{}", cfg.to_json());
        }
    }

    #[test]
    fn creds_store_and_cred_helpers_in_any_spelling() {
        let mut cfg = config(
            r#"{"a":1,"CredsStore":"desktop","z":2,"credsstore":"ecr-login","CredHelpers":{"gcr.io":"gcloud"},
                "credHelpers":{"x.io":"imgctl"}}"#,
        );
        assert_eq!(cfg.creds_store(), Some("ecr-login"), "the last spelling wins");
        assert_eq!(cfg.cred_helper_for(&RegistryKey::parse("gcr.io").unwrap()), Some("gcloud"));
        assert_eq!(cfg.registries_using_helper("imgctl"), ["x.io"]);
        cfg.set_creds_store(Some("imgctl"));
        assert_eq!(cfg.creds_store(), Some("imgctl"));
        let json = cfg.to_json();
        assert_eq!(json.to_ascii_lowercase().matches("credsstore").count(), 1, "{json}");
        assert!(json.find("\"credsStore\": \"imgctl\"").unwrap() < json.find("\"z\"").unwrap(), "{json}");
        cfg.set_creds_store(None);
        assert_eq!(cfg.creds_store(), None);
    }

    #[test]
    fn an_exactly_repeated_auths_merges_as_go_merges_it() {
        let cfg = DockerConfig::from_json(
            Path::new("test"),
            r#"{"auths":{"a.io":{"auth":"YTpmaXJzdA=="},"b.io":{"auth":"Yjpi"}},"psFormat":"x","auths":{"a.io":{"auth":"YTpsYXN0"}}}"#,
        )
        .unwrap();
        assert_eq!(
            found(&cfg),
            [("a.io", "a", "last"), ("b.io", "b", "b")].map(|(s, u, p)| (s.to_owned(), u.to_owned(), p.to_owned()))
        );
        assert!(cfg.to_json().find("auths").unwrap() < cfg.to_json().find("psFormat").unwrap());
        for (text, reason) in [("[1]", "not an object"), ("{\"auths\": SECRET", "line 1 column 11")] {
            let Err(DockerConfigError::Invalid { reason: got, .. }) = DockerConfig::from_json(Path::new("t"), text)
            else {
                panic!("{text} parsed")
            };
            assert_eq!(got, reason);
        }
    }

    #[test]
    fn creds_store_is_set_and_removed_in_place() {
        let mut cfg = config(r#"{"a":1,"credsStore":"pass","z":2}"#);
        cfg.set_creds_store(Some("imgctl"));
        assert_eq!(cfg.creds_store(), Some("imgctl"));
        assert!(cfg.to_json().find("credsStore").unwrap() < cfg.to_json().find("\"z\"").unwrap());
        cfg.set_creds_store(None);
        assert_eq!(cfg.creds_store(), None);
    }
}
