//! A real docker-registry with token auth behind a token server the test runs (Harbor-style:
//! a robot account with `$` in its name). Bearer tokens are fetched with the robot's Basic
//! credential from imgctl's store, one token carries both scopes of a cross-repository mount,
//! tokens are reused, anonymous tokens serve public repositories, and a wrong password is a
//! clear refusal.

use crate::common;

use std::fs;

use common::oci::{Layout, sha256_digest, skopeo_auth_file, skopeo_raw};
use common::registry::{Registry, token_requests};
use common::{TestHome, assert_success, stderr};

#[test]
fn bearer_tokens_multi_scope_mounts_and_anonymous_pulls() {
    let mut home = TestHome::new("token");
    let password = home.secret("robot-token");
    let registry = Registry::start_token("robot$ci", &password);
    home.store(&registry.addr, "robot$ci", &password);
    fs::write(home.docker_config_dir().join("config.json"), r#"{"credsStore":"imgctl"}"#).unwrap();
    skopeo_auth_file(&home, &[&registry.addr]);

    let layout = Layout::two_platform(&home.dir, "t", 2, 8 * 1024);
    let source = format!("{}/staging/app:1", registry.addr);
    layout.push(&home, &source);
    layout.push(&home, &format!("{}/public/app:1", registry.addr));
    let before = token_requests(&registry).len();

    let out = home.imgctl(
        &["promote", &source, &format!("{}/prod/app:1", registry.addr), "--audit-log", "audit.jsonl", "-o", "json"],
        b"",
    );
    assert_success(&out, "promote within the token registry");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (result["copy"]["blobs_mounted"].as_u64(), result["copy"]["blobs_uploaded"].as_u64()),
        (Some(6), Some(0)),
        "{result}"
    );
    assert_eq!(skopeo_raw(&home, &format!("{}/prod/app:1", registry.addr)), skopeo_raw(&home, &source));

    let requests = &token_requests(&registry)[before..];
    let mount_token = requests.iter().find(|r| {
        let scopes = r["scopes"].as_array().unwrap();
        scopes.contains(&"repository:staging/app:pull".into())
            && scopes.contains(&"repository:prod/app:pull,push".into())
    });
    assert!(mount_token.is_some(), "one token for both scopes of the mount: {requests:?}");
    assert!(requests.iter().all(|r| r["user"] == "robot$ci"), "every token was asked for as the robot: {requests:?}");
    assert!(requests.len() <= 5, "tokens are reused, not fetched per request: {} token requests", requests.len());

    // Anonymous: no credential for the registry, an anonymous token for a public repository.
    assert_success(&home.helper("erase", registry.addr.as_bytes()), "erase");
    let public = home.imgctl(&["resolve", &format!("{}/public/app:1", registry.addr)], b"");
    assert_success(&public, "anonymous resolve of a public repository");
    assert_eq!(
        String::from_utf8_lossy(&public.stdout).trim(),
        sha256_digest(&skopeo_raw(&home, &format!("{}/public/app:1", registry.addr)))
    );
    let private = home.imgctl(&["resolve", &source], b"");
    assert_eq!(private.status.code(), Some(1));
    assert!(stderr(&private).contains("refused access to staging/app"), "{}", stderr(&private));

    // A wrong password is refused by the token server, and said so.
    home.store(&registry.addr, "robot$ci", "wrong-password");
    let wrong = home.imgctl(&["resolve", &source], b"");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr(&wrong).contains("the credential was refused"), "{}", stderr(&wrong));
}
