//! The helper conformance suite: the protocol as docker/cli and docker-credential-helpers speak
//! it, and right where the helpers imgctl replaces are known to be wrong. Every backend runs it
//! unchanged through [`conformance_tests!`].

use super::{TestHome, assert_success, stderr, stdout};

/// Declares one `#[test]` per conformance check, each on a home made by `$make(name)`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            store_get_list_erase_round_trip, lookups_match_the_registry_not_its_spelling,
            one_credential_per_registry_whatever_the_username,
            erase_of_a_missing_entry_exits_zero_like_docker_logout_needs,
            secrets_of_any_realistic_size_and_any_utf8, identity_tokens_pass_through_untouched,
            bad_input_is_refused_clearly_and_changes_nothing, command_line_like_docker_credential_helpers);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let mut home = ($make)(stringify!($name));
                $crate::common::conformance::$name(&mut home);
            }
        )*
    };
}

pub fn store_get_list_erase_round_trip(home: &mut TestHome) {
    let secret = home.secret("pw");
    home.store("https://registry.example.com:5000", "alice", &secret);
    let got = home.get("registry.example.com:5000").expect("stored");
    assert_eq!(got["Username"], "alice");
    assert_eq!(got["Secret"], secret.as_str());
    assert_eq!(got["ServerURL"], "registry.example.com:5000", "answered with the URL asked for");

    let list = home.helper("list", b"unused");
    assert_success(&list, "list");
    assert_eq!(stdout(&list), "{\"https://registry.example.com:5000\":\"alice\"}\n");

    assert_success(&home.helper("erase", b"https://registry.example.com:5000"), "erase");
    assert!(home.get("registry.example.com:5000").is_none());
    assert_eq!(stdout(&home.helper("list", b"unused")), "{}\n");
}

pub fn lookups_match_the_registry_not_its_spelling(home: &mut TestHome) {
    let secret = home.secret("pw");
    home.store("host:5000", "alice", &secret);
    for spelling in ["host:5000", "https://host:5000", "https://host:5000/", "http://host:5000", "HOST:5000/v2/"] {
        assert_eq!(home.get(spelling).expect(spelling)["Secret"], secret.as_str(), "{spelling}");
    }
    let hub = home.secret("hub");
    home.store("https://index.docker.io/v1/", "bob", &hub);
    for spelling in ["docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"] {
        assert_eq!(home.get(spelling).expect(spelling)["Secret"], hub.as_str(), "{spelling}");
    }
    // Any UTF-8 in a host never trips the helper (non-ASCII once made it panic).
    let idn = home.secret("idn");
    home.store("https://Bücher.example:5000/", "u", &idn);
    assert_eq!(home.get("bücher.example:5000").expect("non-ASCII host")["Secret"], idn.as_str());
    // Docker Hub's device-login tokens are entries of their own.
    assert!(home.get("https://index.docker.io/v1/access-token").is_none());
}

pub fn one_credential_per_registry_whatever_the_username(home: &mut TestHome) {
    let (first, second) = (home.secret("first"), home.secret("second"));
    home.store("ghcr.io", "alice", &first);
    home.store("https://ghcr.io", "bob", &second);
    let got = home.get("ghcr.io").unwrap();
    assert_eq!((got["Username"].as_str(), got["Secret"].as_str()), (Some("bob"), Some(second.as_str())));
    assert_eq!(stdout(&home.helper("list", b"unused")), "{\"https://ghcr.io\":\"bob\"}\n");
}

pub fn erase_of_a_missing_entry_exits_zero_like_docker_logout_needs(home: &mut TestHome) {
    let empty = home.snapshot();
    // docker logout erases addr, host, http://host and https://host; all must succeed.
    for spelling in ["127.0.0.1:5000", "http://127.0.0.1:5000", "https://127.0.0.1:5000"] {
        let out = home.helper("erase", spelling.as_bytes());
        assert_success(&out, "erase of a missing entry on an empty store");
    }
    assert_eq!(home.snapshot(), empty, "erasing nothing creates nothing");
    let secret = home.secret("pw");
    home.store("other.io", "u", &secret);
    assert_success(&home.helper("erase", b"127.0.0.1:5000"), "erase of a missing entry");
    assert!(home.get("other.io").is_some());
}

pub fn secrets_of_any_realistic_size_and_any_utf8(home: &mut TestHome) {
    for size in [64 * 1024, 512 * 1024] {
        let secret: String = format!("eyJ{}", super::random_hex(size / 2 - 2));
        home.remember(&secret);
        home.store("https://index.docker.io/v1/access-token", "alice", &secret);
        let got = home.get("https://index.docker.io/v1/access-token").unwrap();
        assert_eq!(got["Secret"].as_str().unwrap().len(), secret.len());
        assert_eq!(got["Secret"], secret.as_str());
    }
    let unicode = format!("pässwörd-密码-🔐-\"quoted\"\\-\t-{}", super::random_hex(4));
    home.remember(&unicode);
    home.store("unicode.example.com", "usér", &unicode);
    let got = home.get("unicode.example.com").unwrap();
    assert_eq!((got["Username"].as_str(), got["Secret"].as_str()), (Some("usér"), Some(unicode.as_str())));
}

pub fn identity_tokens_pass_through_untouched(home: &mut TestHome) {
    let token = home.secret("refresh-token");
    home.store("https://index.docker.io/v1/", "<token>", &token);
    let got = home.get("docker.io").unwrap();
    assert_eq!((got["Username"].as_str(), got["Secret"].as_str()), (Some("<token>"), Some(token.as_str())));
}

pub fn bad_input_is_refused_clearly_and_changes_nothing(home: &mut TestHome) {
    let secret = home.secret("pw");
    home.store("keep.example.com", "alice", &secret);
    let before = home.snapshot();
    let junk: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let huge = vec![b'{'; 8 * 1024 * 1024];
    let leaked = home.secret("LEAK");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "invalid credential JSON"),
        ("not JSON", format!("ServerURL=x Secret={leaked}").into_bytes(), "invalid credential JSON"),
        ("array", format!("[\"{leaked}\"]").into_bytes(), "not an object"),
        (
            "no ServerURL",
            format!(r#"{{"Username":"u","Secret":"{leaked}"}}"#).into_bytes(),
            "no credentials server URL",
        ),
        (
            "no Username",
            format!(r#"{{"ServerURL":"x.io","Secret":"{leaked}"}}"#).into_bytes(),
            "no credentials username",
        ),
        (
            "Secret not a string",
            br#"{"ServerURL":"x.io","Username":"u","Secret":{"a":1}}"#.to_vec(),
            "Secret must be a string",
        ),
        ("binary junk", junk, "not UTF-8"),
        ("huge body", huge, "input larger than"),
        (
            "bad server",
            format!(r#"{{"ServerURL":"a b","Username":"u","Secret":"{leaked}"}}"#).into_bytes(),
            "invalid server URL",
        ),
    ];
    for (name, input, expected) in cases {
        let out = home.helper("store", &input);
        assert_eq!(out.status.code(), Some(1), "{name}: exit status");
        let line = stdout(&out);
        assert!(line.contains(expected), "{name}: {line:?} should say {expected:?}");
        assert_eq!(line.lines().count(), 1, "{name}: the error is one line");
        assert!(!line.contains(&leaked) && !stderr(&out).contains(&leaked), "{name}: the input is echoed");
        assert_eq!(home.snapshot(), before, "{name}: the store changed");
    }
    for action in ["get", "erase"] {
        let out = home.helper(action, b"");
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stdout(&out), "no credentials server URL\n");
    }
    assert_eq!(home.get("keep.example.com").unwrap()["Secret"], secret.as_str());
}

pub fn command_line_like_docker_credential_helpers(home: &mut TestHome) {
    let usage = "Usage: docker-credential-imgctl <store|get|erase|list|version>\n";
    let none = home.command(super::HELPER).output().unwrap();
    assert_eq!((none.status.code(), stdout(&none).as_str()), (Some(1), usage));
    let two = home.command(super::HELPER).args(["get", "extra"]).output().unwrap();
    assert_eq!(two.status.code(), Some(1));
    let help = home.command(super::HELPER).arg("--help").output().unwrap();
    assert_eq!((help.status.code(), stdout(&help).as_str()), (Some(0), usage));
    let unknown = home.helper("frobnicate", b"");
    assert_eq!(stdout(&unknown), "docker-credential-imgctl: unknown action: frobnicate\n");
    assert_eq!(unknown.status.code(), Some(1));
    for flag in ["version", "--version", "-v"] {
        let out = home.helper(flag, b"");
        assert_success(&out, flag);
        assert!(stdout(&out).starts_with("docker-credential-imgctl (imgctl) "), "{flag}: {}", stdout(&out));
    }
}
