//! Promotion from a registry that misbehaves (inside the test process) to a real
//! docker-registry: lies about digests are refused with nothing tagged, bursts of 429 and 503
//! are waited out, credentials never follow a redirect to another origin, an oversized
//! manifest is refused.

use crate::common;

use common::hostile::HostileRegistry;
use common::registry::Registry;
use common::{TestHome, assert_success, stderr};

struct Setup {
    home: TestHome,
    hostile: HostileRegistry,
    destination: Registry,
}

fn setup(name: &str) -> Setup {
    let mut home = TestHome::new(name);
    let (source_pw, destination_pw) = (home.secret("hostile-pw"), home.secret("dest-pw"));
    let hostile = HostileRegistry::start("reader", &source_pw);
    let destination = Registry::start_htpasswd("writer", &destination_pw);
    home.store(&hostile.addr, "reader", &source_pw);
    home.store(&destination.addr, "writer", &destination_pw);
    std::fs::write(home.docker_config_dir().join("config.json"), r#"{"credsStore":"imgctl"}"#).unwrap();
    Setup { home, hostile, destination }
}

impl Setup {
    fn promote(&self, repository: &str) -> std::process::Output {
        let source = format!("{}/{repository}:1", self.hostile.addr);
        let destination = format!("{}/prod/{repository}:1", self.destination.addr);
        let audit = self.home.dir.join("audit.jsonl").display().to_string();
        self.home.imgctl(&["promote", &source, &destination, "--audit-log", &audit, "-o", "json"], b"")
    }

    fn destination_tag_exists(&self, repository: &str) -> bool {
        self.home.imgctl(&["resolve", &format!("{}/prod/{repository}:1", self.destination.addr)], b"").status.success()
    }
}

#[test]
fn a_well_behaved_source_copies() {
    let s = setup("hostile-control");
    let out = s.promote("plain");
    assert_success(&out, "promote from the in-process registry");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["digest"], s.hostile.digest.as_str());
    assert!(s.destination_tag_exists("plain"));
}

#[test]
fn a_blob_with_other_bytes_than_its_digest_is_refused_and_nothing_is_tagged() {
    let s = setup("hostile-blob");
    let out = s.promote("liar-blob");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expected sha256:") && stderr(&out).contains("no tag was written"),
        "{}",
        stderr(&out)
    );
    assert!(!s.destination_tag_exists("liar-blob"));
    assert!(!s.home.dir.join("audit.jsonl").exists(), "nothing promoted, nothing recorded");
}

#[test]
fn a_manifest_that_is_not_what_its_digest_says_is_refused() {
    let s = setup("hostile-manifest");
    let out = s.promote("liar-manifest");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("the registry served other bytes than asked for"), "{}", stderr(&out));
    assert!(!s.destination_tag_exists("liar-manifest"));
}

#[test]
fn bursts_of_429_and_503_are_waited_out() {
    let s = setup("hostile-flaky");
    let out = s.promote("flaky");
    assert_success(&out, "promote through 429 and 503 bursts");
    assert!(s.hostile.seen.injected_failures.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    assert!(s.destination_tag_exists("flaky"));
}

#[test]
fn credentials_never_follow_a_redirect_to_another_origin() {
    let s = setup("hostile-redirect");
    let out = s.promote("redirect");
    assert_success(&out, "promote with blobs redirected");
    use std::sync::atomic::Ordering;
    assert!(s.hostile.seen.redirected.load(Ordering::SeqCst) >= 2, "the blobs came from the redirect target");
    assert!(!s.hostile.seen.leaked_authorization.load(Ordering::SeqCst), "Authorization was sent to another origin");
}

#[test]
fn an_oversized_manifest_is_refused() {
    let s = setup("hostile-huge");
    let out = s.promote("huge");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is larger than 4194304 bytes"), "{}", stderr(&out));
}
