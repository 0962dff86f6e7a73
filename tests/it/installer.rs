//! install/install.sh on a machine with plaintext credentials in config.json: binaries on PATH,
//! docker pointed at imgctl with every other key kept and a backup, credentials moved into the
//! store, doctor green; idempotent; --uninstall restores.

use crate::common;

use std::fs;
use std::path::Path;

use common::{HELPER, TestHome, assert_success, stdout};

fn install(home: &TestHome, args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install/install.sh");
    let bin_dir = Path::new(HELPER).parent().unwrap();
    home.command("bash")
        .arg(script)
        .arg("--from")
        .arg(bin_dir)
        .args(["--prefix", &home.dir.join("prefix").display().to_string()])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn install_migrates_configures_checks_and_uninstall_restores() {
    let mut home = TestHome::new("installer");
    let password = home.secret("plain-pw");
    let token = home.secret("plain-token");
    let odd = home.secret("unmovable-token");
    let auth = base64_encode(format!("alice:{password}").as_bytes());
    let config_path = home.docker_config_dir().join("config.json");
    fs::write(
        &config_path,
        format!(
            r#"{{"auths":{{"registry.example.com":{{"auth":"{auth}"}},"ghcr.io":{{"identitytoken":"{token}"}},"odd.example.com":{{"registrytoken":"{odd}"}}}},
               "credsStore":"desktop","credHelpers":{{"gcr.io":"gcloud"}},"detachKeys":"ctrl-e,e"}}"#
        ),
    )
    .unwrap();

    let out = install(&home, &[]);
    // The registrytoken entry cannot be moved: it stays in config.json, doctor flags it.
    assert_eq!(out.status.code(), Some(1), "doctor fails on the plaintext left behind");
    let text = stdout(&out);
    assert!(text.contains("ok    round trip"), "doctor ran a round trip: {text}");
    assert!(text.contains("FAIL  plaintext") && text.contains("odd.example.com"), "{text}");
    // The backup never holds a plaintext credential, not even the one that could not move.
    let backup_text = fs::read_to_string(home.docker_config_dir().join("config.json.imgctl-backup")).unwrap();
    assert!(
        !backup_text.contains(&odd) && !backup_text.contains(&auth) && !backup_text.contains(&token),
        "{backup_text}"
    );
    home.assert_no_plaintext_secrets_except(&odd);
    // Once the user removes it (docker login stores it through imgctl), doctor is green.
    let mut config: serde_json::Value = serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    config["auths"]["odd.example.com"] = serde_json::json!({});
    fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    for binary in ["imgctl", "docker-credential-imgctl"] {
        assert!(home.dir.join("prefix/bin").join(binary).is_file(), "{binary} installed");
    }

    let config: serde_json::Value = serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    assert_eq!(config["credsStore"], "imgctl");
    assert_eq!(config["credHelpers"]["gcr.io"], "gcloud");
    assert_eq!(config["detachKeys"], "ctrl-e,e");
    assert_eq!(config["auths"]["registry.example.com"], serde_json::json!({}));
    assert_eq!(config["auths"]["ghcr.io"], serde_json::json!({}));
    let backup: serde_json::Value =
        serde_json::from_slice(&fs::read(home.docker_config_dir().join("config.json.imgctl-backup")).unwrap()).unwrap();
    assert_eq!(backup["credsStore"], "desktop");

    let alice = home.get("registry.example.com").expect("migrated");
    assert_eq!((alice["Username"].as_str(), alice["Secret"].as_str()), (Some("alice"), Some(password.as_str())));
    let ghcr = home.get("ghcr.io").expect("migrated");
    assert_eq!((ghcr["Username"].as_str(), ghcr["Secret"].as_str()), (Some("<token>"), Some(token.as_str())));

    let before = fs::read(&config_path).unwrap();
    let again = install(&home, &[]);
    assert!(!stdout(&again).contains("FAIL"), "{}", stdout(&again));
    assert_success(&again, "install.sh, second run");
    assert!(stdout(&again).contains("already imgctl"), "{}", stdout(&again));
    assert_eq!(fs::read(&config_path).unwrap(), before, "a second run changes nothing");

    let uninstall = install(&home, &["--uninstall"]);
    assert_success(&uninstall, "install.sh --uninstall");
    assert!(
        stdout(&uninstall).contains("docker will ask for a login again for: registry.example.com, ghcr.io"),
        "{}",
        stdout(&uninstall)
    );
    let config: serde_json::Value = serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    assert_eq!(config["credsStore"], "desktop");
    assert_eq!(config["detachKeys"], "ctrl-e,e");
    assert!(!home.docker_config_dir().join("config.json.imgctl-backup").exists());
    assert!(!home.dir.join("prefix/bin/imgctl").exists());
    assert!(home.store_file().exists(), "the store is kept");
}

#[test]
fn install_moves_credentials_docker_reads_from_keys_in_any_case() {
    let mut home = TestHome::new("installer-any-case");
    let (password, token, plain) = (home.secret("Auth-pw"), home.secret("IdentityToken"), home.secret("Password"));
    let auth = base64_encode(format!("alice:{password}").as_bytes());
    home.remember(&auth);
    let config_path = home.docker_config_dir().join("config.json");
    fs::write(
        &config_path,
        format!(
            r#"{{"Auths":{{"registry.example.com":{{"Auth":"{auth}"}},"ghcr.io":{{"IdentityToken":"{token}"}},
                          "user.example.com":{{"Username":"bob","Password":"{plain}"}},"quay.io":{{}}}},
               "CredsStore":"desktop","detachKeys":"ctrl-e,e"}}"#
        ),
    )
    .unwrap();

    let out = install(&home, &[]);
    assert_success(&out, "install.sh");
    for (server, username, secret) in [
        ("registry.example.com", "alice", &password),
        ("ghcr.io", "<token>", &token),
        ("user.example.com", "bob", &plain),
    ] {
        let got = home.get(server).unwrap_or_else(|| panic!("{server} was not moved into the store"));
        assert_eq!(got["Username"].as_str(), Some(username));
        assert!(got["Secret"] == secret.as_str(), "{server}: the store holds another secret");
    }
    assert!(stdout(&out).contains("holds no plaintext credentials"), "{}", stdout(&out));
    // The logins docker-credential-desktop keeps are named; quay.io is the one config.json lists.
    let warning = common::stderr(&out);
    assert!(
        warning.contains("docker-credential-desktop")
            && warning.contains("docker will ask for a login again for: quay.io.")
            && warning.contains("--restore"),
        "{warning}"
    );
    let config: serde_json::Value = serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    let spellings: Vec<&String> =
        config.as_object().unwrap().keys().filter(|key| key.eq_ignore_ascii_case("credsStore")).collect();
    assert_eq!(spellings, ["credsStore"], "one credsStore, so docker cannot read another");
    assert_eq!(config["credsStore"], "imgctl");
    assert_eq!(config["Auths"]["user.example.com"], serde_json::json!({}));
    assert_eq!(config["detachKeys"], "ctrl-e,e");
    // The backup keeps the previous credsStore for --uninstall, and no secret (checked below
    // for every file under HOME).
    let backup = fs::read_to_string(home.docker_config_dir().join("config.json.imgctl-backup")).unwrap();
    assert!(backup.contains(r#""CredsStore": "desktop""#), "the backup records the previous credsStore");
    home.assert_no_plaintext_secrets();

    let uninstall = install(&home, &["--uninstall"]);
    assert_success(&uninstall, "install.sh --uninstall");
    let config: serde_json::Value = serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    assert_eq!(config["credsStore"], "desktop");
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn install_offers_to_move_credentials_of_the_helper_it_replaces() {
    let home = TestHome::new("installer-pass");
    let config_path = home.docker_config_dir().join("config.json");
    fs::write(&config_path, r#"{"auths":{"ghcr.io":{}},"credsStore":"pass"}"#).unwrap();
    // No terminal and no --migrate: the command is printed, nothing is run.
    let out = install(&home, &[]);
    assert_success(&out, "install.sh");
    assert!(stdout(&out).contains("imgctl creds migrate --from pass"), "{}", stdout(&out));
    let config: serde_json::Value = serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    assert_eq!(config["credsStore"], "imgctl");
    // Docker reads the key in any case, and so does the installer.
    fs::write(&config_path, r#"{"auths":{"ghcr.io":{}},"CredsStore":"pass"}"#).unwrap();
    let out = install(&home, &[]);
    assert_success(&out, "install.sh");
    assert!(stdout(&out).contains("imgctl creds migrate --from pass"), "{}", stdout(&out));
    // --migrate runs it; with no pass store there, the installer stops with the reason.
    fs::write(&config_path, r#"{"auths":{"ghcr.io":{}},"credsStore":"pass"}"#).unwrap();
    let out = install(&home, &["--migrate"]);
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("no pass store"), "{}", common::stderr(&out));
}
