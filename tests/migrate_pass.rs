//! Migration from docker-credential-pass: a pass store made with a passphrase-less gpg key in
//! the test's HOME, filled by the real docker-credential-pass, migrated, then served by imgctl.

mod common;

use std::fs;
use std::process::Command;

use common::{TestHome, assert_success, require, run_with_stdin, stdout};

/// Stops the gpg-agent the test's GNUPGHOME started.
struct GpgAgent(std::path::PathBuf);
impl Drop for GpgAgent {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").args(["--kill", "all"]).env("GNUPGHOME", &self.0).output();
    }
}

fn with_pass_env(home: &TestHome, command: &mut Command) {
    command.env("GNUPGHOME", home.dir.join(".gnupg")).env("PASSWORD_STORE_DIR", home.dir.join(".password-store"));
}

#[test]
fn migrate_pass_store_then_serve_and_remove_source() {
    let pass_helper = require("docker-credential-pass", "golang-docker-credential-helpers");
    require("pass", "pass");
    require("gpg", "gnupg");
    let mut home = TestHome::new("pass");
    let gnupg = home.dir.join(".gnupg");
    fs::create_dir_all(&gnupg).unwrap();
    fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let _agent = GpgAgent(gnupg.clone());

    let mut keygen = home.command("gpg");
    with_pass_env(&home, &mut keygen);
    let out = keygen
        .args([
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "imgctl test <test@localhost>",
            "default",
            "default",
            "never",
        ])
        .output()
        .unwrap();
    assert_success(&out, "gpg --quick-gen-key");
    let mut init = home.command("pass");
    with_pass_env(&home, &mut init);
    assert_success(&init.args(["init", "test@localhost"]).output().unwrap(), "pass init");

    let secrets: Vec<String> = (0..2).map(|i| home.secret(&format!("pass{i}"))).collect();
    let servers = ["https://index.docker.io/v1/", "registry.example.com:5000"];
    for (server, secret) in servers.iter().zip(&secrets) {
        let mut store = home.command(&pass_helper);
        with_pass_env(&home, &mut store);
        let request = serde_json::json!({"ServerURL": server, "Username": "alice", "Secret": secret});
        assert_success(
            &run_with_stdin(store.arg("store"), request.to_string().as_bytes()),
            "docker-credential-pass store",
        );
    }
    // What helpers up to 0.6 left behind: a plain file among the registry folders.
    fs::write(home.dir.join(".password-store/docker-credential-helpers/docker-pass-initialized-check"), "x").unwrap();

    let migrate = |args: &[&str]| {
        let mut command = home.command(common::IMGCTL);
        with_pass_env(&home, &mut command);
        let out = command.args(["creds", "migrate", "--from", "pass", "-o", "json"]).args(args).output().unwrap();
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
    let mut list = home.command(&pass_helper);
    with_pass_env(&home, &mut list);
    let listed = run_with_stdin(list.arg("list"), b"unused");
    assert_eq!(stdout(&listed).trim(), "{}", "the pass entries are gone");
}
