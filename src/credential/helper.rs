//! The docker credential helper protocol, over any reader and writer.
//!
//! docker/cli runs `docker-credential-<name> <action>` with the request on stdin and reads the
//! answer on stdout (docker/docker-credential-helpers `credentials.Serve`):
//!
//! | action  | stdin                                        | stdout                             |
//! |---------|----------------------------------------------|------------------------------------|
//! | store   | `{"ServerURL":…,"Username":…,"Secret":…}`    | nothing                            |
//! | get     | the server URL                               | `{"ServerURL":…,"Username":…,"Secret":…}` |
//! | erase   | the server URL                               | nothing                            |
//! | list    | anything (docker sends `unused`)             | `{"<server URL>":"<username>",…}`  |
//! | version | nothing                                      | one line                           |
//!
//! A failure is one line on stdout and exit status 1. docker/cli recognizes a miss only by the
//! exact text `credentials not found in native keychain`.

use std::fmt;
use std::io::{Read, Write};

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{Credential, ReadSecretError, Secret, Store, StoreError, read_to_end_wiped};
use crate::go_json;

/// The largest request read from stdin. Real secrets are a few KiB (Docker Hub access tokens,
/// cloud registry tokens); anything near this is not a credential.
pub const MAX_INPUT: usize = 1024 * 1024;

/// One helper action, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Store the credential read from stdin.
    Store,
    /// Print the credential of the server URL read from stdin.
    Get,
    /// Remove the credential of the server URL read from stdin.
    Erase,
    /// Print every server URL with its username.
    List,
    /// Print the helper's version.
    Version,
}

impl Action {
    /// The action named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "store" => Self::Store,
            "get" => Self::Get,
            "erase" => Self::Erase,
            "list" => Self::List,
            "version" | "--version" | "-v" => Self::Version,
            _ => return None,
        })
    }
}

/// Why a request failed. `Display` is the one line written to stdout.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// stdin was longer than [`MAX_INPUT`].
    #[error("input larger than {} KiB: not a credential request", MAX_INPUT / 1024)]
    InputTooLarge,
    /// stdin was not UTF-8.
    #[error("input is not UTF-8 text")]
    NotUtf8,
    /// stdin could not be read or stdout written.
    #[error("i/o error on the helper's standard streams: {0}")]
    Io(#[from] std::io::Error),
    /// The store request is not a JSON object.
    #[error("invalid credential JSON: expected an object with ServerURL, Username and Secret ({0})")]
    InvalidJson(String),
    /// A field of the store request has the wrong type.
    #[error("invalid credential JSON: {field} must be a string")]
    FieldNotString {
        /// The field's name.
        field: &'static str,
    },
    /// The store failed or has no such credential.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HelperError {
    /// Whether this is the "not found" answer, which docker/cli takes as "no credentials".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Store(StoreError::NotFound))
    }
}

#[derive(Serialize)]
struct CredentialJson<'a> {
    #[serde(rename = "ServerURL")]
    server_url: &'a str,
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Secret")]
    secret: &'a str,
}

/// Serves one request: reads what `action` needs from `input`, acts on `store`, writes the
/// answer to `output`. `version` is the line printed for [`Action::Version`].
pub fn serve(
    action: Action,
    input: impl Read,
    mut output: impl Write,
    store: &dyn Store,
    version: &str,
) -> Result<(), HelperError> {
    match action {
        Action::Version => writeln!(output, "{version}")?,
        Action::Store => {
            let request = read_input(input)?;
            store.store(&parse_credential(&request)?)?;
        }
        Action::Get => {
            let server_url = read_server_url(input)?;
            let credential = store.get(&server_url)?;
            // Answered with the URL asked for, as docker-credential-helpers' Get does: a
            // client may compare it with its own spelling.
            let answer = CredentialJson {
                server_url: &server_url,
                username: &credential.username,
                secret: credential.secret.expose(),
            };
            // Room for the worst case (every character escaped as \u00XX), so the buffer never
            // grows: a grown Vec frees its old buffer, with the secret in it, unwiped.
            let capacity = 64 + 6 * (server_url.len() + credential.username.len() + credential.secret.expose().len());
            let mut json = Zeroizing::new(Vec::with_capacity(capacity));
            serde_json::to_writer(&mut *json, &answer).map_err(|e| HelperError::InvalidJson(e.to_string()))?;
            json.push(b'\n');
            output.write_all(&json)?;
        }
        Action::Erase => {
            let server_url = read_server_url(input)?;
            // A missing entry is success: docker logout erases four spellings of one address.
            store.erase(&server_url)?;
        }
        Action::List => {
            // docker/cli writes "unused"; read it so the writer never sees a broken pipe.
            let _ = read_input(input);
            let listing: Map<String, Value> =
                store.list()?.into_iter().map(|entry| (entry.server_url, Value::String(entry.username))).collect();
            serde_json::to_writer(&mut output, &listing).map_err(std::io::Error::from)?;
            output.write_all(b"\n")?;
        }
    }
    output.flush()?;
    Ok(())
}

/// Reads at most [`MAX_INPUT`] bytes into memory that is wiped when dropped: the request may
/// hold a secret.
fn read_input(input: impl Read) -> Result<Zeroizing<Vec<u8>>, HelperError> {
    read_to_end_wiped(input, MAX_INPUT).map_err(|e| match e {
        ReadSecretError::TooLarge { .. } => HelperError::InputTooLarge,
        ReadSecretError::Io(e) => HelperError::Io(e),
    })
}

/// The server URL of a `get` or `erase` request: the input's text, trimmed.
fn read_server_url(input: impl Read) -> Result<String, HelperError> {
    let bytes = read_input(input)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| HelperError::NotUtf8)?;
    Ok(text.trim().to_owned())
}

/// Parses a store request straight from the bytes read: the secret is copied once, into its
/// [`Secret`]. Messages never quote the input, which holds the secret.
fn parse_credential(request: &[u8]) -> Result<Credential, HelperError> {
    let text = std::str::from_utf8(request).map_err(|_| HelperError::NotUtf8)?;
    let request: StoreRequest = serde_json::from_str(text).map_err(|e| {
        HelperError::InvalidJson(match e.classify() {
            // The only data error left is a document that is not an object.
            serde_json::error::Category::Data => "not an object".to_owned(),
            _ => format!("syntax error at line {} column {}", e.line(), e.column()),
        })
    })?;
    if let Some(field) = request.not_text {
        return Err(HelperError::FieldNotString { field });
    }
    if request.server_url.trim().is_empty() {
        return Err(StoreError::InvalidServerUrl(super::InvalidServerUrl::Empty).into());
    }
    if request.username.is_empty() {
        return Err(StoreError::MissingUsername.into());
    }
    Ok(Credential { server_url: request.server_url, username: request.username, secret: request.secret })
}

/// A `store` request, `{"ServerURL":…,"Username":…,"Secret":…}`, read as the Go helpers read
/// it: keys match as Go's encoding/json matches them (the `go_json` module), the last matching
/// key wins, a `null` leaves the field as it was, a missing field is empty, other keys are
/// ignored.
#[derive(Debug, Default)]
struct StoreRequest {
    server_url: String,
    username: String,
    secret: Secret,
    /// The first field whose value was neither a string nor `null` (Go refuses the request).
    not_text: Option<&'static str>,
}

impl<'de> Deserialize<'de> for StoreRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StoreRequestVisitor)
    }
}

struct StoreRequestVisitor;

impl<'de> Visitor<'de> for StoreRequestVisitor {
    type Value = StoreRequest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with ServerURL, Username and Secret")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StoreRequest, A::Error> {
        let mut request = StoreRequest::default();
        while let Some(key) = map.next_key::<String>()? {
            let text = if go_json::key_matches(&key, "ServerURL") {
                map.next_value::<JsonText<String>>()?.store_in(&mut request.server_url, "ServerURL")
            } else if go_json::key_matches(&key, "Username") {
                map.next_value::<JsonText<String>>()?.store_in(&mut request.username, "Username")
            } else if go_json::key_matches(&key, "Secret") {
                map.next_value::<JsonText<Secret>>()?.store_in(&mut request.secret, "Secret")
            } else {
                map.next_value::<IgnoredAny>()?;
                Ok(())
            };
            if let Err(field) = text {
                request.not_text.get_or_insert(field);
            }
        }
        Ok(request)
    }
}

/// One field's value: text, `null`, or anything else (skipped without being copied).
enum JsonText<T> {
    Text(T),
    Null,
    NotText,
}

impl<T> JsonText<T> {
    /// Sets `slot` to the text (a `null` keeps what it held, as Go does); `Err(field)` when
    /// the value was not text.
    fn store_in(self, slot: &mut T, field: &'static str) -> Result<(), &'static str> {
        match self {
            Self::Text(value) => *slot = value,
            Self::Null => {}
            Self::NotText => return Err(field),
        }
        Ok(())
    }
}

impl<'de, T: From<String>> Deserialize<'de> for JsonText<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonTextVisitor(std::marker::PhantomData))
    }
}

struct JsonTextVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: From<String>> Visitor<'de> for JsonTextVisitor<T> {
    type Value = JsonText<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(JsonText::Text(T::from(text.to_owned())))
    }
    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(JsonText::Text(T::from(text)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(JsonText::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(JsonText::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(JsonText::NotText)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(JsonText::NotText)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(JsonText::NotText)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(JsonText::NotText)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonText::NotText)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(JsonText::NotText)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;
    use crate::credential::{Listing, RegistryKey};

    /// An in-memory store with the same matching rules as the real ones.
    #[derive(Default)]
    struct MemoryStore(RefCell<BTreeMap<RegistryKey, Credential>>);

    impl Store for MemoryStore {
        fn get(&self, server_url: &str) -> Result<Credential, StoreError> {
            let key = RegistryKey::parse(server_url)?;
            self.0.borrow().get(&key).cloned().ok_or(StoreError::NotFound)
        }
        fn store(&self, credential: &Credential) -> Result<(), StoreError> {
            let key = RegistryKey::parse(&credential.server_url)?;
            self.0.borrow_mut().insert(key, credential.clone());
            Ok(())
        }
        fn erase(&self, server_url: &str) -> Result<bool, StoreError> {
            Ok(self.0.borrow_mut().remove(&RegistryKey::parse(server_url)?).is_some())
        }
        fn list(&self) -> Result<Vec<Listing>, StoreError> {
            Ok(self
                .0
                .borrow()
                .values()
                .map(|c| Listing { server_url: c.server_url.clone(), username: c.username.clone() })
                .collect())
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    fn run(store: &MemoryStore, action: Action, input: &[u8]) -> Result<String, HelperError> {
        let mut out = Vec::new();
        serve(action, input, &mut out, store, "docker-credential-imgctl (imgctl) test")?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn store_then_get_prints_the_exact_json() {
        let store = MemoryStore::default();
        let request = br#"{"ServerURL":"https://registry.example.com","Username":"alice","Secret":"p<a>ss"}
"#;
        assert_eq!(run(&store, Action::Store, request).unwrap(), "");
        assert_eq!(
            run(&store, Action::Get, b"registry.example.com").unwrap(),
            "{\"ServerURL\":\"registry.example.com\",\"Username\":\"alice\",\"Secret\":\"p<a>ss\"}\n"
        );
    }

    #[test]
    fn list_keys_are_server_urls() {
        let store = MemoryStore::default();
        run(&store, Action::Store, br#"{"ServerURL":"ghcr.io","Username":"<token>","Secret":"t"}"#).unwrap();
        run(&store, Action::Store, br#"{"ServerURL":"https://index.docker.io/v1/","Username":"bob","Secret":"s"}"#)
            .unwrap();
        assert_eq!(
            run(&store, Action::List, b"unused").unwrap(),
            "{\"ghcr.io\":\"<token>\",\"https://index.docker.io/v1/\":\"bob\"}\n"
        );
        assert_eq!(run(&MemoryStore::default(), Action::List, b"unused").unwrap(), "{}\n");
    }

    #[test]
    fn keys_match_case_insensitively_like_go() {
        let store = MemoryStore::default();
        run(&store, Action::Store, br#"{"serverurl":"h.io","USERNAME":"u","secret":"s"}"#).unwrap();
        assert_eq!(store.get("h.io").unwrap().secret.expose(), "s");
    }

    #[test]
    fn store_request_keys_are_read_as_go_reads_them() {
        // Go folds the long s onto S and the Kelvin sign onto K, decodes repeated keys in
        // order (the last wins) and leaves a field as it was on null.
        let cases: [(&[u8], &str, &str); 4] = [
            (br#"{"ServerURL":"h.io","Username":"u","\u017fecret":"long-s"}"#, "u", "long-s"),
            (br#"{"ServerURL":"h.io","Username":"u","Secret":"first","SECRET":"last"}"#, "u", "last"),
            (br#"{"ServerURL":"h.io","Username":"u","Secret":"kept","secret":null}"#, "u", "kept"),
            (br#"{"ServerURL":"h.io","username":"a","Username":"b","Secret":"s","Other":[1,{"x":2}]}"#, "b", "s"),
        ];
        for (request, username, secret) in cases {
            let store = MemoryStore::default();
            run(&store, Action::Store, request).unwrap();
            let stored = store.get("h.io").unwrap();
            assert_eq!((stored.username.as_str(), stored.secret.expose()), (username, secret));
        }
    }

    #[test]
    fn store_requests_parse_from_bytes_into_a_secret() {
        let request: StoreRequest =
            serde_json::from_slice(br#"{"ServerURL":"h.io","Username":"u","Secret":"p\"w\u00e9"}"#).unwrap();
        let secret: Secret = request.secret;
        assert_eq!(secret.expose(), "p\"wé");
        assert_eq!((request.server_url.as_str(), request.username.as_str(), request.not_text), ("h.io", "u", None));
        let numeric: StoreRequest = serde_json::from_slice(br#"{"Username":5,"Secret":{"a":"b"}}"#).unwrap();
        assert_eq!(numeric.not_text, Some("Username"));
        assert!(numeric.secret.is_empty());
    }

    #[test]
    fn a_miss_is_the_exact_message_docker_recognizes() {
        let err = run(&MemoryStore::default(), Action::Get, b"nowhere.example.com").unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.to_string(), "credentials not found in native keychain");
    }

    #[test]
    fn erase_of_a_missing_entry_succeeds() {
        assert_eq!(run(&MemoryStore::default(), Action::Erase, b"https://h.io").unwrap(), "");
    }

    #[test]
    fn bad_requests_are_refused_without_quoting_them() {
        let store = MemoryStore::default();
        let cases: [(&[u8], &str); 8] = [
            (b"", "invalid credential JSON"),
            (b"not json SECRETVALUE", "invalid credential JSON: expected an object"),
            (b"[\"SECRETVALUE\"]", "not an object"),
            (br#"{"Username":"u","Secret":"SECRETVALUE"}"#, "no credentials server URL"),
            (br#"{"ServerURL":"h.io","Secret":"SECRETVALUE"}"#, "no credentials username"),
            (br#"{"ServerURL":"h.io","Username":"u","Secret":5}"#, "Secret must be a string"),
            (b"\xff\xfe\x00junk", "not UTF-8"),
            (br#"{"ServerURL":"a b","Username":"u","Secret":"SECRETVALUE"}"#, "invalid server URL"),
        ];
        for (input, expected) in cases {
            let message = run(&store, Action::Store, input).unwrap_err().to_string();
            assert!(message.contains(expected), "{message:?} should contain {expected:?}");
            assert!(!message.contains("SECRETVALUE"), "{message:?} quotes the input");
        }
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn oversized_input_is_refused() {
        let huge = vec![b'a'; MAX_INPUT + 1];
        assert!(matches!(run(&MemoryStore::default(), Action::Store, &huge), Err(HelperError::InputTooLarge)));
    }

    #[test]
    fn large_secrets_and_any_utf8_round_trip() {
        let store = MemoryStore::default();
        let secret: String = "🔑é\"\\\n\u{0}x".repeat(64 * 1024 / 8);
        let request = serde_json::json!({"ServerURL": "h.io", "Username": "<token>", "Secret": secret});
        run(&store, Action::Store, request.to_string().as_bytes()).unwrap();
        let answer: Value = serde_json::from_str(&run(&store, Action::Get, b"h.io").unwrap()).unwrap();
        assert_eq!(answer["Secret"], Value::String(secret));
        assert_eq!(answer["Username"], "<token>");
    }

    #[test]
    fn version_line() {
        assert_eq!(
            run(&MemoryStore::default(), Action::Version, b"").unwrap(),
            "docker-credential-imgctl (imgctl) test\n"
        );
    }
}
