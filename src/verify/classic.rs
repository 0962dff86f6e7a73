//! cosign's classic layout: a simple-signing payload (JSON) and, in the layer's
//! `dev.cosignproject.cosign/signature` annotation, the base64 ECDSA signature over it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::key::PublicKey;
use super::{Failure, Verified};
use crate::digest::Digest;

/// The layer media type of a simple-signing payload.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a container image signature.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The classic tag of `digest`'s signatures: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.hex())
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: Image,
    #[serde(default)]
    identity: Option<Identity>,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    reference: Option<String>,
}

/// Checks one payload and its signature: it must verify with one of `keys` (before anything in
/// the payload is believed), be a container image signature, and name `digest`.
pub fn check<'k>(
    payload: &[u8],
    signature_b64: &str,
    keys: &'k [PublicKey],
    digest: &Digest,
) -> Result<Verified<'k>, Failure> {
    let signature = STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| Failure::Malformed("the signature annotation is not base64".into()))?;
    let key = keys.iter().find(|k| k.verifies(payload, &signature)).ok_or(Failure::BadSignature)?;
    let payload: Payload = serde_json::from_slice(payload)
        .map_err(|e| Failure::Malformed(format!("the signed payload is not a simple-signing document: {e}")))?;
    if payload.critical.kind != SIGNATURE_TYPE {
        return Err(Failure::Malformed(format!(
            "critical.type is {:?}, not {SIGNATURE_TYPE:?}",
            payload.critical.kind
        )));
    }
    if payload.critical.image.digest != digest.as_str() {
        return Err(Failure::OtherDigest { signed: payload.critical.image.digest });
    }
    Ok(Verified { key, identity: payload.critical.identity.and_then(|i| i.reference) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_signatures_are_refused_before_the_payload_is_read() {
        let key = PublicKey::from_pem(super::super::tests::PEM, "k").unwrap();
        let digest = Digest::sha256_of(b"image");
        let p = br#"{"critical":{}}"#.to_vec();
        assert_eq!(
            check(&p, "%%%", std::slice::from_ref(&key), &digest).unwrap_err(),
            Failure::Malformed("the signature annotation is not base64".into())
        );
        assert_eq!(check(&p, "MEUCIQ==", std::slice::from_ref(&key), &digest).unwrap_err(), Failure::BadSignature);
        assert_eq!(check(b"not json", "MEUCIQ==", &[key], &digest).unwrap_err(), Failure::BadSignature);
    }
}
