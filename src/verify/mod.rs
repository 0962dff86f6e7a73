//! Signature verification: whether containers-policy.json accepts an image pinned by digest,
//! checking cosign signatures with public keys, offline.
//!
//! Two layouts are read, as cosign writes them: the classic one (the `sha256-<hex>.sig` tag, a
//! manifest whose layers are simple-signing payloads with the signature in an annotation, see
//! [`classic`]) and the sigstore bundle v0.3 attached as an OCI 1.1 referrer (a DSSE envelope
//! around an in-toto statement, see [`bundle`]). No transparency log (Rekor) or certificate
//! (Fulcio) is consulted; a policy asking for them is refused by name ([`policy`]).
//!
//! [`verify`] is the one entry point: the gates of `imgctl verify`, `promote` and `deploy` call
//! it with the digest they are about to use, so what is verified is what is copied or run.
//!
//! The other way round, [`keyfile`] reads and writes cosign's encrypted key files and [`sign`]
//! writes signatures in both layouts (`imgctl keygen`, `imgctl sign`, `promote --sign-key`).

pub mod bundle;
pub mod classic;
mod fetch;
pub mod key;
pub mod keyfile;
pub mod policy;
pub mod sign;

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

pub use key::{KeyError, PublicKey};
pub use policy::{Policy, PolicyError, PolicySource, Requirement, SignedIdentity};

use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{RegistryClient, RegistryError};

/// Where a signature was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// The `sha256-<hex>.sig` tag with simple-signing layers.
    Classic,
    /// A sigstore bundle attached as a referrer.
    Bundle,
}

impl Layout {
    /// `classic` or `bundle`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Bundle => "bundle",
        }
    }
}

/// Why one signature does not count.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No trusted key verifies it.
    #[error(
        "does not verify with the trusted key(s): signed with another key, or its payload was changed after signing"
    )]
    BadSignature,
    /// It verifies, but signs another digest.
    #[error("is a valid signature for another digest ({signed})")]
    OtherDigest {
        /// The digest(s) it signs.
        signed: String,
    },
    /// The registry served other bytes than the signature manifest names.
    #[error("tampered payload: {0}")]
    Tampered(String),
    /// Not a signature in a format imgctl reads.
    #[error("is not a signature imgctl can read: {0}")]
    Malformed(String),
    /// It verifies, but claims another identity than `signedIdentity` allows.
    #[error("is signed for {}, which signedIdentity {rule} does not accept for this image{hint}", signed.as_deref().unwrap_or("no identity"))]
    Identity {
        /// The docker reference the signature claims.
        signed: Option<String>,
        /// The rule's name.
        rule: &'static str,
        /// What to do, when imgctl knows.
        hint: &'static str,
    },
}

/// One signature as found, before it is checked.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    layout: Layout,
    /// Where: `repo:sha256-<hex>.sig layer 2 (sha256:...)`, `referrer sha256:...`.
    location: String,
    content: Result<Content, Failure>,
}

#[derive(Clone, Debug)]
enum Content {
    Classic { payload: Vec<u8>, signature: String },
    Bundle(Vec<u8>),
}

/// A signature that verified, and with which key.
#[derive(Debug)]
pub struct Verified<'k> {
    /// The key that verifies it.
    pub key: &'k PublicKey,
    /// The identity it claims (classic: `critical.identity.docker-reference`).
    pub identity: Option<String>,
}

/// How the gate is set up.
#[derive(Clone, Debug)]
pub struct Gate {
    /// The policy.
    pub policy: Policy,
    /// Where classic signatures are looked for instead of the image's repository (as cosign's
    /// `COSIGN_REPOSITORY`).
    pub signature_repository: Option<Reference>,
}

/// What accepted an image.
#[derive(Clone, Debug, Serialize)]
pub struct Accepted {
    /// The image (`registry/repository`).
    pub image: String,
    /// The digest verified.
    pub digest: Digest,
    /// The policy file.
    pub policy: PathBuf,
    /// The scope that applied (`default` or a `transports.docker` key).
    pub scope: String,
    /// One entry per requirement of the scope.
    pub accepted_by: Vec<AcceptedBy>,
}

/// One requirement met.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "requirement", rename_all = "camelCase")]
pub enum AcceptedBy {
    /// `insecureAcceptAnything`.
    InsecureAcceptAnything,
    /// `sigstoreSigned`, by this signature and key.
    #[serde(rename_all = "snake_case")]
    SigstoreSigned {
        /// The layout it was found in.
        layout: Layout,
        /// Where it was found.
        signature: String,
        /// The key (`keyPath ...`, `keyData #1`).
        key: String,
        /// sha256 of the key's SubjectPublicKeyInfo.
        key_fingerprint: Digest,
    },
}

/// Why the policy refuses an image.
#[derive(Clone, Debug)]
pub enum Reason {
    /// The scope says `reject`.
    PolicyRejects,
    /// No signature at all where cosign puts them.
    NoSignature {
        /// Where imgctl looked.
        looked: Vec<String>,
    },
    /// Signatures, none of which is accepted.
    NoneAccepted(Vec<(Layout, String, Failure)>),
}

/// The policy refuses an image.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// The image (`registry/repository`).
    pub image: String,
    /// The digest.
    pub digest: Digest,
    /// The policy file.
    pub policy: PathBuf,
    /// The scope that applied.
    pub scope: String,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} is refused by {} (scope {:?}): ", self.image, self.digest, self.policy.display(), self.scope)?;
        match &self.reason {
            Reason::PolicyRejects => write!(f, "the policy says reject"),
            Reason::NoSignature { looked } => write!(f, "no signature (looked in {})", looked.join(" and ")),
            Reason::NoneAccepted(failures) => {
                write!(f, "none of its {} signature(s) is accepted: ", failures.len())?;
                for (i, (_, location, failure)) in failures.iter().enumerate() {
                    write!(f, "{}{location} {failure}", if i > 0 { "; " } else { "" })?;
                }
                Ok(())
            }
        }
    }
}

impl Rejected {
    /// `policy-rejects`, `no-signature` or `none-accepted`, for JSON reports.
    pub fn kind(&self) -> &'static str {
        match self.reason {
            Reason::PolicyRejects => "policy-rejects",
            Reason::NoSignature { .. } => "no-signature",
            Reason::NoneAccepted(_) => "none-accepted",
        }
    }
}

/// Verification did not accept the image.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The policy refuses it.
    #[error("{0}")]
    Rejected(Box<Rejected>),
    /// The scope that applies asks for something imgctl cannot check.
    #[error("{image}: the policy {} (scope {scope:?}): {what}", policy.display())]
    Unsupported {
        /// The image.
        image: String,
        /// The policy file.
        policy: PathBuf,
        /// The scope.
        scope: String,
        /// What it asks.
        what: String,
    },
    /// Reading signatures failed.
    #[error("reading the signatures of {image}: {source}")]
    Registry {
        /// The image.
        image: String,
        /// Why.
        #[source]
        source: RegistryError,
    },
}

/// Whether `gate`'s policy accepts `image` (its repository; a tag is shown, never used) at
/// `digest`: every requirement of the scope that applies must accept, a `sigstoreSigned` one
/// through at least one signature that verifies with one of its keys, names `digest`, and (in
/// the classic layout) claims an identity its `signedIdentity` allows.
pub async fn verify(
    client: &RegistryClient,
    gate: &Gate,
    image: &Reference,
    digest: &Digest,
) -> Result<Accepted, VerifyError> {
    let shown = image.with_digest(digest.clone());
    let pinned = image.with_digest(digest.clone());
    let pinned = match pinned.tag() {
        Some(_) => format!("{}@{digest}", image.name()).parse::<Reference>().unwrap_or(pinned),
        None => pinned,
    };
    let (scope, requirements) = gate.policy.requirements_for(&shown);
    let rejected = |reason| {
        VerifyError::Rejected(Box::new(Rejected {
            image: image.name(),
            digest: digest.clone(),
            policy: gate.policy.path.clone(),
            scope: scope.clone(),
            reason,
        }))
    };
    for requirement in requirements {
        if let Requirement::Unsupported(what) = requirement {
            return Err(VerifyError::Unsupported {
                image: image.name(),
                policy: gate.policy.path.clone(),
                scope: scope.clone(),
                what: what.clone(),
            });
        }
    }
    if requirements.contains(&Requirement::Reject) {
        return Err(rejected(Reason::PolicyRejects));
    }
    let mut signatures = fetch::Signatures::new(client, image, gate.signature_repository.as_ref(), digest);
    let mut accepted_by = Vec::new();
    for requirement in requirements {
        let Requirement::Signed { keys, identity } = requirement else {
            accepted_by.push(AcceptedBy::InsecureAcceptAnything);
            continue;
        };
        let mut failures = Vec::new();
        let mut accepted = None;
        // The classic layout first: when it accepts, the referrers are never read.
        for layout in [Layout::Classic, Layout::Bundle] {
            let found =
                signatures.of(layout).await.map_err(|source| VerifyError::Registry { image: image.name(), source })?;
            for signature in found {
                match check(signature, keys, identity, &pinned, digest) {
                    Ok(key) => {
                        accepted = Some(AcceptedBy::SigstoreSigned {
                            layout: signature.layout,
                            signature: signature.location.clone(),
                            key: key.label.clone(),
                            key_fingerprint: key.fingerprint.clone(),
                        });
                        break;
                    }
                    Err(failure) => failures.push((signature.layout, signature.location.clone(), failure)),
                }
            }
            if accepted.is_some() {
                break;
            }
        }
        match accepted {
            Some(by) => accepted_by.push(by),
            None if failures.is_empty() => {
                return Err(rejected(Reason::NoSignature { looked: signatures.looked() }));
            }
            None => return Err(rejected(Reason::NoneAccepted(failures))),
        }
    }
    Ok(Accepted { image: image.name(), digest: digest.clone(), policy: gate.policy.path.clone(), scope, accepted_by })
}

/// One signature against one `sigstoreSigned` requirement.
fn check<'k>(
    found: &Found,
    keys: &'k [PublicKey],
    identity: &SignedIdentity,
    pinned: &Reference,
    digest: &Digest,
) -> Result<&'k PublicKey, Failure> {
    match &found.content {
        Err(failure) => Err(failure.clone()),
        Ok(Content::Classic { payload, signature }) => {
            let verified = classic::check(payload, signature, keys, digest)?;
            if !identity.accepts(verified.identity.as_deref(), pinned) {
                let repository_only = verified
                    .identity
                    .as_deref()
                    .and_then(|s| s.parse::<Reference>().ok())
                    .is_some_and(|r| r.tag().is_none() && r.digest().is_none() && r.name() == pinned.name());
                let hint = if repository_only && *identity == SignedIdentity::MatchRepoDigestOrExact {
                    " (cosign signs the repository alone: use signedIdentity matchRepository)"
                } else {
                    ""
                };
                return Err(Failure::Identity { signed: verified.identity, rule: identity.name(), hint });
            }
            Ok(verified.key)
        }
        // An in-toto statement names its subject by digest; the identity rules speak of the
        // classic payload's docker-reference, which a bundle does not carry.
        Ok(Content::Bundle(bytes)) => bundle::check(bytes, keys, digest).map(|v| v.key),
    }
}

impl SignedIdentity {
    /// The rule's name in containers-policy.json.
    pub fn name(&self) -> &'static str {
        match self {
            Self::MatchRepoDigestOrExact => "matchRepoDigestOrExact",
            Self::MatchRepository => "matchRepository",
            Self::MatchExact => "matchExact",
            Self::ExactReference(_) => "exactReference",
            Self::ExactRepository(_) => "exactRepository",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Made with pyca cryptography from cosign's formats: a key, a simple-signing payload for
    // sha256("image") with its signature, and a DSSE bundle for the same digest.
    const SIGNER_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEpB9N/sQqwxcBZU+qYkUqWYUjPswN\n9m/PUQZERd8z7qZTt+p4oYIqTTHGoOukQu94mx2Ci9lkuwGnVTAol5yGoQ==\n-----END PUBLIC KEY-----\n";
    const PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"r.example/app"},"image":{"docker-manifest-digest":"sha256:6105d6cc76af400325e94d588ce511be5bfdbb73b437dc51eca43917d7a43e3d"},"type":"cosign container image signature"},"optional":null}"#;
    const SIGNATURE: &str =
        "MEUCIQCvw7GE0Y0pBjtFX7uBK/HnY8j1e3l7lSGOyv9Io9wWswIgOSkw1oCtvend7lKLtvQgY6HEopXkBgYBN7vciWoFw9U=";
    const BUNDLE: &str = r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJzdWJqZWN0IjpbeyJuYW1lIjoici5leGFtcGxlL2FwcCIsImRpZ2VzdCI6eyJzaGEyNTYiOiI2MTA1ZDZjYzc2YWY0MDAzMjVlOTRkNTg4Y2U1MTFiZTViZmRiYjczYjQzN2RjNTFlY2E0MzkxN2Q3YTQzZTNkIn19XSwicHJlZGljYXRlVHlwZSI6Imh0dHBzOi8vc2lnc3RvcmUuZGV2L2Nvc2lnbi9zaWduL3YxIiwicHJlZGljYXRlIjp7fX0=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"MEUCIDc4ptU5K1ehHbtiJyB+VJ3e9fCEgiFRgxr8q4ffWAycAiEAsrAyAYh+WVMhqh0VSLpKTnncAo+Bg+kv1aVOPouIRzA="}]}}"#;

    fn found(content: Content) -> Found {
        Found { layout: Layout::Classic, location: "here".into(), content: Ok(content) }
    }

    #[test]
    fn signatures_of_an_independent_signer_verify_and_bind_the_digest_and_identity() {
        let signer = PublicKey::from_pem(SIGNER_PEM, "signer").unwrap();
        let stranger = PublicKey::from_pem(PEM, "stranger").unwrap();
        let digest = Digest::sha256_of(b"image");
        let other = Digest::sha256_of(b"another image");
        let pinned: Reference = format!("r.example/app@{digest}").parse().unwrap();
        let classic = found(Content::Classic { payload: PAYLOAD.into(), signature: SIGNATURE.into() });
        let bundle = found(Content::Bundle(BUNDLE.into()));
        let keys = [stranger.clone(), signer.clone()];
        let repository = SignedIdentity::MatchRepository;
        for signature in [&classic, &bundle] {
            // One of several keys verifies.
            assert_eq!(check(signature, &keys, &repository, &pinned, &digest).unwrap().label, "signer");
            assert_eq!(
                check(signature, std::slice::from_ref(&stranger), &repository, &pinned, &digest),
                Err(Failure::BadSignature)
            );
            assert!(
                matches!(check(signature, &keys, &repository, &pinned, &other), Err(Failure::OtherDigest { signed }) if signed.contains(digest.hex()))
            );
        }
        // A changed byte anywhere in what was signed breaks it.
        let edited =
            found(Content::Classic { payload: PAYLOAD.replace("null", "{}").into(), signature: SIGNATURE.into() });
        assert_eq!(check(&edited, &keys, &repository, &pinned, &digest), Err(Failure::BadSignature));
        let edited = found(Content::Bundle(
            BUNDLE
                .replace("\"payloadType\":\"application/vnd.in-toto+json\"", "\"payloadType\":\"application/json\"")
                .into(),
        ));
        assert_eq!(
            check(&edited, &keys, &repository, &pinned, &digest),
            Err(Failure::BadSignature),
            "PAE covers the type"
        );
        // The classic identity is r.example/app alone.
        let elsewhere: Reference = format!("r.example/other@{digest}").parse().unwrap();
        assert!(matches!(
            check(&classic, &keys, &repository, &elsewhere, &digest),
            Err(Failure::Identity { hint: "", .. })
        ));
        let default = SignedIdentity::MatchRepoDigestOrExact;
        let refused = check(&classic, &keys, &default, &pinned, &digest).unwrap_err();
        assert!(refused.to_string().contains("use signedIdentity matchRepository"), "{refused}");
    }

    /// A P-256 public key (pyca cryptography, SubjectPublicKeyInfo PEM) for parsing tests.
    pub const PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEmYkUfhaknMU5qKT8RNCiQXh3vnRv
WKZGQPgIOmxAk/jJox/erXZezcr7+2vTmgJmZGX7WVo3TIALloMeqTEaZg==
-----END PUBLIC KEY-----
";
}
