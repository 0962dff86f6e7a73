//! Signing: `imgctl keygen`, `imgctl sign` and `promote --sign-key` against a real
//! `docker-registry` (htpasswd, credentials through imgctl's store). Every key and signature
//! imgctl makes is checked by the independent implementation (tests/it/common/cosign_signer.py:
//! pyca cryptography, hashlib's scrypt and PyNaCl, written from cosign's formats), and by
//! `imgctl verify` under a policy; a key the independent side encrypted is one imgctl signs with.
//! Passphrases go through stdin or the environment only, and neither they nor the private
//! scalar appear in any output, the audit log, HOME or the registry's storage.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::registry::Registry;
use common::{TestHome, assert_success, contains, random_hex, require, run_with_stdin, stderr, stdout};

const SIGNER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/common/cosign_signer.py");

/// A registry, a HOME whose store holds its credential, and what every run printed (checked for
/// secrets at the end).
struct Bench {
    home: TestHome,
    registry: Registry,
    user: String,
    password: String,
    /// Passphrases and private scalars (hex) no output or file may hold.
    secrets: Vec<String>,
    outputs: std::cell::RefCell<Vec<Vec<u8>>>,
}

impl Bench {
    fn new(name: &str) -> Self {
        require("python3", "python3");
        let mut home = TestHome::new(name);
        let password = home.secret("signing-reg-pw");
        let user = "ci".to_owned();
        let registry = Registry::start_htpasswd(&user, &password);
        home.store(&registry.addr, &user, &password);
        fs::write(home.docker_config_dir().join("config.json"), r#"{"credsStore":"imgctl"}"#).unwrap();
        Self { home, registry, user, password, secrets: Vec::new(), outputs: Default::default() }
    }

    fn passphrase(&mut self, name: &str) -> String {
        let passphrase = self.home.secret(&format!("{name} pass phrase"));
        self.secrets.push(passphrase.clone());
        passphrase
    }

    fn path(&self, name: &str) -> String {
        self.home.dir.join(name).display().to_string()
    }

    /// The independent implementation; `passphrase` reaches it in $SIGNER_PASSPHRASE.
    fn python(&self, args: &[&str], passphrase: Option<&str>) -> Output {
        let mut command = Command::new("/usr/bin/python3");
        command
            .arg(SIGNER)
            .args(["--registry", &self.registry.addr, "--user", &self.user])
            .args(args)
            .env("SIGNER_PASSWORD", &self.password);
        if let Some(passphrase) = passphrase {
            command.env("SIGNER_PASSPHRASE", passphrase);
        }
        command.output().unwrap()
    }

    fn python_ok(&self, args: &[&str], passphrase: Option<&str>) -> Vec<String> {
        let out = self.python(args, passphrase);
        assert_success(&out, &format!("cosign_signer.py {}", args.join(" ")));
        stdout(&out).lines().map(str::to_owned).collect()
    }

    /// The independent verifier: the signatures of `repo@digest` in `layout` that `public`
    /// verifies (their "ok ..." lines; empty when none does).
    fn python_verify(&self, repo: &str, digest: &str, public: &str, layout: &str) -> Vec<String> {
        let out = self.python(&["verify", repo, digest, "--pub", public, "--layout", layout], None);
        assert!(matches!(out.status.code(), Some(0 | 1)), "verify crashed: {}", stderr(&out));
        stdout(&out).lines().map(str::to_owned).collect()
    }

    /// A fresh image in `repo`: its tag reference and digest.
    fn image(&self, repo: &str) -> (String, String) {
        let tag = format!("t{}", random_hex(3));
        let digest = self.python_ok(&["image", repo, &tag], None).remove(0);
        (format!("{}/{repo}:{tag}", self.registry.addr), digest)
    }

    /// `imgctl ARGS` with `env` added and `stdin`; its output is kept for the leak check.
    fn imgctl(&self, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
        let mut command = self.home.command(common::IMGCTL);
        command.args(args).envs(env.iter().copied());
        let out = run_with_stdin(&mut command, stdin);
        let mut outputs = self.outputs.borrow_mut();
        outputs.push(out.stdout.clone());
        outputs.push(out.stderr.clone());
        out
    }

    fn json(out: &Output) -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("not JSON: {}{}", stdout(out), stderr(out)))
    }

    /// `keygen` through imgctl (passphrase on stdin): the key's fingerprint; its scalar, read by
    /// the independent side, joins the secrets.
    fn keygen(&mut self, name: &str) -> (String, String) {
        let passphrase = self.passphrase(name);
        let prefix = self.path(name);
        let out = self.imgctl(
            &["keygen", "--output-key-prefix", &prefix, "--passphrase-stdin", "-o", "json"],
            &[],
            passphrase.as_bytes(),
        );
        assert_success(&out, "imgctl keygen");
        let fingerprint = Self::json(&out)["fingerprint"].as_str().unwrap().to_owned();
        let read = self.python_ok(&["decrypt-key", &format!("{prefix}.key")], Some(&passphrase));
        assert_eq!(read[0], fingerprint, "the independent side decrypts imgctl's key to the same key");
        self.secrets.push(read[1].clone());
        (passphrase, fingerprint)
    }

    fn policy(&self, name: &str, public: &str) -> String {
        let path = self.path(name);
        let policy = serde_json::json!({"default": [{"type": "sigstoreSigned", "keyPath": public,
            "signedIdentity": {"type": "matchRepository"}}]});
        fs::write(&path, policy.to_string()).unwrap();
        path
    }

    /// `imgctl verify -o json`: exit code and report.
    fn verify(&self, image: &str, policy: &str) -> (Option<i32>, serde_json::Value) {
        let out = self.imgctl(&["verify", image, "--policy", policy, "-o", "json"], &[], b"");
        (out.status.code(), serde_json::from_slice(&out.stdout).unwrap_or_default())
    }

    /// No passphrase or private scalar in any output imgctl printed, nor (as text, hex or raw
    /// bytes) in any file under HOME or in the registry's storage.
    fn assert_nothing_leaked(&self) {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for secret in &self.secrets {
            needles.push(secret.as_bytes().to_vec());
            if secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()) {
                let raw: Vec<u8> =
                    (0..32).map(|i| u8::from_str_radix(&secret[2 * i..2 * i + 2], 16).unwrap()).collect();
                needles.push(raw);
            }
        }
        assert!(!needles.is_empty());
        for (i, output) in self.outputs.borrow().iter().enumerate() {
            for needle in &needles {
                assert!(!contains(output, needle), "a secret in the output of run {}", i / 2);
            }
        }
        let mut files = Vec::new();
        for dir in [self.home.dir.clone(), self.registry.storage()] {
            walk(&dir, &mut files);
        }
        assert!(files.len() > 10, "{} files scanned", files.len());
        for file in files {
            let bytes = fs::read(&file).unwrap_or_default();
            for needle in &needles {
                assert!(!contains(&bytes, needle), "a secret in {}", file.display());
            }
        }
    }
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => walk(&entry.path(), files),
            Ok(kind) if kind.is_file() => files.push(entry.path()),
            _ => {}
        }
    }
}

#[test]
fn keygen_writes_what_cosign_reads_and_a_key_encrypted_elsewhere_signs() {
    let mut b = Bench::new("sign-keys");
    let (passphrase, fingerprint) = b.keygen("team");
    let key = b.home.dir.join("team.key");
    assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let text = fs::read_to_string(&key).unwrap();
    assert!(text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"), "{text}");
    assert!(fs::read_to_string(b.home.dir.join("team.pub")).unwrap().starts_with("-----BEGIN PUBLIC KEY-----\n"));

    // Never over an existing key, whatever the passphrase.
    let out = b.imgctl(&["keygen", "--output-key-prefix", &b.path("team"), "--passphrase-stdin"], &[], b"other");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&key).unwrap(), text);

    // A key file the independent side encrypted (cosign's older N=32768) signs through imgctl,
    // its passphrase in a variable named by --passphrase-env; both verifiers accept the result.
    let py_passphrase = b.passphrase("python");
    let py_fingerprint = b.python_ok(&["keygen-encrypted", &b.path("py")], Some(&py_passphrase)).remove(0);
    let read = b.python_ok(&["decrypt-key", &b.path("py.key")], Some(&py_passphrase));
    b.secrets.push(read[1].clone());
    let (image, digest) = b.image("team/app");
    let out = b.imgctl(
        &["sign", &image, "--key", &b.path("py.key"), "--passphrase-env", "TEAM_KEY_PASS", "-o", "json"],
        &[("TEAM_KEY_PASS", &py_passphrase)],
        b"",
    );
    assert_success(&out, "imgctl sign with the python key");
    let signed = Bench::json(&out);
    assert_eq!(
        (signed["digest"].as_str(), signed["key_fingerprint"].as_str()),
        (Some(&*digest), Some(&*py_fingerprint))
    );
    let good = b.python_verify("team/app", &digest, &b.path("py.pub"), "classic");
    assert_eq!(good.len(), 1, "{good:?}");
    assert!(good[0].ends_with(&format!(" {}/team/app", b.registry.addr)), "the payload names the repository: {good:?}");
    assert_eq!(b.verify(&image, &b.policy("py-policy.json", &b.path("py.pub"))).0, Some(0));
    // cosign reads a piped passphrase raw, so `echo "$P" | cosign generate-key-pair` makes a
    // key whose passphrase ends in a newline; `echo "$P" | imgctl sign --passphrase-stdin`
    // opens it, as it opens one made with `printf %s`.
    let echoed = format!("{}\n", b.passphrase("echoed"));
    b.python_ok(&["keygen-encrypted", &b.path("echoed")], Some(&echoed));
    let (echoed_image, _) = b.image("team/echoed");
    let out = b.imgctl(
        &["sign", &echoed_image, "--key", &b.path("echoed.key"), "--passphrase-stdin"],
        &[],
        echoed.as_bytes(),
    );
    assert_success(&out, "imgctl sign, a key whose passphrase ends in a newline");

    // COSIGN_PASSWORD, as cosign reads it, when no flag says otherwise; a wrong one fails
    // clearly (exit 1) and writes nothing.
    let before = b.imgctl(&["resolve", &format!("{}/team/app:sha256-{}.sig", b.registry.addr, &digest[7..])], &[], b"");
    let out = b.imgctl(&["sign", &image, "--key", &b.path("team.key")], &[("COSIGN_PASSWORD", "not it")], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("wrong passphrase"), "{}", stderr(&out));
    let after = b.imgctl(&["resolve", &format!("{}/team/app:sha256-{}.sig", b.registry.addr, &digest[7..])], &[], b"");
    assert_eq!(stdout(&before), stdout(&after), "the signature manifest is unchanged");
    let out = b.imgctl(&["sign", &image, "--key", &b.path("team.key")], &[("COSIGN_PASSWORD", &passphrase)], b"");
    assert_success(&out, "imgctl sign with COSIGN_PASSWORD");
    assert!(stdout(&out).contains(&fingerprint) && stdout(&out).contains("2 signature(s)"), "{}", stdout(&out));
    // A variable named but unset, or no passphrase at all: usage errors (exit 2).
    let out = b.imgctl(&["sign", &image, "--key", &b.path("team.key"), "--passphrase-env", "NOPE"], &[], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = b.imgctl(&["sign", &image, "--key", &b.path("team.key")], &[], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--passphrase-stdin"), "{}", stderr(&out));
    b.assert_nothing_leaked();
}

#[test]
fn signing_twice_keeps_every_signature_in_both_layouts() {
    let mut b = Bench::new("sign-layouts");
    let (pass_a, fp_a) = b.keygen("a");
    let (pass_b, _) = b.keygen("b");
    // A signature made elsewhere first: imgctl adds to it and never drops it.
    b.python_ok(&["keygen", &b.path("c")], None);
    let (image, digest) = b.image("team/app");
    b.python_ok(&["classic", "team/app", &digest, "--key", &b.path("c.key")], None);

    let pinned = format!("{}/team/app@{digest}", b.registry.addr);
    let sign = |key: &str, passphrase: &str| {
        let out = b.imgctl(
            &["sign", &pinned, "--key", &b.path(key), "--passphrase-stdin", "-o", "json"],
            &[],
            passphrase.as_bytes(),
        );
        assert_success(&out, &format!("sign with {key}"));
        Bench::json(&out)
    };
    let first = sign("a.key", &pass_a);
    assert_eq!((first["outcome"].as_str(), first["signatures"].as_u64()), (Some("added"), Some(2)), "{first}");
    assert_eq!(first["signature"], format!("{}/team/app:sha256-{}.sig", b.registry.addr, &digest[7..]));
    assert_eq!(first["key_fingerprint"], fp_a.as_str());
    // The same key again: cosign's duplicate detector, nothing added.
    let again = sign("a.key", &pass_a);
    assert_eq!((again["outcome"].as_str(), again["signatures"].as_u64()), (Some("already-signed"), Some(2)), "{again}");
    assert_eq!(again["manifest_digest"], first["manifest_digest"]);
    let second = sign("b.key", &pass_b);
    assert_eq!(second["signatures"].as_u64(), Some(3), "{second}");
    for key in ["a", "b", "c"] {
        let good = b.python_verify("team/app", &digest, &b.path(&format!("{key}.pub")), "classic");
        assert_eq!(good.len(), 1, "{key}: {good:?}");
        let (code, report) = b.verify(&image, &b.policy(&format!("{key}.json"), &b.path(&format!("{key}.pub"))));
        assert_eq!(code, Some(0), "imgctl verify with {key}: {report}");
    }

    // The bundle layout, on an image of its own (verify reads referrers when the classic layout
    // has nothing): two keys, two referrers in the fallback index, each verifying.
    let (bundled, bundled_digest) = b.image("team/bundled");
    let sign_bundle = |key: &str, passphrase: &str| {
        let out = b.imgctl(
            &[
                "sign",
                &format!("{}/team/bundled@{bundled_digest}", b.registry.addr),
                "--key",
                &b.path(key),
                "--layout",
                "bundle",
                "--passphrase-stdin",
                "-o",
                "json",
            ],
            &[],
            passphrase.as_bytes(),
        );
        assert_success(&out, "sign --layout bundle");
        Bench::json(&out)
    };
    let one = sign_bundle("a.key", &pass_a);
    assert_eq!(one["fallback_tag"], format!("sha256-{}", &bundled_digest[7..]), "{one}");
    sign_bundle("b.key", &pass_b);
    for key in ["a", "b"] {
        let good = b.python_verify("team/bundled", &bundled_digest, &b.path(&format!("{key}.pub")), "bundle");
        assert_eq!(good.len(), 1, "{key}: {good:?}");
        let (code, report) = b.verify(&bundled, &b.policy(&format!("{key}.json"), &b.path(&format!("{key}.pub"))));
        assert_eq!(
            (code, report["verification"]["accepted_by"][0]["layout"].as_str()),
            (Some(0), Some("bundle")),
            "{report}"
        );
    }
    assert!(
        b.python_verify("team/bundled", &bundled_digest, &b.path("c.pub"), "bundle").is_empty(),
        "another key does not verify"
    );
    b.assert_nothing_leaked();
}

#[test]
fn promote_sign_key_signs_each_promoted_edge_at_the_destination() {
    let mut b = Bench::new("sign-promote");
    let reg = b.registry.addr.clone();
    let (pass, fingerprint) = b.keygen("release");
    // The staging gate: sources signed by the team's key (independent signer) pass.
    b.python_ok(&["keygen", &b.path("team")], None);
    let gate = b.policy("staging.json", &b.path("team.pub"));
    let prod = b.policy("prod.json", &b.path("release.pub"));
    let audit = b.path("audit.jsonl");
    let promote = |args: &[&str], passphrase: &str| {
        b.imgctl(
            &[
                &["promote"],
                args,
                &[
                    "--policy",
                    &gate,
                    "--audit-log",
                    &audit,
                    "--sign-key",
                    &b.path("release.key"),
                    "--passphrase-stdin",
                    "-o",
                    "json",
                ],
            ]
            .concat(),
            &[],
            passphrase.as_bytes(),
        )
    };

    for (name, layout) in [("classic", "classic"), ("bundled", "bundle")] {
        let (source, digest) = b.image(&format!("staging/{name}"));
        b.python_ok(&["classic", &format!("staging/{name}"), &digest, "--key", &b.path("team.key")], None);
        let destination = format!("{reg}/prod/{name}:1");
        // A dry run says which key would sign, and writes nothing.
        let out = promote(&[&source, &destination, "--sign-layout", layout, "--dry-run"], &pass);
        assert_success(&out, &format!("promote --sign-key --dry-run, {layout}"));
        let planned = Bench::json(&out);
        assert_eq!(
            (planned["would_sign"]["layout"].as_str(), planned["would_sign"]["key"].as_str()),
            (Some(layout), Some(fingerprint.as_str())),
            "{planned}"
        );
        assert!(planned.get("signed").is_none(), "{planned}");
        let written = b.registry.storage().join(format!("repositories/prod/{name}"));
        assert!(!written.exists(), "{layout}: a dry run copied or signed nothing");
        let out = promote(&[&source, &destination, "--sign-layout", layout], &pass);
        assert_success(&out, &format!("promote --sign-key, {layout}"));
        assert!(written.exists(), "{layout}: the promote wrote {}", written.display());
        let result = Bench::json(&out);
        assert_eq!(result["signed"]["layout"], layout, "{result}");
        assert_eq!(result["signed"]["key_fingerprint"], fingerprint.as_str());
        assert_eq!(result["signed"]["digest"], digest.as_str());
        let good = b.python_verify(&format!("prod/{name}"), &digest, &b.path("release.pub"), layout);
        assert_eq!(good.len(), 1, "{layout}: {good:?}");
        let (code, report) = b.verify(&destination, &prod);
        assert_eq!(
            (code, report["verification"]["accepted_by"][0]["layout"].as_str()),
            (Some(0), Some(layout)),
            "{report}"
        );
        let record: serde_json::Value =
            serde_json::from_str(fs::read_to_string(&audit).unwrap().lines().last().unwrap()).unwrap();
        assert_eq!(record["signature"]["layout"], layout, "{record}");
        assert_eq!(record["signature"]["signature"], result["signed"]["signature"]);
        assert_eq!(record["signature"]["key_fingerprint"], fingerprint.as_str());
    }

    // With --referrers the source's signatures come along, and the new one joins them.
    let (source, digest) = b.image("staging/both");
    b.python_ok(&["classic", "staging/both", &digest, "--key", &b.path("team.key")], None);
    let out = promote(&[&source, &format!("{reg}/prod/both:1"), "--referrers"], &pass);
    assert_success(&out, "promote --referrers --sign-key");
    let result = Bench::json(&out);
    assert_eq!(result["signature_tag"]["outcome"], "copied", "{result}");
    assert_eq!(result["signed"]["signatures"].as_u64(), Some(2), "{result}");
    for (key, identity) in [("team", "staging/both"), ("release", "prod/both")] {
        let good = b.python_verify("prod/both", &digest, &b.path(&format!("{key}.pub")), "classic");
        assert_eq!(good.len(), 1, "{key}: {good:?}");
        assert!(good[0].ends_with(&format!(" {reg}/{identity}")), "{key} signed for {identity}: {good:?}");
    }

    // The gate runs first: an unsigned source is refused before a byte is copied or signed; a
    // wrong passphrase stops the run before any registry is read.
    let (unsigned, _) = b.image("staging/unsigned");
    let out = promote(&[&unsigned, &format!("{reg}/prod/unsigned:1")], &pass);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no signature"), "{}", stderr(&out));
    let (signed_source, signed_digest) = b.image("staging/later");
    b.python_ok(&["classic", "staging/later", &signed_digest, "--key", &b.path("team.key")], None);
    let out = promote(&[&signed_source, &format!("{reg}/prod/later:1")], "wrong passphrase");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("wrong passphrase"), "{}", stderr(&out));
    for repo in ["unsigned", "later"] {
        assert!(!b.registry.storage().join(format!("repositories/prod/{repo}")).exists(), "{repo}: nothing written");
    }

    // A promotion manifest: every edge is signed at its destination.
    let mut dmap = Vec::new();
    let mut digests = Vec::new();
    for name in ["m1", "m2"] {
        let (_, digest) = b.image(&format!("staging/{name}"));
        b.python_ok(&["classic", &format!("staging/{name}"), &digest, "--key", &b.path("team.key")], None);
        dmap.push(format!("- name: {name}\n  dmap:\n    \"{digest}\": [\"1.0\"]\n"));
        digests.push((name, digest));
    }
    let manifest =
        format!("registries:\n- name: {reg}/staging\n  src: true\n- name: {reg}/prod\nimages:\n{}", dmap.concat());
    fs::write(b.home.dir.join("promotion.yaml"), manifest).unwrap();
    let out = promote(&["--file", &b.path("promotion.yaml")], &pass);
    assert_success(&out, "promote --file --sign-key");
    let report = Bench::json(&out);
    assert_eq!(report["promoted"].as_array().unwrap().len(), 2, "{report}");
    for (name, digest) in &digests {
        assert_eq!(
            b.python_verify(&format!("prod/{name}"), digest, &b.path("release.pub"), "classic").len(),
            1,
            "{name}"
        );
    }

    // Signing fails after the copy (the destination's .sig tag holds an index, which is left
    // alone): said as such, exit 1, no tag written, nothing recorded.
    let (source, digest) = b.image("staging/broken");
    b.python_ok(&["classic", "staging/broken", &digest, "--key", &b.path("team.key")], None);
    let out = b.imgctl(
        &["promote", &source, &format!("{reg}/prod/broken:0"), "--policy", &gate, "--audit-log", &audit],
        &[],
        b"",
    );
    assert_success(&out, "promote without signing");
    b.python_ok(&["bundle", "prod/broken", &digest, "--key", &b.path("team.key")], None);
    let index = stdout(&b.imgctl(&["resolve", &format!("{reg}/prod/broken:sha256-{}", &digest[7..])], &[], b""));
    let out = b.imgctl(
        &["tag", &format!("{reg}/prod/broken@{}", index.trim()), &format!("sha256-{}.sig", &digest[7..])],
        &[],
        b"",
    );
    assert_success(&out, "an index under the .sig tag");
    let records = fs::read_to_string(&audit).unwrap().lines().count();
    let out = promote(&[&source, &format!("{reg}/prod/broken:1")], &pass);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("was copied but not signed, and no tag was written"), "{}", stderr(&out));
    assert!(stderr(&out).contains("left alone"), "{}", stderr(&out));
    let tag = b.imgctl(&["resolve", &format!("{reg}/prod/broken:1")], &[], b"");
    assert_eq!(tag.status.code(), Some(1), "tag 1 was not written");
    assert_eq!(fs::read_to_string(&audit).unwrap().lines().count(), records, "no record of the failed edge");
    b.assert_nothing_leaked();
}

/// Removes a folder of the test's own on drop (outside HOME, so the leak check of HOME does
/// not read the registry password the fake helper answers with).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// A credential helper is a third party's program (ecr-login, gcloud, pass, desktop): the
// variable a passphrase was read from, and COSIGN_PASSWORD, are not in its environment.
#[test]
fn a_credential_helper_is_never_given_the_passphrase() {
    let mut b = Bench::new("sign-helper-env");
    let (pass, _) = b.keygen("k");
    let (image, _) = b.image("staging/envdump");
    let scratch = Scratch(std::env::temp_dir().join(format!("imgctl-test-envdump-{}", random_hex(6))));
    fs::create_dir_all(&scratch.0).unwrap();
    let dump = scratch.0.join("env");
    let helper = scratch.0.join("docker-credential-envdump");
    let answer = serde_json::json!({"ServerURL": b.registry.addr, "Username": b.user, "Secret": b.password});
    fs::write(&helper, format!("#!/bin/sh\nenv >> '{}'\ncat >/dev/null\nprintf '%s' '{answer}'\n", dump.display()))
        .unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let config = serde_json::json!({"credHelpers": {b.registry.addr.clone(): "envdump"}});
    fs::write(b.home.docker_config_dir().join("config.json"), config.to_string()).unwrap();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", scratch.0.display());
    let env = [("PATH", path.as_str()), ("KEY_PASS", pass.as_str()), ("COSIGN_PASSWORD", pass.as_str())];

    let key = b.path("k.key");
    let out = b.imgctl(&["sign", &image, "--key", &key, "--passphrase-env", "KEY_PASS"], &env, b"");
    assert_success(&out, "imgctl sign through a credential helper");
    let destination = format!("{}/prod/envdump:1", b.registry.addr);
    let out =
        b.imgctl(&["promote", &image, &destination, "--sign-key", &key, "--passphrase-env", "KEY_PASS"], &env, b"");
    assert_success(&out, "imgctl promote --sign-key through a credential helper");

    let seen = fs::read_to_string(&dump).expect("the helper ran");
    assert!(seen.contains("PATH="), "the helper's environment was dumped: {seen}");
    for name in ["KEY_PASS=", "COSIGN_PASSWORD="] {
        assert!(!seen.lines().any(|l| l.starts_with(name)), "{name} reached the credential helper");
    }
    assert!(!seen.contains(&pass), "the passphrase reached the credential helper");
    b.assert_nothing_leaked();
}
