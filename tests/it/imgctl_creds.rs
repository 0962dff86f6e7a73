//! `imgctl creds` for people and CI: login from stdin, ls, rm, JSON output, migrate, doctor,
//! and a passphrase-protected identity served to docker through the helper.

use crate::common;

use std::fs;

use common::{TestHome, assert_success, stderr, stdout};

#[test]
fn login_ls_rm_with_text_and_json_output() {
    let mut home = TestHome::new("creds-cli");
    let password = home.secret("cli-pw");
    let out = home.imgctl(
        &["creds", "login", "https://Registry.Example.com:5000/", "-u", "alice"],
        format!("{password}\n").as_bytes(),
    );
    assert_success(&out, "creds login");
    // Stored under the spelling docker login uses, without the trailing newline.
    let got = home.get("registry.example.com:5000").unwrap();
    assert_eq!(
        (got["ServerURL"].as_str(), got["Secret"].as_str()),
        (Some("registry.example.com:5000"), Some(password.as_str()))
    );

    assert!(stdout(&home.helper("list", b"unused")).contains("\"registry.example.com:5000\":\"alice\""));
    let hub = home.secret("hub");
    assert_success(&home.imgctl(&["creds", "login", "-u", "bob"], hub.as_bytes()), "creds login to Docker Hub");
    assert_eq!(home.get("docker.io").unwrap()["Secret"], hub.as_str());
    let listed = stdout(&home.helper("list", b"unused"));
    assert!(listed.contains("\"https://index.docker.io/v1/\":\"bob\""), "stored under Docker Hub's key: {listed}");

    let ls = home.imgctl(&["creds", "ls"], b"");
    assert_success(&ls, "creds ls");
    let rows: Vec<Vec<String>> =
        stdout(&ls).lines().map(|line| line.split_whitespace().map(str::to_owned).collect()).collect();
    assert!(rows.contains(&vec!["registry.example.com:5000".to_owned(), "alice".to_owned()]), "{rows:?}");
    assert!(rows.contains(&vec!["https://index.docker.io/v1/".to_owned(), "bob".to_owned()]), "{rows:?}");
    assert!(!stdout(&ls).contains(&password));
    let json: serde_json::Value =
        serde_json::from_slice(&home.imgctl(&["creds", "ls", "-o", "json"], b"").stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|e| e["server_url"] == "registry.example.com:5000" && e["username"] == "alice")
    );

    let rm = home.imgctl(&["creds", "rm", "http://registry.example.com:5000", "nothing.example.com"], b"");
    assert_success(&rm, "creds rm");
    assert!(stderr(&rm).contains("nothing.example.com: nothing stored"));
    assert!(home.get("registry.example.com:5000").is_none());
}

#[test]
fn login_refuses_an_empty_password_and_bad_servers() {
    let home = TestHome::new("creds-bad");
    let empty = home.imgctl(&["creds", "login", "ghcr.io", "-u", "alice"], b"\n");
    assert_eq!(empty.status.code(), Some(1));
    assert!(stderr(&empty).contains("empty"), "{}", stderr(&empty));
    let bad = home.imgctl(&["creds", "login", "bad host", "-u", "alice"], b"pw");
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("invalid server URL"), "{}", stderr(&bad));
    assert!(!home.store_file().exists());
}

#[test]
fn migrate_dry_run_then_real_run() {
    let mut home = TestHome::new("migrate");
    let password = home.secret("migrate-pw");
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("carol:{password}"))
    };
    let config = home.docker_config_dir().join("config.json");
    fs::write(
        &config,
        format!(r#"{{"auths":{{"reg.example.com":{{"auth":"{auth}"}},"junk.example.com":{{"auth":"%%"}}}}}}"#),
    )
    .unwrap();
    let original = fs::read(&config).unwrap();

    let dry = home.imgctl(&["creds", "migrate", "--from", "config", "--dry-run", "-o", "json"], b"");
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(report["migrated"], serde_json::json!(["reg.example.com"]));
    assert_eq!(report["skipped"][0]["server_url"], "junk.example.com");
    assert_eq!(fs::read(&config).unwrap(), original, "a dry run writes nothing");
    assert!(home.get("reg.example.com").is_none());

    let real = home.imgctl(&["creds", "migrate", "--from", "config"], b"");
    assert_eq!(real.status.code(), Some(1), "an unreadable entry is reported with exit 1");
    assert!(stdout(&real).contains("1 migrated"), "{}", stdout(&real));
    assert_eq!(home.get("reg.example.com").unwrap()["Secret"], password.as_str());
    assert_eq!(fs::read(&config).unwrap(), original, "the source is left intact unless asked");

    let strip = home.imgctl(&["creds", "migrate", "--from", "config", "--remove-source"], b"");
    assert!(
        stdout(&strip).contains("0 migrated, 1 already in the store, 1 skipped, 1 removed from the source"),
        "{}",
        stdout(&strip)
    );
    let after: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert_eq!(after["auths"]["reg.example.com"], serde_json::json!({}));
    assert_eq!(after["auths"]["junk.example.com"]["auth"], "%%", "what could not be moved stays");
}

#[test]
fn doctor_reports_what_is_wrong_and_exits_1() {
    let home = TestHome::new("doctor");
    fs::write(home.docker_config_dir().join("config.json"), r#"{"auths":{"x.io":{"auth":"dTpw"}}}"#).unwrap();
    // The helper is not on PATH.
    let out = home
        .command(common::IMGCTL)
        .env("PATH", "/usr/bin:/bin")
        .args(["creds", "doctor", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("helper").as_deref(), Some("fail"));
    assert_eq!(status("plaintext").as_deref(), Some("fail"));
    assert_eq!(status("docker config").as_deref(), Some("warn"));
    assert_eq!(status("round trip"), None);
}

#[test]
fn passphrase_protected_identity_serves_docker_with_the_passphrase_in_its_environment() {
    let mut home = TestHome::new("passphrase");
    let passphrase = home.secret("passphrase");
    let secret = home.secret("pw");
    assert_success(&home.imgctl(&["creds", "init", "--passphrase-stdin"], passphrase.as_bytes()), "init");
    assert!(home.dir.join(".config/imgctl/identity.age").exists());
    let request = serde_json::json!({"ServerURL": "p.io", "Username": "u", "Secret": secret}).to_string();
    let refused = home.helper("store", request.as_bytes());
    assert_eq!(refused.status.code(), Some(1));
    assert!(stdout(&refused).contains("IMGCTL_PASSPHRASE"), "{}", stdout(&refused));

    let with = |action: &str, input: &[u8]| {
        common::run_with_stdin(home.command(common::HELPER).arg(action).env("IMGCTL_PASSPHRASE", &passphrase), input)
    };
    assert_success(&with("store", request.as_bytes()), "store with the passphrase");
    let got: serde_json::Value = serde_json::from_slice(&with("get", b"p.io").stdout).unwrap();
    assert_eq!(got["Secret"], secret.as_str());
    let wrong =
        common::run_with_stdin(home.command(common::HELPER).arg("get").env("IMGCTL_PASSPHRASE", "wrong"), b"p.io");
    assert_eq!(
        stdout(&wrong).trim(),
        format!("wrong passphrase for the identity {}", home.dir.join(".config/imgctl/identity.age").display())
    );
}

#[test]
fn migration_never_overwrites_a_different_credential_unless_asked() {
    let mut home = TestHome::new("migrate-conflict");
    let (old, newer) = (home.secret("old-plain"), home.secret("newer-login"));
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    home.store("ghcr.io", "alice", &newer);
    let config = home.docker_config_dir().join("config.json");
    // Two spellings of one registry in one source, and a conflict with the store.
    fs::write(
        &config,
        format!(
            r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}},"reg.example.com":{{"auth":"{}"}},"https://reg.example.com":{{"auth":"{}"}}}}}}"#,
            b64(&format!("alice:{old}")),
            b64("bob:first"),
            b64("bob:second")
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = home
            .imgctl(&[&["creds", "migrate", "--from", "config", "--remove-source", "-o", "json"], extra].concat(), b"");
        assert_success(&out, "migrate");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let report = run(&[]);
    let kinds: Vec<(String, String)> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["server_url"].as_str().unwrap().to_owned(), s["kind"].as_str().unwrap().to_owned()))
        .collect();
    assert!(kinds.contains(&("ghcr.io".into(), "conflict".into())), "{report}");
    assert!(kinds.contains(&("https://reg.example.com".into(), "duplicate".into())), "{report}");
    assert_eq!(home.get("ghcr.io").unwrap()["Secret"], newer.as_str(), "the newer login was kept");
    assert_eq!(home.get("reg.example.com").unwrap()["Secret"], "first");
    let after: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert!(after["auths"]["ghcr.io"]["auth"].is_string(), "a skipped entry stays in its source");
    assert!(after["auths"]["https://reg.example.com"]["auth"].is_string(), "a duplicate stays in its source");
    assert_eq!(after["auths"]["reg.example.com"], serde_json::json!({}));

    // With --overwrite what is left in the source wins: the conflict and the other spelling.
    let forced = run(&["--overwrite"]);
    assert_eq!(forced["migrated"], serde_json::json!(["ghcr.io", "https://reg.example.com"]), "{forced}");
    assert_eq!(home.get("ghcr.io").unwrap()["Secret"], old.as_str());
    assert_eq!(home.get("reg.example.com").unwrap()["Secret"], "second");
}

#[test]
fn backend_auto_is_decided_once_and_recorded() {
    let home = TestHome::new("backend-auto");
    // No session bus here: auto decides on the age file, and says why.
    let set = home.imgctl(&["creds", "backend", "auto", "-o", "json"], b"");
    assert_success(&set, "creds backend auto");
    let saved: serde_json::Value = serde_json::from_slice(&set.stdout).unwrap();
    assert_eq!((saved["backend"].as_str(), saved["chosen"].as_str()), (Some("age-file"), Some("auto")));
    assert!(saved["fallback"].as_str().unwrap().contains("no D-Bus session bus"));
    let settings: serde_json::Value =
        serde_json::from_slice(&fs::read(home.dir.join(".config/imgctl/config.json")).unwrap()).unwrap();
    assert_eq!(settings, serde_json::json!({"backend": "age-file", "chosen_by_auto": true}));
    // Later calls use the recorded decision, silently: no probe, no note on docker's terminal.
    let out = home.helper("store", br#"{"ServerURL":"a.io","Username":"u","Secret":"s"}"#);
    assert_success(&out, "store");
    assert_eq!(stderr(&out), "");
    let doctor = home.imgctl(&["creds", "doctor"], b"");
    assert!(stdout(&doctor).contains("age-file (chosen by auto when it was set: age-file)"), "{}", stdout(&doctor));
}

#[test]
fn migrate_and_doctor_see_credentials_in_keys_of_any_case() {
    let mut home = TestHome::new("migrate-any-case");
    let (password, token) = (home.secret("Auth-pw"), home.secret("IdentityToken"));
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("carol:{password}"))
    };
    home.remember(&auth);
    let config = home.docker_config_dir().join("config.json");
    fs::write(
        &config,
        format!(
            r#"{{"Auths":{{"reg.example.com":{{"Auth":"{auth}","Email":"c@example.com"}}}},
               "auths":{{"ghcr.io":{{"IdentityToken":"{token}"}}}}}}"#
        ),
    )
    .unwrap();
    let plaintext_check = || {
        let out = home.imgctl(&["creds", "doctor", "-o", "json"], b"");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "plaintext").unwrap().clone()
    };
    let before = plaintext_check();
    assert_eq!(before["status"], "fail", "{before}");
    assert!(before["detail"].as_str().unwrap().contains("reg.example.com, ghcr.io"), "{before}");

    let out = home.imgctl(&["creds", "migrate", "--from", "config", "--remove-source", "-o", "json"], b"");
    assert_success(&out, "migrate --from config");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["migrated"], serde_json::json!(["reg.example.com", "ghcr.io"]), "{report}");
    assert_eq!(report["removed_from_source"], 2);
    let carol = home.get("reg.example.com").unwrap();
    assert_eq!(carol["Username"], "carol");
    assert!(carol["Secret"] == password.as_str(), "reg.example.com: the store holds another secret");
    assert!(home.get("ghcr.io").unwrap()["Secret"] == token.as_str(), "ghcr.io: the store holds another secret");
    let after: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert_eq!(after["Auths"]["reg.example.com"], serde_json::json!({"Email": "c@example.com"}));
    assert_eq!(after["auths"]["ghcr.io"], serde_json::json!({}));
    assert_eq!(plaintext_check()["status"], "ok");
}

#[test]
fn configure_docker_names_the_logins_a_foreign_creds_store_keeps_and_restore_puts_it_back() {
    let mut home = TestHome::new("foreign-store");
    let stored = home.secret("stored");
    home.store("stored.example.com", "u", &stored);
    let config = home.docker_config_dir().join("config.json");
    // quay.io's login is in docker-credential-ecr-login only; gcr.io goes to its own helper
    // whatever credsStore says; imgctl holds stored.example.com already.
    fs::write(
        &config,
        r#"{"auths":{"quay.io":{},"gcr.io":{},"stored.example.com":{}},"credsStore":"ecr-login","credHelpers":{"gcr.io":"gcloud"}}"#,
    )
    .unwrap();
    let out = home.imgctl(&["creds", "configure-docker"], b"");
    assert_success(&out, "configure-docker");
    let warning = stderr(&out);
    assert!(warning.contains("docker-credential-ecr-login"), "{warning}");
    assert!(warning.contains("docker will ask for a login again for: quay.io."), "{warning}");
    assert!(warning.contains(r#"--restore puts "credsStore": "ecr-login" back"#), "{warning}");
    assert!(stdout(&out).contains("credsStore ecr-login -> imgctl"), "{}", stdout(&out));

    let restore = home.imgctl(&["creds", "configure-docker", "--restore"], b"");
    assert_success(&restore, "configure-docker --restore");
    let restored: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert_eq!(restored["credsStore"], "ecr-login");

    // With no auths to go by, the warning says so; the JSON report carries it too.
    fs::write(&config, r#"{"CredsStore":"osxkeychain"}"#).unwrap();
    let out = home.imgctl(&["creds", "configure-docker", "-o", "json"], b"");
    assert_success(&out, "configure-docker -o json");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["stranded"], serde_json::json!({"helper": "osxkeychain", "login_again": []}), "{report}");
    assert!(stderr(&out).contains("to each registry you used with it"), "{}", stderr(&out));
    assert_success(&home.imgctl(&["creds", "configure-docker", "--restore"], b""), "restore");
    let restored: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert_eq!(restored, serde_json::json!({"credsStore": "osxkeychain"}));

    // pass and secretservice are the installer's to move: no warning.
    fs::write(&config, r#"{"credsStore":"pass"}"#).unwrap();
    let out = home.imgctl(&["creds", "configure-docker"], b"");
    assert_success(&out, "configure-docker");
    assert_eq!(stderr(&out), "");
}

#[test]
fn a_relative_imgctl_config_dir_is_refused_not_resolved_against_the_working_directory() {
    let home = TestHome::new("relative-dirs");
    let elsewhere = home.dir.join("some-project");
    fs::create_dir(&elsewhere).unwrap();
    let absolute = home.dir.join("absolute").display().to_string();
    for (config, data, named) in
        [("rel-config", absolute.as_str(), "IMGCTL_CONFIG_DIR"), (absolute.as_str(), "rel-data", "IMGCTL_DATA_DIR")]
    {
        let out = common::run_with_stdin(
            home.command(common::HELPER)
                .arg("store")
                .env("IMGCTL_CONFIG_DIR", config)
                .env("IMGCTL_DATA_DIR", data)
                .current_dir(&elsewhere),
            br#"{"ServerURL":"reg.example.com","Username":"u","Secret":"not-kept"}"#,
        );
        assert!(!out.status.success(), "{named} relative was accepted: {}", stdout(&out));
        assert!(stdout(&out).contains(&format!("{named} is the relative path")), "{}", stdout(&out));
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "{named}: a store was made in the working directory");
    }
}
