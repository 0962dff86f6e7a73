//! containers-policy.json, the file podman, skopeo, buildah and CRI-O read: `default`, and
//! `transports.docker` scopes from the most specific (`host/ns/repo:tag`) to the least (`host`,
//! `*.domain`), each a list of requirements that must all accept.
//!
//! What imgctl cannot check offline (keyless Fulcio certificates, Rekor entries, GPG `signedBy`,
//! `remapIdentity`) is kept as [`Requirement::Unsupported`] and refused by name when an image
//! falls under its scope, so a policy written for other tools still serves the scopes imgctl can
//! honour, and never silently weakens the ones it cannot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::key::{KeyError, PublicKey};
use crate::reference::Reference;

/// A loaded policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The file it was read from.
    pub path: PathBuf,
    default: Vec<Requirement>,
    docker: BTreeMap<String, Vec<Requirement>>,
}

/// One requirement of a scope.
#[derive(Clone, Debug, PartialEq)]
pub enum Requirement {
    /// `insecureAcceptAnything`.
    AcceptAnything,
    /// `reject`.
    Reject,
    /// `sigstoreSigned` with keys: a signature verifying with one of them.
    Signed {
        /// The trusted keys (one must verify).
        keys: Vec<PublicKey>,
        /// What the signature's identity must say.
        identity: SignedIdentity,
    },
    /// A requirement imgctl cannot check, refused when it applies.
    Unsupported(String),
}

/// `signedIdentity`: how the identity a signature claims must relate to the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedIdentity {
    /// The default: the image is pinned by digest, so the signature's repository must be the
    /// image's.
    MatchRepoDigestOrExact,
    /// The same repository, any tag or digest.
    MatchRepository,
    /// Exactly the reference verified (`repo@sha256:...`).
    MatchExact,
    /// Exactly this reference.
    ExactReference(String),
    /// Exactly this repository.
    ExactRepository(String),
}

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file cannot be read.
    #[error("reading the policy {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a policy.
    #[error("the policy {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A key the policy names cannot be used.
    #[error("the policy {path}: {what}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Which key (`keyPath /x.pub`, `keyData`).
        what: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A key file the policy names cannot be read.
    #[error("the policy {path}: reading {key}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where the policy comes from, in the order imgctl looks.
#[derive(Clone, Debug)]
pub enum PolicySource {
    /// Given explicitly (`--policy`, `x-imgctl.verify`): it must exist.
    Given(PathBuf),
    /// The default locations: `$HOME/.config/containers/policy.json`, then
    /// `/etc/containers/policy.json`. Neither existing means no gate.
    Defaults {
        /// `$HOME`, if known.
        home: Option<PathBuf>,
    },
}

impl PolicySource {
    /// The policy, or None when no default file exists.
    pub fn load(&self) -> Result<Option<Policy>, PolicyError> {
        match self {
            Self::Given(path) => Policy::load(path).map(Some),
            Self::Defaults { home } => {
                let user = home.as_ref().map(|h| h.join(".config/containers/policy.json"));
                for path in user.into_iter().chain([PathBuf::from("/etc/containers/policy.json")]) {
                    match std::fs::metadata(&path) {
                        Ok(_) => return Policy::load(&path).map(Some),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(source) => return Err(PolicyError::Read { path, source }),
                    }
                }
                Ok(None)
            }
        }
    }
}

impl Policy {
    /// Reads and parses `path`; relative `keyPath`s are taken from its directory.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses the text of the policy at `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid { path: path.to_owned(), message };
        let document: Value = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let top = document.as_object().ok_or_else(|| invalid("not a JSON object".into()))?;
        only_keys(top, &["default", "transports"], "the top level").map_err(invalid)?;
        let base = path.parent().unwrap_or(Path::new("/"));
        let default = top.get("default").ok_or_else(|| invalid("no \"default\" requirements".into()))?;
        let default = requirements(default, "default", path, base)?;
        let mut docker = BTreeMap::new();
        if let Some(transports) = top.get("transports") {
            let transports = transports.as_object().ok_or_else(|| invalid("transports is not an object".into()))?;
            // Other transports (docker-daemon, oci, containers-storage...) are not where imgctl
            // reads images from.
            if let Some(scopes) = transports.get("docker") {
                let scopes = scopes.as_object().ok_or_else(|| invalid("transports.docker is not an object".into()))?;
                for (scope, list) in scopes {
                    let what = format!("transports.docker[{scope:?}]");
                    docker.insert(scope.clone(), requirements(list, &what, path, base)?);
                }
            }
        }
        Ok(Self { path: path.to_owned(), default, docker })
    }

    /// The scope that applies to `image` (as the policy spells it; `default` when none) and
    /// its requirements.
    pub fn requirements_for(&self, image: &Reference) -> (String, &[Requirement]) {
        for scope in scopes(image) {
            if let Some(list) = self.docker.get(&scope) {
                return (scope, list);
            }
        }
        ("default".into(), &self.default)
    }
}

/// The `transports.docker` scopes of `image`, most specific first: the reference with its tag
/// and with its digest, the repository, each parent namespace, the host, then `*.domain`
/// wildcards of a host name.
pub fn scopes(image: &Reference) -> Vec<String> {
    let name = image.name();
    let mut out = Vec::new();
    if let Some(tag) = image.tag() {
        out.push(format!("{name}:{tag}"));
    }
    if let Some(digest) = image.digest() {
        out.push(format!("{name}@{digest}"));
    }
    let mut namespace = name.as_str();
    loop {
        out.push(namespace.to_owned());
        match namespace.rfind('/') {
            Some(slash) => namespace = &namespace[..slash],
            None => break,
        }
    }
    let host = image.registry();
    if !host.contains(':') && host.parse::<std::net::IpAddr>().is_err() {
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            out.push(format!("*.{rest}"));
        }
    }
    out
}

fn only_keys(object: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(format!("{what}: unknown key {key:?}")),
        None => Ok(()),
    }
}

fn requirements(list: &Value, what: &str, path: &Path, base: &Path) -> Result<Vec<Requirement>, PolicyError> {
    let invalid = |message: String| PolicyError::Invalid { path: path.to_owned(), message };
    let list = list.as_array().ok_or_else(|| invalid(format!("{what} is not a list of requirements")))?;
    if list.is_empty() {
        // containers/image refuses an empty list: it would accept everything by accident.
        return Err(invalid(format!("{what} is empty: say insecureAcceptAnything or reject")));
    }
    list.iter().enumerate().map(|(i, r)| requirement(r, &format!("{what}[{i}]"), path, base)).collect()
}

fn requirement(value: &Value, what: &str, path: &Path, base: &Path) -> Result<Requirement, PolicyError> {
    let invalid = |message: String| PolicyError::Invalid { path: path.to_owned(), message };
    let object = value.as_object().ok_or_else(|| invalid(format!("{what} is not an object")))?;
    let kind = object.get("type").and_then(Value::as_str).ok_or_else(|| invalid(format!("{what} has no type")))?;
    match kind {
        "insecureAcceptAnything" | "reject" => {
            only_keys(object, &["type"], what).map_err(invalid)?;
            Ok(if kind == "reject" { Requirement::Reject } else { Requirement::AcceptAnything })
        }
        "signedBy" => Ok(Requirement::Unsupported(format!(
            "{what} is signedBy (GPG simple signing), which imgctl does not verify: use sigstoreSigned with a key"
        ))),
        "sigstoreSigned" => sigstore(object, what, path, base),
        other => Err(invalid(format!("{what}: unknown requirement type {other:?}"))),
    }
}

fn sigstore(object: &Map<String, Value>, what: &str, path: &Path, base: &Path) -> Result<Requirement, PolicyError> {
    let invalid = |message: String| PolicyError::Invalid { path: path.to_owned(), message };
    only_keys(
        object,
        &[
            "type",
            "keyPath",
            "keyPaths",
            "keyData",
            "keyDatas",
            "fulcio",
            "pki",
            "rekorPublicKeyPath",
            "rekorPublicKeyPaths",
            "rekorPublicKeyData",
            "rekorPublicKeyDatas",
            "signedIdentity",
        ],
        what,
    )
    .map_err(invalid)?;
    for (key, why) in [
        ("fulcio", "keyless (Fulcio certificates)"),
        ("pki", "certificates of a private PKI"),
        ("rekorPublicKeyPath", "a Rekor transparency-log entry"),
        ("rekorPublicKeyPaths", "a Rekor transparency-log entry"),
        ("rekorPublicKeyData", "a Rekor transparency-log entry"),
        ("rekorPublicKeyDatas", "a Rekor transparency-log entry"),
    ] {
        if object.contains_key(key) {
            return Ok(Requirement::Unsupported(format!(
                "{what} asks for {why} ({key}), which imgctl does not check: it verifies signatures offline with public keys (keyPath, keyData)"
            )));
        }
    }
    let strings = |key: &str| -> Result<Vec<String>, PolicyError> {
        match object.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) if !key.ends_with('s') => Ok(vec![s.clone()]),
            Some(Value::Array(list)) if key.ends_with('s') => list
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| invalid(format!("{what}.{key}: not strings"))))
                .collect(),
            Some(_) => Err(invalid(format!("{what}.{key}: wrong type"))),
        }
    };
    let mut keys = Vec::new();
    for file in strings("keyPath")?.into_iter().chain(strings("keyPaths")?) {
        let file = base.join(file);
        let pem = std::fs::read_to_string(&file).map_err(|source| PolicyError::KeyFile {
            path: path.to_owned(),
            key: file.clone(),
            source,
        })?;
        let label = format!("keyPath {}", file.display());
        keys.push(PublicKey::from_pem(&pem, label.clone()).map_err(|source| PolicyError::Key {
            path: path.to_owned(),
            what: label,
            source,
        })?);
    }
    for (i, data) in strings("keyData")?.into_iter().chain(strings("keyDatas")?).enumerate() {
        let label = format!("{what} keyData #{}", i + 1);
        // containers-policy.json gives keyData base64-encoded; a PEM block as is is taken too.
        let pem = if data.contains("-----BEGIN") {
            data
        } else {
            let bytes = STANDARD.decode(data.trim()).map_err(|_| invalid(format!("{label}: not base64")))?;
            String::from_utf8(bytes).map_err(|_| invalid(format!("{label}: not a PEM key")))?
        };
        keys.push(PublicKey::from_pem(&pem, label.clone()).map_err(|source| PolicyError::Key {
            path: path.to_owned(),
            what: label,
            source,
        })?);
    }
    if keys.is_empty() {
        return Err(invalid(format!("{what}: sigstoreSigned needs keyPath, keyPaths, keyData or keyDatas")));
    }
    let identity = match object.get("signedIdentity") {
        None => SignedIdentity::MatchRepoDigestOrExact,
        Some(identity) => signed_identity(identity, what).map_err(invalid)?,
    };
    Ok(Requirement::Signed { keys, identity })
}

fn signed_identity(value: &Value, what: &str) -> Result<SignedIdentity, String> {
    let object = value.as_object().ok_or_else(|| format!("{what}.signedIdentity is not an object"))?;
    let field = |key: &str| {
        object.get(key).and_then(Value::as_str).map(str::to_owned).ok_or(format!("{what}.signedIdentity needs {key}"))
    };
    let kind = object.get("type").and_then(Value::as_str).unwrap_or_default();
    let where_ = format!("{what}.signedIdentity");
    Ok(match kind {
        "matchRepoDigestOrExact" | "matchRepository" | "matchExact" => {
            only_keys(object, &["type"], &where_)?;
            match kind {
                "matchRepository" => SignedIdentity::MatchRepository,
                "matchExact" => SignedIdentity::MatchExact,
                _ => SignedIdentity::MatchRepoDigestOrExact,
            }
        }
        "exactReference" => {
            only_keys(object, &["type", "dockerReference"], &where_)?;
            SignedIdentity::ExactReference(field("dockerReference")?)
        }
        "exactRepository" => {
            only_keys(object, &["type", "dockerRepository"], &where_)?;
            SignedIdentity::ExactRepository(field("dockerRepository")?)
        }
        "remapIdentity" => return Err(format!("{where_}: remapIdentity is not supported by imgctl")),
        other => return Err(format!("{where_}: unknown type {other:?}")),
    })
}

impl SignedIdentity {
    /// Whether a signature claiming `signed` (a docker reference; None when it claims none)
    /// may stand for `image` (pinned by digest). Both sides are compared normalized
    /// (`busybox` is `docker.io/library/busybox`).
    pub fn accepts(&self, signed: Option<&str>, image: &Reference) -> bool {
        let Some(signed) = signed.and_then(|s| s.parse::<Reference>().ok()) else {
            return false;
        };
        let exact = |r: &Reference| (r.name(), r.tag().map(str::to_owned), r.digest().cloned());
        // As containers/image: a signature naming only a repository (what cosign writes) is
        // not exact enough for these two; matchRepository takes it.
        let name_only = signed.tag().is_none() && signed.digest().is_none();
        match self {
            Self::MatchRepoDigestOrExact if name_only => false,
            Self::MatchRepoDigestOrExact => match image.digest() {
                Some(_) => signed.name() == image.name(),
                None => exact(&signed) == exact(image),
            },
            Self::MatchRepository => signed.name() == image.name(),
            Self::MatchExact => !name_only && exact(&signed) == exact(image),
            Self::ExactReference(wanted) => wanted.parse::<Reference>().is_ok_and(|w| exact(&w) == exact(&signed)),
            Self::ExactRepository(wanted) => wanted.parse::<Reference>().is_ok_and(|w| w.name() == signed.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = super::super::tests::PEM;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, Path::new("/etc/containers/policy.json"))
    }

    fn key_data() -> String {
        STANDARD.encode(PEM)
    }

    #[test]
    fn scopes_go_from_the_reference_to_the_host() {
        let image: Reference = "reg.example.com/team/sub/app:1.4".parse().unwrap();
        assert_eq!(
            scopes(&image),
            [
                "reg.example.com/team/sub/app:1.4",
                "reg.example.com/team/sub/app",
                "reg.example.com/team/sub",
                "reg.example.com/team",
                "reg.example.com",
                "*.example.com",
                "*.com"
            ]
        );
        let loopback: Reference = "127.0.0.1:5000/app".parse().unwrap();
        assert_eq!(scopes(&loopback), ["127.0.0.1:5000/app", "127.0.0.1:5000"]);
        let hub: Reference = "busybox".parse().unwrap();
        assert_eq!(scopes(&hub)[0], "docker.io/library/busybox");
    }

    #[test]
    fn the_most_specific_scope_wins() {
        let text = format!(
            r#"{{"default": [{{"type": "reject"}}],
                "transports": {{"docker": {{
                    "reg.example.com": [{{"type": "insecureAcceptAnything"}}],
                    "reg.example.com/prod": [{{"type": "sigstoreSigned", "keyData": "{}"}}],
                    "reg.example.com/prod/legacy": [{{"type": "insecureAcceptAnything"}}]
                }}, "docker-daemon": {{"": [{{"type": "insecureAcceptAnything"}}]}}}}}}"#,
            key_data()
        );
        let policy = parse(&text).unwrap();
        let scope = |image: &str| policy.requirements_for(&image.parse().unwrap()).0;
        assert_eq!(scope("reg.example.com/prod/app:1"), "reg.example.com/prod");
        assert_eq!(
            scope(
                "reg.example.com/prod/legacy@sha256:0000000000000000000000000000000000000000000000000000000000000000"
            ),
            "reg.example.com/prod/legacy"
        );
        assert_eq!(scope("reg.example.com/dev/app"), "reg.example.com");
        assert_eq!(scope("other.example.org/app"), "default");
        let (_, prod) = policy.requirements_for(&"reg.example.com/prod/app".parse().unwrap());
        assert!(
            matches!(&prod[0], Requirement::Signed { keys, identity: SignedIdentity::MatchRepoDigestOrExact } if keys.len() == 1)
        );
    }

    #[test]
    fn what_imgctl_cannot_check_is_refused_by_name() {
        let keyless = r#"{"default": [{"type": "reject"}], "transports": {"docker": {"quay.io": [{"type": "sigstoreSigned", "fulcio": {"caPath": "/x"}, "rekorPublicKeyPath": "/y"}]}}}"#;
        let policy = parse(keyless).unwrap();
        let (_, list) = policy.requirements_for(&"quay.io/app".parse().unwrap());
        assert!(matches!(&list[0], Requirement::Unsupported(m) if m.contains("keyless (Fulcio certificates)")));
        let gpg = r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k.gpg"}]}"#;
        assert!(matches!(&parse(gpg).unwrap().default[0], Requirement::Unsupported(m) if m.contains("signedBy")));
        for (text, needle) in [
            ("{}", "no \"default\""),
            (r#"{"default": []}"#, "empty"),
            (r#"{"default": [{"type": "acceptSome"}]}"#, "unknown requirement type"),
            (r#"{"default": [{"type": "reject", "keyPath": "/k"}]}"#, "unknown key \"keyPath\""),
            (r#"{"default": [{"type": "sigstoreSigned"}]}"#, "needs keyPath"),
            (r#"{"default": [{"type": "sigstoreSigned", "keyData": "bm90IGEga2V5"}]}"#, "PUBLIC KEY"),
            (r#"{"default": [{"type": "insecureAcceptAnything"}], "extra": 1}"#, "unknown key \"extra\""),
            ("[", "not JSON"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
        let remap = format!(
            r#"{{"default": [{{"type": "sigstoreSigned", "keyData": "{}", "signedIdentity": {{"type": "remapIdentity", "prefix": "a", "signedPrefix": "b"}}}}]}}"#,
            key_data()
        );
        assert!(parse(&remap).unwrap_err().to_string().contains("remapIdentity is not supported"));
    }

    #[test]
    fn signed_identities_compare_normalized_references() {
        let pinned: Reference =
            "reg.example.com/app@sha256:1111111111111111111111111111111111111111111111111111111111111111"
                .parse()
                .unwrap();
        let tagged: Reference = "reg.example.com/app:1".parse().unwrap();
        let cases: &[(SignedIdentity, Option<&str>, &Reference, bool)] = &[
            (SignedIdentity::MatchRepoDigestOrExact, Some("reg.example.com/app:1"), &pinned, true),
            (SignedIdentity::MatchRepoDigestOrExact, Some("reg.example.com/app"), &pinned, false),
            (SignedIdentity::MatchRepoDigestOrExact, Some("reg.example.com/other:1"), &pinned, false),
            (SignedIdentity::MatchRepository, Some("reg.example.com/app"), &pinned, true),
            (SignedIdentity::MatchRepoDigestOrExact, Some("reg.example.com/app"), &tagged, false),
            (SignedIdentity::MatchRepoDigestOrExact, Some("reg.example.com/app:1"), &tagged, true),
            (SignedIdentity::MatchRepoDigestOrExact, None, &pinned, false),
            (SignedIdentity::MatchRepository, Some("reg.example.com/app:2"), &tagged, true),
            (SignedIdentity::MatchExact, Some("reg.example.com/app"), &pinned, false),
            (
                SignedIdentity::ExactRepository("reg.example.com/app".into()),
                Some("reg.example.com/app:9"),
                &pinned,
                true,
            ),
            (SignedIdentity::ExactReference("busybox:1".into()), Some("docker.io/library/busybox:1"), &pinned, true),
            (SignedIdentity::MatchRepository, Some("not a reference!"), &pinned, false),
        ];
        for (identity, signed, image, expected) in cases {
            assert_eq!(identity.accepts(*signed, image), *expected, "{identity:?} {signed:?} {image}");
        }
    }
}
