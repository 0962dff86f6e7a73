//! Which credential goes to a registry, resolved as docker resolves it, with real helpers:
//! DOCKER_AUTH_CONFIG, then credHelpers (docker-credential-pass run as a process), then
//! credsStore (imgctl's own store, read directly), then plaintext auths; a miss is anonymous.

use crate::common;

use std::fs;

use common::pass::PassStore;
use common::{TestHome, assert_success, stderr};

fn which(home: &TestHome, pass: &PassStore, registry: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let out = pass
        .command(home, common::IMGCTL)
        .args(["creds", "which", registry, "-o", "json"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_success(&out, "imgctl creds which");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn resolution_order_matches_docker() {
    let mut home = TestHome::new("which");
    let pass = PassStore::new(&home);
    let (in_pass, in_imgctl, token) = (home.secret("in-pass"), home.secret("in-imgctl"), home.secret("id-token"));
    pass.store(&home, "helper.example.com:5000", "pass-user", &in_pass);
    home.store("store.example.com", "store-user", &in_imgctl);
    home.store("https://index.docker.io/v1/", "<token>", &token);
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode("plain-user:plain-pw")
    };
    let config = home.docker_config_dir().join("config.json");
    fs::write(
        &config,
        format!(
            r#"{{"credHelpers":{{"helper.example.com:5000":"pass","broken.example.com":"nonexistent"}},"credsStore":"imgctl",
                "auths":{{"plain.example.com":{{"auth":"{auth}"}}}}}}"#
        ),
    )
    .unwrap();

    let got = which(&home, &pass, "helper.example.com:5000", &[]);
    assert_eq!((got["kind"].as_str(), got["username"].as_str()), (Some("basic"), Some("pass-user")), "{got}");
    assert_eq!(got["source"], serde_json::json!({"kind": "cred-helper", "name": "pass"}));

    let got = which(&home, &pass, "store.example.com", &[]);
    assert_eq!((got["kind"].as_str(), got["username"].as_str()), (Some("basic"), Some("store-user")), "{got}");
    assert_eq!(got["source"], serde_json::json!({"kind": "creds-store", "name": "imgctl"}));

    let got = which(&home, &pass, "docker.io", &[]);
    assert_eq!(
        (got["kind"].as_str(), got["server_url"].as_str()),
        (Some("identity-token"), Some("https://index.docker.io/v1/"))
    );

    // With a credsStore, docker never reads plaintext auths: a miss there is anonymous.
    let got = which(&home, &pass, "plain.example.com", &[]);
    assert_eq!(got["kind"], "anonymous", "{got}");

    // DOCKER_AUTH_CONFIG comes first for the registries it lists.
    let env_config = format!(r#"{{"auths":{{"https://store.example.com":{{"auth":"{auth}"}}}}}}"#);
    let got = which(&home, &pass, "store.example.com", &[("DOCKER_AUTH_CONFIG", &env_config)]);
    assert_eq!((got["username"].as_str(), got["source"]["kind"].as_str()), (Some("plain-user"), Some("environment")));

    // A helper that cannot run is an error that names it, not a silent anonymous pull.
    let broken = pass.command(&home, common::IMGCTL).args(["creds", "which", "broken.example.com"]).output().unwrap();
    assert_eq!(broken.status.code(), Some(1));
    assert!(stderr(&broken).contains("docker-credential-nonexistent"), "{}", stderr(&broken));

    // Without a credsStore, plaintext auths serve.
    fs::write(&config, format!(r#"{{"auths":{{"https://plain.example.com/":{{"auth":"{auth}"}}}}}}"#)).unwrap();
    let got = which(&home, &pass, "plain.example.com", &[]);
    assert_eq!((got["username"].as_str(), got["source"]["kind"].as_str()), (Some("plain-user"), Some("config-file")));
}

#[test]
fn credentials_in_keys_of_any_case_resolve_as_docker_resolves_them() {
    let mut home = TestHome::new("which-any-case");
    let in_imgctl = home.secret("in-imgctl");
    home.store("store.example.com", "store-user", &in_imgctl);
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode("plain-user:plain-pw")
    };
    let which = |registry: &str| {
        let out = home.imgctl(&["creds", "which", registry, "-o", "json"], b"");
        assert_success(&out, "imgctl creds which");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let config = home.docker_config_dir().join("config.json");
    fs::write(&config, format!(r#"{{"Auths":{{"plain.example.com":{{"Auth":"{auth}"}}}}}}"#)).unwrap();
    let got = which("plain.example.com");
    assert_eq!((got["username"].as_str(), got["source"]["kind"].as_str()), (Some("plain-user"), Some("config-file")));

    // CredsStore is docker's credsStore: plaintext auths are no longer read.
    fs::write(&config, format!(r#"{{"CredsStore":"imgctl","AUTHS":{{"plain.example.com":{{"AUTH":"{auth}"}}}}}}"#))
        .unwrap();
    let got = which("store.example.com");
    assert_eq!((got["username"].as_str(), got["source"]["kind"].as_str()), (Some("store-user"), Some("creds-store")));
    assert_eq!(which("plain.example.com")["kind"], "anonymous");
}
