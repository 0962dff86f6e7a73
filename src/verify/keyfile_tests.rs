use std::os::unix::fs::PermissionsExt;

use super::*;

// Made by cosign itself (Go: cosign's GenerateKeyPair, go-securesystemslib encrypted, N=32768),
// passphrase "hello": the fixtures of cosign's pkg/cosign/keys_test.go (Apache-2.0).
const COSIGN_SIGSTORE_KEY: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiI3T3VGd2VsbWZZNXVId2NoaURSc210anNwZ2ZlZjFG
Mk5lOGFDTjVLYVpZPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJQNHk4OGhCb3ZTa09MbXN0bFVBaGJwdDJ0K2xTNUxQSCJ9LCJj
aXBoZXJ0ZXh0IjoiMnB1QzdyZldJOWh3bnJlQ2s4aUZDRlVwQlRrSzRJNlIvbFBF
cnBDekpXUGpJWXl4eGVIL1A2VW52cFJHdVhla1NNb3JMdGhLamdoQ1JlNy82NDVH
QWtoVm1LRC92eEF0S2EvbE1abENSQ3FlekJGUFd1dzNpeFRtZ2xhb2J1ZFVSbUVs
bmNGOGlZbzBTMVl6Y1ZOMVFwY2J2c0dNcUlYRzVlbmdteGp5dCtBcXlyZTF0Q0Y0
V01tU1BlaEljNlBqd2h1Q2xHaVpJUWRvTGc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
";
/// A P-256 key under cosign's older label, same passphrase (the fixture's comment there says RSA,
/// but it holds an ECDSA key).
const COSIGN_LABELLED_KEY: &str = "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiJ4WWdoc09JTUxUWGNOT0RsclNIOUNKc1FlOVFnZmN1
cmUrMXlLdHh1TlkwPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiI0cS9PSlVmaXJkSUkrUjZ0ajZBMmcyQ0JqL25xdFNicCJ9LCJj
aXBoZXJ0ZXh0IjoiKzB4Q3NzcFN0WStBczdKanJpOWtsbHBWd2JhcUI4ZWJNdWto
eS9aVE1MSXRsL3B1YS9jWVJvbytLRGxMWWdmOW1kSjk4K1FnQW9oTktoYnJPMTcw
MHdBY1JTMjFDOE4zQUNJRUVZaWpOMllBNnMraGJSbkhjUnd4eGhDMDFtb2FvL0dO
Y1pmbEJheXZMV3pXblo4d2NDZ2ZpT1o1VXlRTEFJMHh0dnR6dEh3cTdDV1Vhd3V4
RlhlNDZzck9TUE9SNHN6bytabWErUGovSFE9PSJ9
-----END ENCRYPTED COSIGN PRIVATE KEY-----
";

fn secret(text: &str) -> Secret {
    Secret::new(text.into())
}

#[test]
fn a_key_cosign_wrote_decrypts_and_signs() {
    let key = SigningKey::decrypt(COSIGN_SIGSTORE_KEY, &secret("hello"), "cosign's").unwrap();
    let signature = key.sign(b"payload").unwrap();
    assert!(key.public_key().verifies(b"payload", &signature));
    assert!(!key.public_key().verifies(b"another payload", &signature));
    // The public key round-trips through the PEM imgctl writes, to the same fingerprint.
    let public = PublicKey::from_pem(&key.public_pem(), "pub").unwrap();
    assert_eq!(&public.fingerprint, key.fingerprint());
    assert_eq!(public.fingerprint, Digest::sha256_of(key.spki_der()));

    assert!(matches!(
        SigningKey::decrypt(COSIGN_SIGSTORE_KEY, &secret("hellO"), "x"),
        Err(KeyFileError::WrongPassphrase)
    ));
    let older = SigningKey::decrypt(COSIGN_LABELLED_KEY, &secret("hello"), "older").unwrap();
    assert!(older.public_key().verifies(b"m", &older.sign(b"m").unwrap()));

    // PKCS#8 of another algorithm: refused by name once decrypted.
    let rsa_head = [
        0x30, 0x82, 0x04, 0xbd, 0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
        0x01, 0x01, 0x05, 0x00,
    ];
    let rsa = SigningKey::decrypt(&encrypt(&rsa_head, &secret("pw")).unwrap(), &secret("pw"), "x").unwrap_err();
    assert_eq!(rsa.to_string(), "the key is an RSA key: imgctl signs with ECDSA P-256 keys (cosign's default)");
}

#[test]
fn keys_are_written_in_go_securesystemslib_json_and_read_back() {
    let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new()).unwrap();
    let pem_text = encrypt(document.as_ref(), &secret("correct horse")).unwrap();
    assert!(pem_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(pem_text.ends_with("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(pem_text.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
    let json: serde_json::Value =
        serde_json::from_slice(&STANDARD.decode(pem_body(&pem_text).unwrap()).unwrap()).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&json), ["kdf", "cipher", "ciphertext"]);
    assert_eq!(keys(&json["kdf"]), ["name", "params", "salt"]);
    assert_eq!(json["kdf"]["name"], "scrypt");
    assert_eq!(json["kdf"]["params"], serde_json::json!({"N": 65536, "r": 8, "p": 1}));
    assert_eq!(STANDARD.decode(json["kdf"]["salt"].as_str().unwrap()).unwrap().len(), 32);
    assert_eq!(json["cipher"]["name"], "nacl/secretbox");
    assert_eq!(STANDARD.decode(json["cipher"]["nonce"].as_str().unwrap()).unwrap().len(), 24);
    // secretbox: a 16-byte tag and the DER.
    assert_eq!(STANDARD.decode(json["ciphertext"].as_str().unwrap()).unwrap().len(), document.as_ref().len() + 16);

    let key = SigningKey::decrypt(&pem_text, &secret("correct horse"), "k").unwrap();
    assert!(key.public_key().verifies(b"m", &key.sign(b"m").unwrap()));
    assert!(matches!(SigningKey::decrypt(&pem_text, &secret(""), "k"), Err(KeyFileError::WrongPassphrase)));
}

#[test]
fn what_is_not_a_cosign_key_is_named_and_costly_parameters_are_refused() {
    let plain = "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----\n";
    let err = SigningKey::decrypt(plain, &secret("x"), "k").unwrap_err();
    assert!(err.to_string().contains("found a PRIVATE KEY block"), "{err}");
    assert!(matches!(SigningKey::decrypt("nothing", &secret("x"), "k"), Err(KeyFileError::NotCosignKey { .. })));

    // N = 2^20 would take a GiB: refused before any scrypt runs, as go-securesystemslib does.
    let costly = serde_json::json!({"kdf": {"name": "scrypt", "params": {"N": 1048576, "r": 8, "p": 1}, "salt": "AAAA"},
        "cipher": {"name": "nacl/secretbox", "nonce": STANDARD.encode([0u8; 24])}, "ciphertext": "AAAA"});
    let text = pem(SIGSTORE_LABEL, costly.to_string().as_bytes());
    let err = SigningKey::decrypt(&text, &secret("x"), "k").unwrap_err();
    assert_eq!(err.to_string(), "the encrypted key uses scrypt N=1048576 r=8 p=1, which cosign does not write");
    let mut other = costly.clone();
    other["kdf"]["params"]["N"] = 32768.into();
    other["cipher"]["name"] = "aes-gcm".into();
    let text = pem(SIGSTORE_LABEL, other.to_string().as_bytes());
    let err = SigningKey::decrypt(&text, &secret("x"), "k").unwrap_err();
    assert_eq!(err.to_string(), "the encrypted key uses the cipher \"aes-gcm\", which cosign does not write");
}

#[test]
fn keygen_writes_a_private_0600_file_and_never_overwrites() {
    let dir = std::env::temp_dir().join(format!("imgctl-keygen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("cosign");
    let files = generate_key_pair(&prefix, &secret("pw")).unwrap();
    assert_eq!(files.private_key, dir.join("cosign.key"));
    let mode = std::fs::metadata(&files.private_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key = SigningKey::load(&files.private_key, &secret("pw")).unwrap();
    let public = PublicKey::from_pem(&std::fs::read_to_string(&files.public_key).unwrap(), "p").unwrap();
    assert_eq!((&public.fingerprint, key.fingerprint()), (&files.fingerprint, &files.fingerprint));

    let before = std::fs::read(&files.private_key).unwrap();
    assert!(
        matches!(generate_key_pair(&prefix, &secret("pw")), Err(KeyFileError::Exists(p)) if p == files.private_key)
    );
    assert_eq!(std::fs::read(&files.private_key).unwrap(), before, "the key is untouched");
    // Only the public key there: still refused, and no private key is left behind.
    let lone = dir.join("lone");
    std::fs::write(dir.join("lone.pub"), b"theirs").unwrap();
    assert!(matches!(generate_key_pair(&lone, &secret("pw")), Err(KeyFileError::Exists(_))));
    assert!(!dir.join("lone.key").exists());
    assert!(matches!(generate_key_pair(&dir.join("empty"), &secret("")), Err(KeyFileError::EmptyPassphrase)));
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["cosign.key", "cosign.pub", "lone.pub"], "no temporary file is left");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn write_new_refuses_a_path_taken_between_check_and_rename() {
    let dir = std::env::temp_dir().join(format!("imgctl-write-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cosign.key");
    std::os::unix::fs::symlink(dir.join("elsewhere"), &path).unwrap();
    assert!(matches!(write_new(&path, b"secret", 0o600), Err(KeyFileError::Exists(_))));
    assert!(!dir.join("elsewhere").exists(), "a link is never written through");
    std::fs::remove_dir_all(&dir).unwrap();
}
