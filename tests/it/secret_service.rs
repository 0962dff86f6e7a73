//! The Secret Service backend against a real gnome-keyring-daemon: the helper conformance suite
//! unchanged, interop both ways with docker-credential-secretservice, a locked collection and a
//! missing bus (clear errors, no prompt, no hang; `auto` falls back), and migration of the old
//! helper's items into the age file store.

use crate::common;

use std::time::{Duration, Instant};

use common::{TestHome, assert_success, require, run_with_stdin, stderr, stdout};

mod conformance {
    crate::conformance_tests!(crate::common::TestHome::with_keyring);
}

/// Runs docker-credential-secretservice (the helper being replaced) against the same keyring.
fn old_helper(home: &TestHome, action: &str, input: &[u8]) -> std::process::Output {
    let program = require("docker-credential-secretservice", "golang-docker-credential-helpers");
    run_with_stdin(home.command(program).arg(action), input)
}

#[test]
fn credentials_saved_by_either_helper_are_served_by_the_other() {
    let mut home = TestHome::with_keyring("ss-interop");
    let theirs = home.secret("saved-by-secretservice");
    let request =
        serde_json::json!({"ServerURL": "https://old.example.com:5000", "Username": "alice", "Secret": theirs});
    assert_success(&old_helper(&home, "store", request.to_string().as_bytes()), "old helper store");
    // imgctl finds it under any spelling.
    for spelling in ["old.example.com:5000", "https://old.example.com:5000/"] {
        let got = home.get(spelling).expect(spelling);
        assert_eq!((got["Username"].as_str(), got["Secret"].as_str()), (Some("alice"), Some(theirs.as_str())));
    }
    // list reports server URLs, where the old helper reports item labels.
    assert_eq!(stdout(&home.helper("list", b"unused")), "{\"https://old.example.com:5000\":\"alice\"}\n");

    let ours = home.secret("saved-by-imgctl");
    home.store("new.example.com", "bob", &ours);
    let got = old_helper(&home, "get", b"new.example.com");
    assert_success(&got, "old helper get");
    let got: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!((got["Username"].as_str(), got["Secret"].as_str()), (Some("bob"), Some(ours.as_str())));

    // The old helper's erase removes what imgctl stored, and the other way round.
    assert_success(&old_helper(&home, "erase", b"new.example.com"), "old helper erase");
    assert!(home.get("new.example.com").is_none());
    assert_success(&home.helper("erase", b"old.example.com:5000"), "imgctl erase");
    assert_eq!(stdout(&old_helper(&home, "list", b"unused")).trim(), "{}");
}

#[test]
fn a_locked_collection_is_a_clear_error_without_a_prompt() {
    let mut home = TestHome::with_keyring("ss-locked");
    let secret = home.secret("locked-pw");
    home.store("locked.example.com", "alice", &secret);
    home.keyring.as_ref().unwrap().lock();
    for (action, input) in
        [("get", b"locked.example.com".as_slice()), ("store", br#"{"ServerURL":"x.io","Username":"u","Secret":"s"}"#)]
    {
        let started = Instant::now();
        let out = home.helper(action, input);
        assert!(started.elapsed() < Duration::from_secs(3), "{action} hung for {:?}", started.elapsed());
        assert_eq!(out.status.code(), Some(1), "{action}");
        assert!(stdout(&out).contains("is locked and imgctl does not prompt"), "{action}: {}", stdout(&out));
        assert!(stdout(&out).contains("gnome-keyring-daemon --unlock"), "{action} says how to fix it");
    }
    // auto falls back to the age file and says so on stderr.
    let fallback = run_with_stdin(
        home.command(common::HELPER).arg("store").env("IMGCTL_BACKEND", "auto"),
        br#"{"ServerURL":"fallback.example.com","Username":"u","Secret":"s"}"#,
    );
    assert_success(&fallback, "store under auto with a locked keyring");
    assert!(stderr(&fallback).contains("using the age-encrypted file because"), "{}", stderr(&fallback));
    assert!(home.store_file().exists());
}

#[test]
fn no_bus_or_no_daemon_is_a_clear_error_and_auto_falls_back() {
    let home = TestHome::new("ss-nobus");
    let empty_bus = common::keyring::Keyring::bus_only(&home.dir);
    let empty_bus_address = empty_bus.env()[0].1.clone();
    for bus in [None, Some("unix:path=/nonexistent/imgctl-test-bus"), Some(empty_bus_address.as_str())] {
        let mut command = home.command(common::HELPER);
        command.arg("get").env("IMGCTL_BACKEND", "secret-service");
        if let Some(bus) = bus {
            command.env("DBUS_SESSION_BUS_ADDRESS", bus);
        }
        let started = Instant::now();
        let out = run_with_stdin(&mut command, b"ghcr.io");
        assert!(started.elapsed() < Duration::from_secs(3), "hung for {:?}", started.elapsed());
        assert_eq!(out.status.code(), Some(1));
        let line = stdout(&out);
        assert!(line.starts_with("the Secret Service is unavailable:"), "{line}");
        assert!(line.contains("imgctl creds backend age-file"), "says how to fix it: {line}");
    }
    let auto = run_with_stdin(
        home.command(common::IMGCTL).args(["creds", "backend", "-o", "json"]).env("IMGCTL_BACKEND", "auto"),
        b"",
    );
    let shown: serde_json::Value = serde_json::from_slice(&auto.stdout).unwrap();
    assert_eq!((shown["choice"].as_str(), shown["serving"].as_str()), (Some("auto"), Some("age-file")));
    assert!(shown["fallback"].as_str().unwrap().contains("no D-Bus session bus"));
}

#[test]
fn migrate_secretservice_items_into_the_age_file_store() {
    let mut home = TestHome::with_keyring("ss-migrate");
    let secrets: Vec<String> = (0..3).map(|i| home.secret(&format!("migrate{i}"))).collect();
    for (i, secret) in secrets.iter().enumerate() {
        let request = serde_json::json!({"ServerURL": format!("https://r{i}.example.com"), "Username": format!("user{i}"), "Secret": secret});
        assert_success(&old_helper(&home, "store", request.to_string().as_bytes()), "old helper store");
    }
    let migrate = |args: &[&str]| {
        let out = run_with_stdin(
            home.command(common::IMGCTL)
                .args(["creds", "migrate", "--from", "secretservice", "-o", "json"])
                .args(args)
                .env("IMGCTL_BACKEND", "age-file"),
            b"",
        );
        assert_success(&out, "migrate");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let dry = migrate(&["--dry-run"]);
    assert_eq!(dry["migrated"].as_array().unwrap().len(), 3);
    assert!(!home.store_file().exists(), "a dry run writes nothing");

    let first = migrate(&[]);
    assert_eq!((first["migrated"].as_array().unwrap().len(), first["removed_from_source"].as_u64()), (3, Some(0)));
    let again = migrate(&["--remove-source"]);
    assert_eq!(again["migrated"].as_array().unwrap().len(), 0, "idempotent");
    assert_eq!(again["unchanged"].as_array().unwrap().len(), 3);
    assert_eq!(again["removed_from_source"].as_u64(), Some(3));
    assert_eq!(stdout(&old_helper(&home, "list", b"unused")).trim(), "{}", "the source was cleaned");

    for (i, secret) in secrets.iter().enumerate() {
        let out = run_with_stdin(
            home.command(common::HELPER).arg("get").env("IMGCTL_BACKEND", "age-file"),
            format!("r{i}.example.com").as_bytes(),
        );
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (got["Username"].as_str(), got["Secret"].as_str()),
            (Some(format!("user{i}").as_str()), Some(secret.as_str()))
        );
    }
}

/// gnome-keyring-daemon aborts when a client's OpenSession is handled before the daemon has
/// registered that client; a helper whose first message was OpenSession brought it down
/// in one of two runs of 4,000 concurrent `get`s (bench/keyring-race.sh). Clients that come and go
/// from four threads at once must leave it running and be answered every time.
#[test]
fn concurrent_helpers_never_bring_the_keyring_down() {
    let mut home = TestHome::with_keyring("ss-race");
    let secret = home.secret("race-pw");
    home.store("race.example.com", "alice", &secret);
    let home = &home;
    let failures: Vec<String> = std::thread::scope(|scope| {
        let loops: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    (0..1000)
                        .map(|_| home.helper("get", b"race.example.com"))
                        .filter(|out| !stdout(out).contains(secret.as_str()))
                        .map(|out| stdout(&out))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        loops.into_iter().flat_map(|handle| handle.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{} of 4000 gets failed, the first: {:?}", failures.len(), failures.first());
    // The daemon's survival is asserted when `home` is dropped, as in every keyring test.
}
