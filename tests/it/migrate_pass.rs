//! Migration from docker-credential-pass: a pass store made with a passphrase-less gpg key in
//! the test's HOME, filled by the real docker-credential-pass, migrated, then served by imgctl.

use crate::common;

use std::fs;

use common::pass::PassStore;
use common::{TestHome, assert_success};

#[test]
fn migrate_pass_store_then_serve_and_remove_source() {
    let mut home = TestHome::new("pass");
    let pass = PassStore::new(&home);
    let secrets: Vec<String> = (0..2).map(|i| home.secret(&format!("pass{i}"))).collect();
    let servers = ["https://index.docker.io/v1/", "registry.example.com:5000"];
    for (server, secret) in servers.iter().zip(&secrets) {
        pass.store(&home, server, "alice", secret);
    }
    // What helpers up to 0.6 left behind: a plain file among the registry folders.
    fs::write(home.dir.join(".password-store/docker-credential-helpers/docker-pass-initialized-check"), "x").unwrap();

    let migrate = |args: &[&str]| {
        let out = pass
            .command(&home, common::IMGCTL)
            .args(["creds", "migrate", "--from", "pass", "-o", "json"])
            .args(args)
            .output()
            .unwrap();
        assert_success(&out, "imgctl creds migrate --from pass");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let dry = migrate(&["--dry-run"]);
    assert_eq!(dry["migrated"].as_array().unwrap().len(), 2, "{dry}");
    assert!(!home.store_file().exists(), "a dry run writes nothing");

    let first = migrate(&[]);
    assert_eq!(first["migrated"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["skipped"].as_array().unwrap().len(), 0, "the plain file is not an entry: {first}");
    for (server, secret) in servers.iter().zip(&secrets) {
        let got = home.get(server).expect("served after migration");
        assert_eq!((got["Username"].as_str(), got["Secret"].as_str()), (Some("alice"), Some(secret.as_str())));
    }
    assert!(home.get("docker.io").is_some(), "Docker Hub spellings find the migrated entry");

    let second = migrate(&["--remove-source"]);
    assert_eq!(second["migrated"].as_array().unwrap().len(), 0, "idempotent: {second}");
    assert_eq!(second["unchanged"].as_array().unwrap().len(), 2);
    assert_eq!(second["removed_from_source"].as_u64(), Some(2));
    assert_eq!(pass.list(&home).trim(), "{}", "the pass entries are gone");
}
