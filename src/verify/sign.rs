//! Signing a digest as `cosign sign --key` does, in either layout [`super::verify`] reads, and
//! pushing the signature through the registry client (its auth, retries and limits).
//!
//! - Classic: the simple-signing payload (sigstore's `payload.Cosign`, byte for byte as Go
//!   marshals it) as a layer of the `sha256-<hex>.sig` manifest, its signature in the
//!   `dev.cosignproject.cosign/signature` annotation. A digest that is signed already keeps its
//!   signatures: the new one is appended as a layer, and a signature by the same key of the same
//!   payload is not added twice (cosign's duplicate detector).
//! - Bundle (cosign v3's default): a sigstore bundle v0.3, a DSSE envelope around an in-toto
//!   statement whose subject is the digest, with the key's hint as verification material,
//!   pushed as an OCI 1.1 referrer of the image and listed in the `sha256-<hex>` fallback index
//!   when the registry has no referrers API.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use super::Layout;
use super::bundle::{BUNDLE_V03, IN_TOTO, pae};
use super::classic::{SIGNATURE_ANNOTATION, SIGNATURE_TYPE, SIMPLE_SIGNING, signature_tag};
use super::keyfile::{KeyFileError, SigningKey};
use crate::digest::Digest;
use crate::manifest::{Descriptor, OCI_INDEX, OCI_MANIFEST};
use crate::reference::{DOCKER_HUB, Reference};
use crate::referrers::fallback_tag;
use crate::registry::{Manifest, RegistryClient, RegistryError};

/// cosign's predicate type for an image signature in a bundle.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The most classic signatures one manifest may hold: what `verify` reads of it.
pub const MAX_CLASSIC_SIGNATURES: usize = 64;
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// What to sign, and where the signature goes.
#[derive(Clone, Copy, Debug)]
pub struct SignRequest<'a> {
    /// The image's repository (a tag or digest in it is ignored).
    pub image: &'a Reference,
    /// The digest signed.
    pub digest: &'a Digest,
    /// The layout written.
    pub layout: Layout,
    /// Classic only: the repository holding the `.sig` tag instead of the image's (cosign's
    /// `COSIGN_REPOSITORY`).
    pub signature_repository: Option<&'a Reference>,
}

/// Whether a signature was added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignOutcome {
    /// Written.
    Added,
    /// The key had signed this payload already: nothing was written.
    AlreadySigned,
}

/// A signature written (or found already there).
#[derive(Clone, Debug, Serialize)]
pub struct Signed {
    /// The layout.
    pub layout: Layout,
    /// The image's repository (`registry/repository`).
    pub image: String,
    /// The digest signed.
    pub digest: Digest,
    /// Where it is: `repo:sha256-<hex>.sig`, or the referrer `repo@sha256:...`.
    pub signature: String,
    /// The digest of the signature manifest (classic) or of the referrer (bundle).
    pub manifest_digest: Digest,
    /// sha256 of the signing key's SubjectPublicKeyInfo (what `verify` reports).
    pub key_fingerprint: Digest,
    /// Added, or already signed by this key.
    pub outcome: SignOutcome,
    /// Classic: how many signatures the `.sig` manifest holds now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signatures: Option<usize>,
    /// Bundle: the fallback tag listing the referrer, when the registry has no referrers API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_tag: Option<String>,
}

/// Signing failed; nothing that was there before is changed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The digest is not in the image's repository.
    #[error("{image}@{digest} is not in the registry: nothing to sign")]
    ImageNotFound {
        /// The repository.
        image: String,
        /// The digest.
        digest: Digest,
    },
    /// Where the signature goes holds something else, which is left alone.
    #[error("{location} is not a signature manifest imgctl can add to ({reason}); it was left alone")]
    NotASignatureManifest {
        /// The tag.
        location: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `.sig` manifest is full.
    #[error(
        "{location} holds {count} signatures already, the most imgctl verify reads of one manifest: not adding another"
    )]
    TooManySignatures {
        /// The tag.
        location: String,
        /// The signatures it holds.
        count: usize,
    },
    /// The key failed to sign.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The registry failed.
    #[error("writing the signature of {image}@{digest}: {source}")]
    Registry {
        /// The repository.
        image: String,
        /// The digest.
        digest: Digest,
        /// Why.
        #[source]
        source: RegistryError,
    },
}

/// Signs `request.digest` with `key` and pushes the signature.
pub async fn sign(client: &RegistryClient, key: &SigningKey, request: SignRequest<'_>) -> Result<Signed, SignError> {
    let image = repository_of(request.image);
    let digest = request.digest;
    let registry = |source| SignError::Registry { image: image.name(), digest: digest.clone(), source };
    let subject = match client.get_manifest(&image.with_digest(digest.clone())).await {
        Ok(subject) => subject,
        Err(RegistryError::NotFound { .. }) => {
            return Err(SignError::ImageNotFound { image: image.name(), digest: digest.clone() });
        }
        Err(e) => return Err(registry(e)),
    };
    match request.layout {
        Layout::Classic => {
            let repository = request.signature_repository.map(repository_of).unwrap_or_else(|| image.clone());
            classic(client, key, &image, &repository, digest).await
        }
        Layout::Bundle => bundle(client, key, &image, digest, &subject).await,
    }
}

/// The repository alone: no tag, no digest.
fn repository_of(reference: &Reference) -> Reference {
    match reference.name().parse::<Reference>() {
        Ok(repository) => repository,
        Err(_) => reference.clone(),
    }
}

/// The identity cosign claims by default: go-containerregistry's repository name, which spells
/// Docker Hub `index.docker.io`.
pub fn claimed_identity(image: &Reference) -> String {
    if image.registry() == DOCKER_HUB { format!("index.docker.io/{}", image.repository()) } else { image.name() }
}

/// sigstore's `payload.Cosign{Image, Annotations: nil}` as Go's encoding/json writes it.
pub fn simple_signing_payload(identity: &str, digest: &Digest) -> Vec<u8> {
    let payload = json!({
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest.as_str()},
            "type": SIGNATURE_TYPE,
        },
        "optional": null,
    });
    serde_json::to_vec(&payload).unwrap_or_default()
}

async fn classic(
    client: &RegistryClient,
    key: &SigningKey,
    image: &Reference,
    repository: &Reference,
    digest: &Digest,
) -> Result<Signed, SignError> {
    let registry = |source| SignError::Registry { image: image.name(), digest: digest.clone(), source };
    let tag = signature_tag(digest);
    let location = format!("{}:{tag}", repository.name());
    let at_tag = repository
        .with_tag(&tag)
        .map_err(|e| registry(RegistryError::Protocol { url: repository.name(), message: e.to_string() }))?;
    let payload = simple_signing_payload(&claimed_identity(image), digest);
    let payload_digest = Digest::sha256_of(&payload);
    let not_signature = |reason| SignError::NotASignatureManifest { location: location.clone(), reason };
    let (mut layers, annotations) = match client.get_manifest(&at_tag).await {
        Ok(existing) => {
            let document: Value = serde_json::from_slice(&existing.bytes).map_err(|_| not_signature("not JSON"))?;
            let Some(layers) = document["layers"].as_array() else {
                return Err(not_signature("it has no layers"));
            };
            (layers.clone(), document.get("annotations").cloned())
        }
        Err(RegistryError::NotFound { .. }) => (Vec::new(), None),
        Err(e) => return Err(registry(e)),
    };
    let signed = |outcome, manifest_digest, count| Signed {
        layout: Layout::Classic,
        image: image.name(),
        digest: digest.clone(),
        signature: location.clone(),
        manifest_digest,
        key_fingerprint: key.fingerprint().clone(),
        outcome,
        signatures: Some(count),
        fallback_tag: None,
    };
    let signatures: Vec<&Value> = layers.iter().filter(|l| l["mediaType"] == SIMPLE_SIGNING).collect();
    // cosign's duplicate detector: this key's signature of these very bytes is there already.
    let already = signatures.iter().any(|layer| {
        layer["digest"].as_str() == Some(payload_digest.as_str())
            && layer["annotations"][SIGNATURE_ANNOTATION]
                .as_str()
                .and_then(|s| STANDARD.decode(s.trim()).ok())
                .is_some_and(|s| key.public_key().verifies(&payload, &s))
    });
    if already {
        let current = client.head_manifest(&at_tag).await.map_err(registry)?.ok_or_else(|| {
            registry(RegistryError::NotFound { what: format!("{location}, which was there a moment ago") })
        })?;
        return Ok(signed(SignOutcome::AlreadySigned, current, signatures.len()));
    }
    if signatures.len() >= MAX_CLASSIC_SIGNATURES {
        return Err(SignError::TooManySignatures { location, count: signatures.len() });
    }
    let signature = STANDARD.encode(key.sign(&payload)?);
    let count = signatures.len() + 1;
    let payload_blob = upload(client, repository, SIMPLE_SIGNING, payload).await.map_err(registry)?;
    layers.push(json!({
        "mediaType": SIMPLE_SIGNING,
        "size": payload_blob.size,
        "digest": payload_blob.digest.as_str(),
        "annotations": {SIGNATURE_ANNOTATION: signature},
    }));
    // go-containerregistry's config of an image made by appending layers to an empty one.
    let diff_ids: Vec<&str> = layers.iter().filter_map(|l| l["digest"].as_str()).collect();
    let config = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": diff_ids.iter().map(|_| json!({"created": "0001-01-01T00:00:00Z"})).collect::<Vec<_>>(),
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    });
    let config = serde_json::to_vec(&config).unwrap_or_default();
    let config_blob = upload(client, repository, OCI_CONFIG, config).await.map_err(registry)?;
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config_blob.size, "digest": config_blob.digest.as_str()},
        "layers": layers,
    });
    if let Some(annotations) = annotations {
        manifest["annotations"] = annotations;
    }
    let manifest = to_manifest(&manifest, OCI_MANIFEST);
    client.put_manifest(repository, &tag, &manifest).await.map_err(registry)?;
    Ok(signed(SignOutcome::Added, manifest.digest, count))
}

/// The in-toto statement `cosign sign` puts in a bundle: the digest as the one subject.
pub fn statement(digest: &Digest) -> Vec<u8> {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {digest.algorithm(): digest.hex()}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    });
    serde_json::to_vec(&statement).unwrap_or_default()
}

/// A sigstore bundle v0.3 of `statement` signed with `key`: DSSE over the PAE, the key named by
/// its hint (base64 of sha256 of its SubjectPublicKeyInfo, as cosign names it). No
/// transparency-log entry: imgctl signs offline.
pub fn signed_bundle(key: &SigningKey, statement: &[u8]) -> Result<Vec<u8>, KeyFileError> {
    let signature = key.sign(&pae(IN_TOTO, statement))?;
    let hint = STANDARD.encode(<sha2::Sha256 as sha2::Digest>::digest(key.spki_der()));
    let bundle = json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": hint}},
        "dsseEnvelope": {
            "payload": STANDARD.encode(statement),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": STANDARD.encode(signature)}],
        },
    });
    Ok(serde_json::to_vec(&bundle).unwrap_or_default())
}

async fn bundle(
    client: &RegistryClient,
    key: &SigningKey,
    image: &Reference,
    digest: &Digest,
    subject: &Manifest,
) -> Result<Signed, SignError> {
    let registry = |source| SignError::Registry { image: image.name(), digest: digest.clone(), source };
    let bundle = signed_bundle(key, &statement(digest))?;
    let bundle_blob = upload(client, image, BUNDLE_V03, bundle).await.map_err(registry)?;
    let empty = upload(client, image, OCI_EMPTY, b"{}".to_vec()).await.map_err(registry)?;
    // As cosign's WriteReferrer writes it (artifactType in the config descriptor too); Go
    // writes map keys sorted.
    let annotations = json!({
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE,
    });
    let referrer = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_EMPTY, "size": empty.size, "digest": empty.digest.as_str(), "artifactType": BUNDLE_V03},
        "layers": [{"mediaType": BUNDLE_V03, "size": bundle_blob.size, "digest": bundle_blob.digest.as_str()}],
        "subject": {"mediaType": subject.media_type, "size": subject.bytes.len(), "digest": digest.as_str()},
        "annotations": annotations,
        "artifactType": BUNDLE_V03,
    });
    let referrer = to_manifest(&referrer, OCI_MANIFEST);
    client.put_manifest(image, referrer.digest.as_str(), &referrer).await.map_err(registry)?;
    // A registry with the referrers API indexes the subject itself; distribution 2.8 has none,
    // and readers look at the fallback index instead.
    let fallback = match client.referrers(image, digest).await.map_err(registry)? {
        Some(_) => None,
        None => {
            let tag = fallback_tag(digest);
            let entry = json!({
                "mediaType": OCI_MANIFEST,
                "size": referrer.bytes.len(),
                "digest": referrer.digest.as_str(),
                "annotations": annotations,
                "artifactType": BUNDLE_V03,
            });
            add_to_fallback_index(client, image, &tag, &referrer.digest, entry).await?;
            Some(tag)
        }
    };
    Ok(Signed {
        layout: Layout::Bundle,
        image: image.name(),
        digest: digest.clone(),
        signature: format!("{}@{}", image.name(), referrer.digest),
        manifest_digest: referrer.digest,
        key_fingerprint: key.fingerprint().clone(),
        outcome: SignOutcome::Added,
        signatures: None,
        fallback_tag: fallback,
    })
}

/// Adds `entry` to the index at `tag`, keeping every referrer it lists (a new index when
/// there is none).
async fn add_to_fallback_index(
    client: &RegistryClient,
    image: &Reference,
    tag: &str,
    referrer: &Digest,
    entry: Value,
) -> Result<(), SignError> {
    let registry = |source| SignError::Registry { image: image.name(), digest: referrer.clone(), source };
    let location = format!("{}:{tag}", image.name());
    let at_tag = image
        .with_tag(tag)
        .map_err(|e| registry(RegistryError::Protocol { url: image.name(), message: e.to_string() }))?;
    let mut index = match client.get_manifest(&at_tag).await {
        Ok(existing) => serde_json::from_slice::<Value>(&existing.bytes)
            .ok()
            .filter(|index| index["manifests"].is_array())
            .ok_or(SignError::NotASignatureManifest { location, reason: "not an index of referrers" })?,
        Err(RegistryError::NotFound { .. }) => json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
        Err(e) => return Err(registry(e)),
    };
    if let Some(entries) = index["manifests"].as_array_mut() {
        if entries.iter().any(|e| e["digest"].as_str() == Some(referrer.as_str())) {
            return Ok(());
        }
        entries.push(entry);
    }
    let media_type = index["mediaType"].as_str().unwrap_or(OCI_INDEX).to_owned();
    client.put_manifest(image, tag, &to_manifest(&index, &media_type)).await.map_err(registry)
}

/// Uploads `bytes` as a blob of `repository` (skipped when it is there).
async fn upload(
    client: &RegistryClient,
    repository: &Reference,
    media_type: &str,
    bytes: Vec<u8>,
) -> Result<Descriptor, RegistryError> {
    let blob = Descriptor {
        media_type: media_type.to_owned(),
        digest: Digest::sha256_of(&bytes),
        size: bytes.len() as u64,
        platform: None,
    };
    let body = Box::pin(futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]));
    client.upload_blob(repository, &blob, body).await?;
    Ok(blob)
}

/// Compact JSON (as Go writes it) and its digest.
fn to_manifest(document: &Value, media_type: &str) -> Manifest {
    let bytes = serde_json::to_vec(document).unwrap_or_default();
    Manifest { digest: Digest::sha256_of(&bytes), media_type: media_type.to_owned(), bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_byte_for_byte_what_cosign_marshals() {
        let digest: Digest = "sha256:6105d6cc76af400325e94d588ce511be5bfdbb73b437dc51eca43917d7a43e3d".parse().unwrap();
        // sigstore/sigstore pkg/signature/payload: Critical{Identity, Image, Type}, Optional nil.
        assert_eq!(
            String::from_utf8(simple_signing_payload("r.example/app", &digest)).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"r.example/app"},"image":{"docker-manifest-digest":"sha256:6105d6cc76af400325e94d588ce511be5bfdbb73b437dc51eca43917d7a43e3d"},"type":"cosign container image signature"},"optional":null}"#
        );
        let hub: Reference = "busybox".parse().unwrap();
        assert_eq!(claimed_identity(&hub), "index.docker.io/library/busybox");
        let local: Reference = "127.0.0.1:5000/team/app:1.4".parse().unwrap();
        assert_eq!(claimed_identity(&repository_of(&local)), "127.0.0.1:5000/team/app");
        assert_eq!(repository_of(&local).tag(), None);
    }

    #[test]
    fn what_imgctl_signs_its_own_verifier_accepts() {
        let document = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        let passphrase = crate::credential::Secret::new("pw".into());
        let pem = super::super::keyfile::encrypt(document.as_ref(), &passphrase).unwrap();
        let key = SigningKey::decrypt(&pem, &passphrase, "k").unwrap();
        let trusted = [key.public_key().clone()];
        let digest = Digest::sha256_of(b"image");
        let payload = simple_signing_payload("r.example/app", &digest);
        let signature = STANDARD.encode(key.sign(&payload).unwrap());
        let verified = super::super::classic::check(&payload, &signature, &trusted, &digest).unwrap();
        assert_eq!(verified.identity.as_deref(), Some("r.example/app"));
        let bundle = signed_bundle(&key, &statement(&digest)).unwrap();
        assert!(super::super::bundle::check(&bundle, &trusted, &digest).is_ok());
        assert!(matches!(
            super::super::bundle::check(&bundle, &trusted, &Digest::sha256_of(b"other")),
            Err(super::super::Failure::OtherDigest { .. })
        ));
        let document: Value = serde_json::from_slice(&bundle).unwrap();
        let hint = STANDARD.decode(document["verificationMaterial"]["publicKey"]["hint"].as_str().unwrap()).unwrap();
        assert_eq!(hex(&hint), key.fingerprint().hex());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
