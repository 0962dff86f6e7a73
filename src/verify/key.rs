//! Public keys as cosign writes them: ECDSA P-256 in a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo,
//! DER). The algorithm and curve OIDs are checked, and the uncompressed point is what ring verifies
//! against.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

use crate::digest::Digest;

/// id-ecPublicKey (1.2.840.10045.2.1).
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 / P-256 (1.2.840.10045.3.1.7).
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// rsaEncryption (1.2.840.113549.1.1.1), named in the refusal.
const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-Ed25519 (1.3.101.112), named in the refusal.
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// A key that signatures are checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// Where it came from (`keyPath /etc/keys/team.pub`, `keyData #1`).
    pub label: String,
    /// sha256 of the SubjectPublicKeyInfo DER: the key's identity in reports.
    pub fingerprint: Digest,
    /// The uncompressed point (0x04 || X || Y).
    point: Vec<u8>,
}

/// Text that is not a key imgctl can verify with.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No `-----BEGIN PUBLIC KEY-----` block.
    #[error("no PEM PUBLIC KEY block (cosign writes public keys as -----BEGIN PUBLIC KEY-----)")]
    NotPem,
    /// The block's body is not base64.
    #[error("the PEM block is not valid base64")]
    Base64,
    /// The DER is not a SubjectPublicKeyInfo.
    #[error("not a SubjectPublicKeyInfo: {0}")]
    Der(&'static str),
    /// Another algorithm than ECDSA.
    #[error("a {0} key: imgctl verifies ECDSA P-256 keys (cosign's default)")]
    Algorithm(&'static str),
    /// An EC key on another curve.
    #[error("an ECDSA key on another curve than P-256")]
    Curve,
    /// The point is not an uncompressed P-256 point.
    #[error("the public point is not an uncompressed P-256 point")]
    Point,
}

impl PublicKey {
    /// Reads the first `PUBLIC KEY` block of `pem`.
    pub fn from_pem(pem: &str, label: impl Into<String>) -> Result<Self, KeyError> {
        let begin = "-----BEGIN PUBLIC KEY-----";
        let end = "-----END PUBLIC KEY-----";
        let start = pem.find(begin).ok_or(KeyError::NotPem)? + begin.len();
        let stop = pem[start..].find(end).ok_or(KeyError::NotPem)? + start;
        let body: String = pem[start..stop].chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD.decode(body).map_err(|_| KeyError::Base64)?;
        Self::from_spki_der(&der, label)
    }

    /// Reads a SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { OID alg, OID curve }, BIT STRING point }.
    pub fn from_spki_der(der: &[u8], label: impl Into<String>) -> Result<Self, KeyError> {
        let (spki, rest) = tlv(der, SEQUENCE)?;
        if !rest.is_empty() {
            return Err(KeyError::Der("bytes after the key"));
        }
        let (algorithm, spki_rest) = tlv(spki, SEQUENCE)?;
        let (oid, params) = tlv(algorithm, OID)?;
        match oid {
            EC_PUBLIC_KEY => {}
            RSA => return Err(KeyError::Algorithm("RSA")),
            ED25519 => return Err(KeyError::Algorithm("Ed25519")),
            _ => return Err(KeyError::Algorithm("non-ECDSA")),
        }
        let (curve, _) = tlv(params, OID).map_err(|_| KeyError::Curve)?;
        if curve != P256 {
            return Err(KeyError::Curve);
        }
        let (bits, after) = tlv(spki_rest, BIT_STRING)?;
        if !after.is_empty() {
            return Err(KeyError::Der("bytes after the public key"));
        }
        // No unused bits, then 0x04 || X || Y.
        let point = match bits {
            [0, point @ ..] if point.len() == 65 && point[0] == 4 => point.to_vec(),
            _ => return Err(KeyError::Point),
        };
        Ok(Self { label: label.into(), fingerprint: Digest::sha256_of(der), point })
    }

    /// Whether `signature` (ASN.1 DER ECDSA) signs SHA-256 of `message` with this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point).verify(message, signature).is_ok()
    }
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;

/// One DER element of type `tag` at the start of `input`: its contents and what follows.
fn tlv(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), KeyError> {
    let (&found, rest) = input.split_first().ok_or(KeyError::Der("truncated"))?;
    if found != tag {
        return Err(KeyError::Der("unexpected element"));
    }
    let (&first, rest) = rest.split_first().ok_or(KeyError::Der("truncated"))?;
    let (len, rest) = match first {
        n if n < 0x80 => (n as usize, rest),
        0x81 => {
            let (&n, rest) = rest.split_first().ok_or(KeyError::Der("truncated"))?;
            (n as usize, rest)
        }
        0x82 if rest.len() >= 2 => ((rest[0] as usize) << 8 | rest[1] as usize, &rest[2..]),
        _ => return Err(KeyError::Der("length")),
    };
    if rest.len() < len {
        return Err(KeyError::Der("truncated"));
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with pyca cryptography (SECP256R1, SubjectPublicKeyInfo PEM).
    const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEmYkUfhaknMU5qKT8RNCiQXh3vnRv
WKZGQPgIOmxAk/jJox/erXZezcr7+2vTmgJmZGX7WVo3TIALloMeqTEaZg==
-----END PUBLIC KEY-----
";

    #[test]
    fn reads_a_p256_key_and_refuses_other_algorithms() {
        let key = PublicKey::from_pem(P256_PEM, "test").unwrap();
        assert_eq!(key.point.len(), 65);
        let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAyRVRC4c56hTSCcKHRjRPz883Er0yndaamTIUU4BKX9U=\n-----END PUBLIC KEY-----\n";
        assert_eq!(PublicKey::from_pem(ed, "ed"), Err(KeyError::Algorithm("Ed25519")));
        assert_eq!(PublicKey::from_pem("hello", "x"), Err(KeyError::NotPem));
        let bad = "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----";
        assert_eq!(PublicKey::from_pem(bad, "x"), Err(KeyError::Base64));
        // Truncated DER, and a P-384 curve OID in an EC key.
        let der = STANDARD.decode(P256_PEM.lines().skip(1).take(2).collect::<String>()).unwrap();
        assert!(matches!(PublicKey::from_spki_der(&der[..40], "x"), Err(KeyError::Der(_))));
        let mut p384 = der.clone();
        p384[22] = 0x22; // the curve OID's last byte: no longer prime256v1
        assert_eq!(PublicKey::from_spki_der(&p384, "x"), Err(KeyError::Curve));
    }
}
