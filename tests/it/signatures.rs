//! The signature gate against a real `docker-registry` (htpasswd, credentials through imgctl's
//! store), with every signature made by an independent signer (tests/it/common/cosign_signer.py,
//! pyca cryptography, written from cosign's formats): both layouts, good and bad signatures,
//! per-repository scopes, and a promotion manifest with an unsigned image. The deploy and
//! rollback gates are in `signature_gates.rs`.

use crate::common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use common::registry::Registry;
use common::{TestHome, assert_success, random_hex, require, stderr, stdout};

const SIGNER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/common/cosign_signer.py");

/// A registry, a HOME whose imgctl store holds its credential, and two key pairs made by the
/// independent signer: `good` (trusted by the policies) and `other`.
struct Signing {
    home: TestHome,
    registry: Registry,
    user: String,
    password: String,
}

impl Signing {
    fn new(name: &str) -> Self {
        require("python3", "python3");
        let mut home = TestHome::new(name);
        let password = home.secret("signing-pw");
        let user = "ci".to_owned();
        let registry = Registry::start_htpasswd(&user, &password);
        home.store(&registry.addr, &user, &password);
        fs::write(home.docker_config_dir().join("config.json"), r#"{"credsStore":"imgctl"}"#).unwrap();
        let signing = Self { home, registry, user, password };
        for key in ["good", "other"] {
            signing.signer(&["keygen", &signing.key(key).display().to_string()]);
        }
        signing
    }

    /// `NAME.key` / `NAME.pub` under HOME, without the extension.
    fn key(&self, name: &str) -> PathBuf {
        self.home.dir.join(name)
    }

    fn public(&self, name: &str) -> String {
        self.home.dir.join(format!("{name}.pub")).display().to_string()
    }

    /// Runs the signer; its stdout lines.
    fn signer(&self, args: &[&str]) -> Vec<String> {
        let out = Command::new("/usr/bin/python3")
            .arg(SIGNER)
            .args(["--registry", &self.registry.addr, "--user", &self.user])
            .args(args)
            .env("SIGNER_PASSWORD", &self.password)
            .output()
            .unwrap();
        assert_success(&out, &format!("cosign_signer.py {}", args.join(" ")));
        stdout(&out).lines().map(str::to_owned).collect()
    }

    /// Pushes a fresh image to `repo`; its tag reference and digest.
    fn image(&self, repo: &str) -> (String, String) {
        let tag = format!("t{}", random_hex(3));
        let digest = self.signer(&["image", repo, &tag]).remove(0);
        (format!("{}/{repo}:{tag}", self.registry.addr), digest)
    }

    /// Signs `digest` of `repo` in `layout` with each of `keys` (`good`, `other`); the payload
    /// blob of the last signature.
    fn sign(&self, layout: &str, repo: &str, digest: &str, keys: &[&str], extra: &[&str]) -> String {
        let mut payload = String::new();
        let key_args: Vec<String> =
            keys.iter().flat_map(|k| ["--key".into(), format!("{}.key", self.key(k).display())]).collect();
        let key_args: Vec<&str> = key_args.iter().map(String::as_str).collect();
        match layout {
            // One manifest, one layer per key.
            "classic" => payload = self.signer(&[&["classic", repo, digest], &key_args[..], extra].concat())[1].clone(),
            // One referrer per key.
            _ => {
                for pair in key_args.chunks(2) {
                    payload = self.signer(&[&["bundle", repo, digest], pair, extra].concat())[1].clone();
                }
            }
        }
        payload
    }

    fn policy(&self, name: &str, json: &serde_json::Value) -> String {
        let path = self.home.dir.join(name);
        fs::write(&path, serde_json::to_string_pretty(json).unwrap()).unwrap();
        path.display().to_string()
    }

    fn imgctl(&self, args: &[&str]) -> Output {
        self.home.imgctl(args, b"")
    }

    /// `imgctl verify IMAGE --policy POLICY -o json`: the exit code and the report.
    fn verify(&self, image: &str, policy: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
        let out = self.imgctl(&[&["verify", image, "--policy", policy, "-o", "json"], extra].concat());
        let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), report, stderr(&out))
    }
}

fn signed_by(key: &str) -> serde_json::Value {
    serde_json::json!([{"type": "sigstoreSigned", "keyPath": key, "signedIdentity": {"type": "matchRepository"}}])
}

/// The failures a rejected report lists, one string each.
fn failures(report: &serde_json::Value) -> Vec<String> {
    report["signatures"]
        .as_array()
        .map(|l| l.iter().map(|s| s["failure"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn both_layouts_good_wrong_key_other_digest_tampered_unsigned_and_several() {
    let s = Signing::new("sig-layouts");
    let policy = s.policy("policy.json", &serde_json::json!({"default": signed_by(&s.public("good"))}));
    for layout in ["classic", "bundle"] {
        let repo = format!("team/{layout}");
        let what = |case: &str| format!("{layout}: {case}");

        // A good signature: accepted, naming the signature and the key.
        let (good, good_digest) = s.image(&repo);
        s.sign(layout, &repo, &good_digest, &["good"], &[]);
        let (code, report, err) = s.verify(&good, &policy, &[]);
        assert_eq!(code, Some(0), "{}: {err}", what("good"));
        let by = &report["verification"]["accepted_by"][0];
        assert_eq!(
            (by["requirement"].as_str(), by["layout"].as_str()),
            (Some("sigstoreSigned"), Some(layout)),
            "{report}"
        );
        assert!(by["key"].as_str().unwrap().ends_with("good.pub"), "{report}");
        assert_eq!(report["verification"]["digest"], good_digest.as_str());
        let text = s.imgctl(&["verify", &good, "--policy", &policy]);
        assert_success(&text, &what("good, text"));
        assert!(
            stdout(&text).contains("verified with keyPath") && stdout(&text).contains(&good_digest),
            "{}",
            stdout(&text)
        );

        // Signed with another key.
        let (wrong, wrong_digest) = s.image(&repo);
        s.sign(layout, &repo, &wrong_digest, &["other"], &[]);
        let (code, report, err) = s.verify(&wrong, &policy, &[]);
        assert_eq!(code, Some(1), "{}", what("wrong key"));
        assert_eq!(report["reason"], "none-accepted");
        assert!(failures(&report)[0].contains("does not verify with the trusted key"), "{report}");
        assert!(err.contains("REJECTED") && err.contains(&wrong_digest), "{err}");

        // A good key's signature of another digest, attached to this one.
        let (moved, moved_digest) = s.image(&repo);
        s.sign(layout, &repo, &moved_digest, &["good"], &["--signed-digest", &good_digest]);
        let (code, report, _) = s.verify(&moved, &policy, &[]);
        assert_eq!(code, Some(1), "{}", what("another digest"));
        assert!(failures(&report)[0].contains(&format!("for another digest ({good_digest})")), "{report}");

        // A payload changed after signing (pushed as a new blob, the signature kept).
        let (edited, edited_digest) = s.image(&repo);
        s.sign(layout, &repo, &edited_digest, &["good"], &["--tamper"]);
        let (code, report, _) = s.verify(&edited, &policy, &[]);
        assert_eq!(code, Some(1), "{}", what("edited payload"));
        assert!(failures(&report)[0].contains("does not verify"), "{report}");

        // The registry serves other bytes than the payload's descriptor names.
        let (served, served_digest) = s.image(&repo);
        let payload = s.sign(layout, &repo, &served_digest, &["good"], &[]);
        let file = s.registry.blob_file(&payload);
        let mut bytes = fs::read(&file).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        fs::write(&file, bytes).unwrap();
        let (code, report, _) = s.verify(&served, &policy, &[]);
        assert_eq!(code, Some(1), "{}", what("tampered blob"));
        assert!(failures(&report)[0].starts_with("tampered payload"), "{report}");

        // No signature at all; then signed after the fact, accepted.
        let (unsigned, unsigned_digest) = s.image(&repo);
        let (code, report, err) = s.verify(&unsigned, &policy, &[]);
        assert_eq!(
            (code, report["reason"].as_str()),
            (Some(1), Some("no-signature")),
            "{}: {report}",
            what("unsigned")
        );
        assert!(err.contains("no signature (looked in") && err.contains(&unsigned_digest), "{err}");
        s.sign(layout, &repo, &unsigned_digest, &["good"], &[]);
        assert_eq!(s.verify(&unsigned, &policy, &[]).0, Some(0), "{}", what("signed later"));

        // Several signatures, one of them good.
        let (several, several_digest) = s.image(&repo);
        s.sign(layout, &repo, &several_digest, &["other", "good"], &[]);
        let (code, report, err) = s.verify(&several, &policy, &[]);
        assert_eq!(code, Some(0), "{}: {err}", what("several"));
        assert!(report["verification"]["accepted_by"][0]["key"].as_str().unwrap().ends_with("good.pub"));
    }

    // The default signedIdentity (matchRepoDigestOrExact) does not take cosign's repository-only
    // identity, as in containers/image; the refusal says what to write instead.
    let strict = s.policy(
        "strict.json",
        &serde_json::json!({"default": [{"type": "sigstoreSigned", "keyPath": s.public("good")}]}),
    );
    let (image, digest) = s.image("team/strict");
    s.sign("classic", "team/strict", &digest, &["good"], &[]);
    let (code, report, _) = s.verify(&image, &strict, &[]);
    assert_eq!(code, Some(1));
    assert!(failures(&report)[0].contains("use signedIdentity matchRepository"), "{report}");
    s.home.assert_no_plaintext_secrets();
}

#[test]
fn scopes_per_repository_and_what_imgctl_refuses_to_check() {
    let s = Signing::new("sig-scopes");
    let reg = s.registry.addr.clone();
    let other_data = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(fs::read(s.public("other")).unwrap())
    };
    let policy = s.policy(
        "policy.json",
        &serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {
                format!("{reg}/open"): [{"type": "insecureAcceptAnything"}],
                format!("{reg}/team"): signed_by(&s.public("good")),
                format!("{reg}/team/special"): [{"type": "sigstoreSigned", "keyData": other_data, "signedIdentity": {"type": "matchRepository"}}],
                format!("{reg}/keyless"): [{"type": "sigstoreSigned", "fulcio": {"caPath": "/x", "oidcIssuer": "https://x", "subjectEmail": "a@b"}, "rekorPublicKeyPath": "/y"}],
            }, "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}}
        }),
    );

    let (open, _) = s.image("open/app");
    let (code, report, err) = s.verify(&open, &policy, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["verification"]["scope"], format!("{reg}/open"));
    assert_eq!(report["verification"]["accepted_by"][0]["requirement"], "insecureAcceptAnything");

    let (team, digest) = s.image("team/app");
    s.sign("classic", "team/app", &digest, &["good"], &[]);
    let (code, report, err) = s.verify(&team, &policy, &[]);
    assert_eq!((code, report["verification"]["scope"].as_str()), (Some(0), Some(&*format!("{reg}/team"))), "{err}");

    // The more specific scope trusts only the other key (given inline).
    let (special, digest) = s.image("team/special/app");
    s.sign("bundle", "team/special/app", &digest, &["good"], &[]);
    let (code, report, _) = s.verify(&special, &policy, &[]);
    assert_eq!((code, report["scope"].as_str()), (Some(1), Some(&*format!("{reg}/team/special"))), "{report}");
    s.sign("bundle", "team/special/app", &digest, &["other"], &[]);
    let (code, report, err) = s.verify(&special, &policy, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(report["verification"]["accepted_by"][0]["key"].as_str().unwrap().contains("keyData #1"), "{report}");

    let (elsewhere, _) = s.image("elsewhere/app");
    let (code, report, _) = s.verify(&elsewhere, &policy, &[]);
    assert_eq!((code, report["reason"].as_str()), (Some(1), Some("policy-rejects")));

    let (keyless, _) = s.image("keyless/app");
    let (code, _, err) = s.verify(&keyless, &policy, &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("keyless (Fulcio certificates)") && err.contains("imgctl does not check"), "{err}");

    // Classic signatures kept in another repository (cosign's COSIGN_REPOSITORY).
    let (apart, digest) = s.image("team/apart");
    s.sign("classic", "team/apart", &digest, &["good"], &["--sig-repo", "team/signatures"]);
    let (code, report, _) = s.verify(&apart, &policy, &[]);
    assert_eq!((code, report["reason"].as_str()), (Some(1), Some("no-signature")));
    let elsewhere_sigs = format!("{reg}/team/signatures");
    let (code, _, err) = s.verify(&apart, &policy, &["--signature-repository", &elsewhere_sigs]);
    assert_eq!(code, Some(0), "{err}");

    // A given policy that is missing is an error, not "no gate"; a broken one names the key.
    let (code, _, err) = s.verify(&open, "/nonexistent/policy.json", &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("reading the policy /nonexistent/policy.json"), "{err}");
    let broken = s.policy("broken.json", &serde_json::json!({"default": [{"type": "reject", "keyPath": "/k"}]}));
    let (_, _, err) = s.verify(&open, &broken, &[]);
    assert!(err.contains("unknown key \"keyPath\""), "{err}");
}

#[test]
fn promotion_refuses_a_rejected_source_before_copying_a_byte() {
    let s = Signing::new("sig-promote");
    let reg = s.registry.addr.clone();
    let policy = s.policy("policy.json", &serde_json::json!({"default": signed_by(&s.public("good"))}));
    let audit = s.home.dir.join("audit.jsonl");
    let audit_arg = audit.display().to_string();

    // One image alone: refused, nothing at the destination, nothing recorded.
    let (unsigned, unsigned_digest) = s.image("staging/unsigned");
    let out = s.imgctl(&[
        "promote",
        &unsigned,
        &format!("{reg}/prod/unsigned:1"),
        "--policy",
        &policy,
        "--audit-log",
        &audit_arg,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no signature") && stderr(&out).contains(&unsigned_digest), "{}", stderr(&out));
    assert!(!s.registry.storage().join("repositories/prod/unsigned").exists(), "nothing was written");
    assert!(!audit.exists(), "nothing was recorded");

    // A signed one goes through, and says by what.
    let (signed, signed_digest) = s.image("staging/signed");
    s.sign("classic", "staging/signed", &signed_digest, &["good"], &[]);
    let out = s.imgctl(&[
        "promote",
        &signed,
        &format!("{reg}/prod/signed:1"),
        "--policy",
        &policy,
        "--audit-log",
        &audit_arg,
        "-o",
        "json",
    ]);
    assert_success(&out, "promote a signed image");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["verified"]["accepted_by"][0]["layout"], "classic");
    // Without --referrers the signatures stay behind; with it, both layouts follow the image
    // and the policy accepts it at the destination. The classic payload still names the
    // repository it was signed for: at the destination, exactRepository says which one.
    let prod_policy = s.policy(
        "prod.json",
        &serde_json::json!({"default": [{"type": "reject"}], "transports": {"docker": {
            format!("{reg}/prod/signed"): [{"type": "sigstoreSigned", "keyPath": s.public("good"),
                "signedIdentity": {"type": "exactRepository", "dockerRepository": format!("{reg}/staging/signed")}}],
            format!("{reg}/prod/bundled"): signed_by(&s.public("good")),
        }}}),
    );
    let (code, report, _) = s.verify(&format!("{reg}/prod/signed:1"), &prod_policy, &[]);
    assert_eq!((code, report["reason"].as_str()), (Some(1), Some("no-signature")));
    let (bundled, bundled_digest) = s.image("staging/bundled");
    s.sign("bundle", "staging/bundled", &bundled_digest, &["good"], &[]);
    for (source, name) in [(&signed, "signed"), (&bundled, "bundled")] {
        let destination = format!("{reg}/prod/{name}:2");
        let out = s.imgctl(&[
            "promote",
            source,
            &destination,
            "--referrers",
            "--policy",
            &policy,
            "--audit-log",
            &audit_arg,
            "-o",
            "json",
        ]);
        assert_success(&out, "promote --referrers");
        let (code, report, err) = s.verify(&destination, &prod_policy, &[]);
        assert_eq!(code, Some(0), "{name} at the destination: {err}");
        let layout = report["verification"]["accepted_by"][0]["layout"].clone();
        assert_eq!(layout, if name == "signed" { "classic" } else { "bundle" });
        if name == "signed" {
            let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(result["signature_tag"]["outcome"], "copied", "{result}");
        }
    }

    // A promotion manifest: the unsigned edge is refused, the others promoted.
    let mut dmap = Vec::new();
    for (name, layout) in [("a", Some("classic")), ("b", Some("bundle")), ("c", None)] {
        let repo = format!("staging/{name}");
        let (_, digest) = s.image(&repo);
        if let Some(layout) = layout {
            s.sign(layout, &repo, &digest, &["good"], &[]);
        }
        dmap.push(format!("- name: {name}\n  dmap:\n    \"{digest}\": [\"1.0\"]\n"));
    }
    let manifest =
        format!("registries:\n- name: {reg}/staging\n  src: true\n- name: {reg}/prod\nimages:\n{}", dmap.concat());
    let file = s.home.dir.join("promoter-manifest.yaml");
    fs::write(&file, manifest).unwrap();
    let out = s.imgctl(&[
        "promote",
        "--file",
        &file.display().to_string(),
        "--policy",
        &policy,
        "--audit-log",
        &audit_arg,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let promoted: Vec<&str> =
        report["promoted"].as_array().unwrap().iter().map(|r| r["destination"].as_str().unwrap()).collect();
    assert_eq!(promoted, [format!("{reg}/prod/a"), format!("{reg}/prod/b")]);
    let failed = &report["failed"][0];
    assert_eq!(
        (failed["destination"].as_str(), failed["rejected"].as_bool()),
        (Some(&*format!("{reg}/prod/c")), Some(true))
    );
    assert!(failed["error"].as_str().unwrap().contains("no signature"), "{failed}");
    assert!(!s.registry.storage().join("repositories/prod/c").exists(), "the refused edge wrote nothing");
    assert!(s.registry.storage().join("repositories/prod/a").exists());
}

#[test]
fn a_hostile_registry_cannot_make_the_gate_read_without_bound() {
    use common::hostile::{ENDLESS, HostileRegistry};
    use std::sync::atomic::Ordering;

    let mut home = TestHome::new("sig-hostile");
    let password = home.secret("hostile-pw");
    let hostile = HostileRegistry::start("reader", &password);
    home.store(&hostile.addr, "reader", &password);
    fs::write(home.docker_config_dir().join("config.json"), r#"{"credsStore":"imgctl"}"#).unwrap();
    let key = home.dir.join("k");
    let out =
        Command::new("/usr/bin/python3").arg(SIGNER).args(["keygen", &key.display().to_string()]).output().unwrap();
    assert_success(&out, "keygen");
    let policy = home.dir.join("policy.json");
    fs::write(&policy, serde_json::json!({"default": signed_by(&format!("{}.pub", key.display()))}).to_string())
        .unwrap();

    // Its signature tag is the image's manifest again (no signature layers), and its referrers
    // answer never ends: refused at the manifest cap, having read a bounded amount.
    let before = hostile.seen.body_bytes_taken.load(Ordering::SeqCst);
    let image = format!("{}/huge-referrers:1", hostile.addr);
    let out = home.imgctl(&["verify", &image, "--policy", &policy.display().to_string()], b"");
    let taken = hostile.seen.body_bytes_taken.load(Ordering::SeqCst) - before;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("reading the signatures of") && stderr(&out).contains("larger than 4194304 bytes"),
        "{}",
        stderr(&out)
    );
    assert!(taken < ENDLESS / 8, "{taken} of {ENDLESS} bytes taken");
}
