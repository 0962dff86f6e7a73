//! cosign v3's default layout: a sigstore bundle (v0.3, JSON) whose DSSE envelope carries an
//! in-toto statement about the image; the signature is over DSSE's pre-authentication encoding
//! (PAE) of the payload type and payload, never over the payload alone.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::key::PublicKey;
use super::{Failure, Verified};
use crate::digest::Digest;

/// The media type of a sigstore bundle v0.3 (artifact type and layer type of its referrer).
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    dsse_envelope: Option<Envelope>,
    message_signature: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    name: Option<String>,
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE's pre-authentication encoding: `DSSEv1 <len> <type> <len> <body>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Checks one bundle: one of its envelope's signatures verifies with one of `keys`, and the
/// statement it signs names `digest` among its subjects.
pub fn check<'k>(bundle: &[u8], keys: &'k [PublicKey], digest: &Digest) -> Result<Verified<'k>, Failure> {
    let bundle: Bundle =
        serde_json::from_slice(bundle).map_err(|e| Failure::Malformed(format!("not a sigstore bundle: {e}")))?;
    if bundle.media_type != BUNDLE_V03 && bundle.media_type != "application/vnd.dev.sigstore.bundle+json;version=0.3" {
        let shown: String = bundle.media_type.chars().take(80).collect();
        return Err(Failure::Malformed(format!("bundle media type {shown:?}, not {BUNDLE_V03}")));
    }
    let Some(envelope) = bundle.dsse_envelope else {
        return Err(Failure::Malformed(if bundle.message_signature.is_some() {
            "a messageSignature bundle: imgctl verifies image signatures in a DSSE envelope".into()
        } else {
            "no dsseEnvelope".into()
        }));
    };
    let payload =
        STANDARD.decode(&envelope.payload).map_err(|_| Failure::Malformed("the DSSE payload is not base64".into()))?;
    let message = pae(&envelope.payload_type, &payload);
    let key = envelope
        .signatures
        .iter()
        .filter_map(|s| STANDARD.decode(&s.sig).ok())
        .find_map(|sig| keys.iter().find(|k| k.verifies(&message, &sig)))
        .ok_or(Failure::BadSignature)?;
    if envelope.payload_type != IN_TOTO {
        return Err(Failure::Malformed(format!("DSSE payload type {:?}, not {IN_TOTO}", envelope.payload_type)));
    }
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| Failure::Malformed(format!("the signed payload is not an in-toto statement: {e}")))?;
    if !statement.kind.starts_with("https://in-toto.io/Statement/") {
        return Err(Failure::Malformed(format!("statement type {:?}", statement.kind)));
    }
    let subject =
        statement.subject.iter().find(|s| s.digest.get(digest.algorithm()).map(String::as_str) == Some(digest.hex()));
    match subject {
        Some(subject) => Ok(Verified { key, identity: subject.name.clone() }),
        None => Err(Failure::OtherDigest {
            signed: statement
                .subject
                .iter()
                .flat_map(|s| s.digest.iter().map(|(alg, hex)| format!("{alg}:{hex}")))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_dsse_v1() {
        // The example of the DSSE specification (protocol.md).
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn other_shapes_are_named() {
        let key = PublicKey::from_pem(super::super::tests::PEM, "k").unwrap();
        let digest = Digest::sha256_of(b"image");
        let keys = std::slice::from_ref(&key);
        let message = format!(r#"{{"mediaType":"{BUNDLE_V03}","messageSignature":{{}}}}"#);
        assert!(
            matches!(check(message.as_bytes(), keys, &digest), Err(Failure::Malformed(m)) if m.contains("messageSignature"))
        );
        let other =
            r#"{"mediaType":"application/json","dsseEnvelope":{"payload":"","payloadType":"","signatures":[]}}"#;
        assert!(
            matches!(check(other.as_bytes(), keys, &digest), Err(Failure::Malformed(m)) if m.contains("media type"))
        );
        let unsigned = format!(
            r#"{{"mediaType":"{BUNDLE_V03}","dsseEnvelope":{{"payload":"e30=","payloadType":"{IN_TOTO}","signatures":[{{"sig":"MEUCIQ=="}}]}}}}"#
        );
        assert_eq!(check(unsigned.as_bytes(), keys, &digest).unwrap_err(), Failure::BadSignature);
    }
}
