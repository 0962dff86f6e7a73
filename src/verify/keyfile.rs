//! cosign's key files, as `cosign generate-key-pair` writes and `cosign sign --key` reads them.
//!
//! The private key is a PEM block `ENCRYPTED SIGSTORE PRIVATE KEY` (older cosign wrote
//! `ENCRYPTED COSIGN PRIVATE KEY`; both are read) whose body is the JSON of
//! go-securesystemslib's `encrypted` package: the passphrase through scrypt (N, r, p and a
//! 32-byte salt) gives a 32-byte key that opens a NaCl secretbox (XSalsa20Poly1305, 24-byte
//! nonce, the tag before the ciphertext) holding the PKCS#8 DER of an ECDSA P-256 key. The
//! public key is a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::key::PublicKey;
use crate::credential::Secret;
use crate::digest::Digest;

/// The PEM label cosign writes today.
pub const SIGSTORE_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The PEM label of keys written by cosign before 2.0, still read by it.
pub const COSIGN_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// scrypt's parameter sets go-securesystemslib decrypts (legacy, standard, OWASP), and no
/// other: a key file cannot make imgctl spend unbounded memory or time.
const ACCEPTED_SCRYPT: [ScryptParams; 3] = [
    ScryptParams { n: 32768, r: 8, p: 1 },
    ScryptParams { n: 65536, r: 8, p: 1 },
    ScryptParams { n: 131072, r: 8, p: 1 },
];
/// What `cosign generate-key-pair` uses today (go-securesystemslib's `Standard`; cosign before
/// 2.0 wrote N=32768, which is read too).
const WRITTEN_SCRYPT: ScryptParams = ScryptParams { n: 65536, r: 8, p: 1 };
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
/// The largest key file read: cosign's are under 1 KiB.
pub const MAX_KEY_FILE: usize = 64 * 1024;

/// SubjectPublicKeyInfo of a P-256 key, up to the point: SEQUENCE { SEQUENCE { id-ecPublicKey,
/// prime256v1 }, BIT STRING (0 unused bits) ...
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A key file that cannot be used to sign.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Not a PEM block of cosign's encrypted private key.
    #[error(
        "not a cosign private key: no -----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY----- (or ENCRYPTED COSIGN PRIVATE KEY) block{found}"
    )]
    NotCosignKey {
        /// The label of the block found instead, said when there is one.
        found: String,
    },
    /// The block or its JSON is damaged.
    #[error("the encrypted key is damaged: {0}")]
    Damaged(&'static str),
    /// A KDF or cipher go-securesystemslib does not use, or scrypt parameters it refuses.
    #[error("the encrypted key uses {0}, which cosign does not write")]
    Unsupported(String),
    /// The secretbox does not open: another passphrase, or the file was changed.
    #[error("wrong passphrase: it does not decrypt the key (or the key file was changed)")]
    WrongPassphrase,
    /// Decrypted, but not an ECDSA P-256 key.
    #[error("the key is {0}: imgctl signs with ECDSA P-256 keys (cosign's default)")]
    Algorithm(&'static str),
    /// An empty passphrase for a new key.
    #[error("the passphrase is empty: a key file protected by nothing is a plaintext key; give a passphrase")]
    EmptyPassphrase,
    /// Reading a key file failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file is already there.
    #[error("{} already exists: imgctl keygen never overwrites a key (remove it or choose another --output-key-prefix)", .0.display())]
    Exists(PathBuf),
    /// Writing a key file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The system's random source or the signer failed.
    #[error("the system's cryptography failed: {0}")]
    Crypto(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

/// go-securesystemslib's `encrypted.data`, field for field (Go writes `[]byte` as base64).
#[derive(Serialize, Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// An ECDSA P-256 private key, decrypted, and its public key.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: PublicKey,
    spki: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, private part REDACTED)", self.public.fingerprint)
    }
}

impl SigningKey {
    /// Reads PKCS#8 DER (as Go's `x509.MarshalPKCS8PrivateKey` writes it: the public key inside).
    fn from_pkcs8(der: &Zeroizing<Vec<u8>>, label: &str) -> Result<Self, KeyFileError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der, &SystemRandom::new())
            .map_err(|_| KeyFileError::Algorithm(algorithm_of(der)))?;
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let public = PublicKey::from_spki_der(&spki, label).map_err(|_| KeyFileError::Algorithm("not a P-256 key"))?;
        Ok(Self { pair, public, spki })
    }

    /// Decrypts a cosign private key file's text with `passphrase`.
    pub fn decrypt(pem: &str, passphrase: &Secret, label: &str) -> Result<Self, KeyFileError> {
        let body = pem_body(pem)?;
        let json =
            Zeroizing::new(STANDARD.decode(body).map_err(|_| KeyFileError::Damaged("the PEM body is not base64"))?);
        let encrypted: Encrypted =
            serde_json::from_slice(&json).map_err(|_| KeyFileError::Damaged("not go-securesystemslib's JSON"))?;
        if encrypted.kdf.name != "scrypt" {
            return Err(KeyFileError::Unsupported(format!("the KDF {:?}", shown(&encrypted.kdf.name))));
        }
        if encrypted.cipher.name != "nacl/secretbox" {
            return Err(KeyFileError::Unsupported(format!("the cipher {:?}", shown(&encrypted.cipher.name))));
        }
        let params = encrypted.kdf.params;
        if !ACCEPTED_SCRYPT.contains(&params) {
            return Err(KeyFileError::Unsupported(format!("scrypt N={} r={} p={}", params.n, params.r, params.p)));
        }
        let salt = STANDARD.decode(&encrypted.kdf.salt).map_err(|_| KeyFileError::Damaged("the salt is not base64"))?;
        let nonce =
            STANDARD.decode(&encrypted.cipher.nonce).map_err(|_| KeyFileError::Damaged("the nonce is not base64"))?;
        if nonce.len() != NONCE_LEN {
            return Err(KeyFileError::Damaged("the nonce is not 24 bytes"));
        }
        let ciphertext = STANDARD
            .decode(&encrypted.ciphertext)
            .map_err(|_| KeyFileError::Damaged("the ciphertext is not base64"))?;
        let key = derive(passphrase, &salt, params)?;
        let der = XSalsa20Poly1305::new(Key::from_slice(&key[..]))
            .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
            .map(Zeroizing::new)
            .map_err(|_| KeyFileError::WrongPassphrase)?;
        Self::from_pkcs8(&der, label)
    }

    /// Reads and decrypts the key file at `path`.
    pub fn load(path: &Path, passphrase: &Secret) -> Result<Self, KeyFileError> {
        let read = |source| KeyFileError::Read { path: path.to_owned(), source };
        let file = std::fs::File::open(path).map_err(read)?;
        let bytes = crate::credential::read_to_end_wiped(file, MAX_KEY_FILE).map_err(|e| match e {
            crate::credential::ReadSecretError::Io(e) => read(e),
            crate::credential::ReadSecretError::TooLarge { .. } => KeyFileError::Damaged("larger than 64 KiB"),
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| KeyFileError::Damaged("not text"))?;
        Self::decrypt(text, passphrase, &format!("key {}", path.display()))
    }

    /// The public key (its fingerprint is sha256 of the SubjectPublicKeyInfo).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// sha256 of the SubjectPublicKeyInfo DER: the key's identity in reports and the policy's.
    pub fn fingerprint(&self) -> &Digest {
        &self.public.fingerprint
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The public key as cosign writes `cosign.pub`.
    pub fn public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki)
    }

    /// ECDSA P-256 over SHA-256 of `message`, ASN.1 DER (what cosign's signer produces).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyFileError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyFileError::Crypto("ECDSA signing"))
    }
}

/// What `imgctl keygen` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct KeyPairFiles {
    /// `PREFIX.key`, 0600.
    pub private_key: PathBuf,
    /// `PREFIX.pub`.
    pub public_key: PathBuf,
    /// sha256 of the public key's SubjectPublicKeyInfo.
    pub fingerprint: Digest,
}

/// Makes a key pair and writes `PREFIX.key` (0600, encrypted with `passphrase`) and
/// `PREFIX.pub`, never replacing a file that is there (checked atomically when each is put in
/// place; the private key is removed again when the public one cannot be written).
pub fn generate_key_pair(prefix: &Path, passphrase: &Secret) -> Result<KeyPairFiles, KeyFileError> {
    if passphrase.is_empty() {
        return Err(KeyFileError::EmptyPassphrase);
    }
    let with = |ext: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    let (private_key, public_key) = (with(".key"), with(".pub"));
    for path in [&private_key, &public_key] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyFileError::Exists(path.clone()));
        }
    }
    let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .map_err(|_| KeyFileError::Crypto("generating a P-256 key"))?;
    let der = Zeroizing::new(document.as_ref().to_vec());
    let key = SigningKey::from_pkcs8(&der, "a new key")?;
    let private_pem = encrypt(&der, passphrase)?;
    write_new(&private_key, private_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public_key, key.public_pem().as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&private_key);
        return Err(e);
    }
    Ok(KeyPairFiles { private_key, public_key, fingerprint: key.fingerprint().clone() })
}

/// Writes a new file: a temporary file beside it (created 0600 or `mode`, written, synced), then
/// renamed into place only if nothing is at `path` (`RENAME_NOREPLACE`), and the directory synced.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyFileError> {
    let write = |source| KeyFileError::Write { path: path.to_owned(), source };
    let (tmp, mut file) = crate::atomic_file::create_beside(path, mode).map_err(write)?;
    let result = (|| {
        file.write_all(contents)?;
        file.sync_all()?;
        rustix::fs::renameat_with(rustix::fs::CWD, &tmp, rustix::fs::CWD, path, rustix::fs::RenameFlags::NOREPLACE)?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()
    })();
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Err(KeyFileError::Exists(path.to_owned()))
            } else {
                Err(write(e))
            }
        }
    }
}

/// PKCS#8 `der` encrypted with `passphrase` as cosign writes it: the PEM text.
pub(crate) fn encrypt(der: &[u8], passphrase: &Secret) -> Result<Zeroizing<String>, KeyFileError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut salt).map_err(|_| KeyFileError::Crypto("the random source"))?;
    getrandom::getrandom(&mut nonce).map_err(|_| KeyFileError::Crypto("the random source"))?;
    let key = derive(passphrase, &salt, WRITTEN_SCRYPT)?;
    let ciphertext = XSalsa20Poly1305::new(Key::from_slice(&key[..]))
        .encrypt(Nonce::from_slice(&nonce), der)
        .map_err(|_| KeyFileError::Crypto("secretbox"))?;
    let encrypted = Encrypted {
        kdf: Kdf { name: "scrypt".into(), params: WRITTEN_SCRYPT, salt: STANDARD.encode(salt) },
        cipher: Cipher { name: "nacl/secretbox".into(), nonce: STANDARD.encode(nonce) },
        ciphertext: STANDARD.encode(ciphertext),
    };
    let json = serde_json::to_vec(&encrypted).map_err(|_| KeyFileError::Crypto("encoding the key"))?;
    Ok(Zeroizing::new(pem(SIGSTORE_LABEL, &json)))
}

/// scrypt of the passphrase: the secretbox key.
fn derive(passphrase: &Secret, salt: &[u8], params: ScryptParams) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyFileError> {
    let log_n = params.n.trailing_zeros() as u8;
    let params = scrypt::Params::new(log_n, params.r, params.p, KEY_LEN)
        .map_err(|_| KeyFileError::Unsupported(format!("scrypt N={} r={} p={}", params.n, params.r, params.p)))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    scrypt::scrypt(passphrase.expose().as_bytes(), salt, &params, &mut key[..])
        .map_err(|_| KeyFileError::Crypto("scrypt"))?;
    Ok(key)
}

/// The base64 body of the first cosign private-key block.
fn pem_body(pem: &str) -> Result<String, KeyFileError> {
    for label in [SIGSTORE_LABEL, COSIGN_LABEL] {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        if let Some(start) = pem.find(&begin) {
            let start = start + begin.len();
            let stop = pem[start..].find(&end).ok_or(KeyFileError::Damaged("the PEM block has no END line"))? + start;
            return Ok(pem[start..stop].chars().filter(|c| !c.is_ascii_whitespace()).collect());
        }
    }
    // Name the label found (a label is not secret), so "PRIVATE KEY" or "EC PRIVATE KEY" is said.
    let found = pem
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .map(|label| format!(" (found a {} block; cosign import-key-pair encrypts such a key)", shown(label)))
        .unwrap_or_default();
    Err(KeyFileError::NotCosignKey { found })
}

/// PEM as Go's `pem.EncodeToMemory` writes it: 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// What PKCS#8 `der` holds, for a refusal: its algorithm OID, looked for where it sits.
fn algorithm_of(der: &[u8]) -> &'static str {
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let head = &der[..der.len().min(32)];
    let has = |oid: &[u8]| head.windows(oid.len()).any(|w| w == oid);
    if has(RSA) {
        "an RSA key"
    } else if has(ED25519) {
        "an Ed25519 key"
    } else if has(EC) {
        "an ECDSA key on another curve than P-256, or without its public key"
    } else {
        "not a PKCS#8 key imgctl reads"
    }
}

/// At most 40 characters of a string read from a file, for a message.
fn shown(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
#[path = "keyfile_tests.rs"]
mod tests;
