//! The real docker CLI and Docker Engine with `"credsStore": "imgctl"` against a real
//! docker-registry with htpasswd auth on loopback: login stores through the helper, push and
//! pull authenticate through it, logout erases, and config.json never holds an `auth` field.

use crate::common;

use std::fs;

use common::busybox::TestImage;
use common::registry::Registry;
use common::{TestHome, assert_success, require, run_with_stdin, stderr, stdout};

fn docker(home: &TestHome, args: &[&str], stdin: &[u8]) -> std::process::Output {
    run_with_stdin(home.command("docker").args(args), stdin)
}

#[test]
fn docker_login_push_pull_logout_through_the_helper() {
    require("docker", "docker.io");
    let mut home = TestHome::new("docker-cli");
    let password = home.secret("registry-pw");
    let registry = Registry::start_htpasswd("ci-robot", &password);
    fs::write(home.docker_config_dir().join("config.json"), r#"{"credsStore":"imgctl","psFormat":"table {{.ID}}"}"#)
        .unwrap();

    let login =
        docker(&home, &["login", &registry.addr, "--username", "ci-robot", "--password-stdin"], password.as_bytes());
    assert_success(&login, "docker login");
    let stored = home.get(&registry.addr).expect("docker login stored through the helper");
    assert_eq!((stored["Username"].as_str(), stored["Secret"].as_str()), (Some("ci-robot"), Some(password.as_str())));
    assert_no_auth_field(&home);

    let local = format!("imgctl-test/busybox:{}", common::random_hex(4));
    let remote = format!("{}/imgctl-test/busybox:1", registry.addr);
    let mut image = TestImage::import(&local);
    image.tags.push(remote.clone());
    assert_success(&docker(&home, &["tag", &local, &remote], b""), "docker tag");
    assert_success(&docker(&home, &["push", &remote], b""), "docker push");
    assert_success(&docker(&home, &["rmi", &remote], b""), "docker rmi");
    assert_success(&docker(&home, &["pull", &remote], b""), "docker pull");
    assert_no_auth_field(&home);

    let logout = docker(&home, &["logout", &registry.addr], b"");
    assert_success(&logout, "docker logout");
    assert!(!stderr(&logout).contains("WARNING"), "logout warned: {}", stderr(&logout));
    assert!(home.get(&registry.addr).is_none(), "docker logout erased through the helper");
    assert_eq!(stdout(&home.helper("list", b"unused")), "{}\n");

    // Without the credential the registry refuses: the pull above really used the helper.
    assert_success(&docker(&home, &["rmi", &remote], b""), "docker rmi");
    let anonymous = docker(&home, &["pull", &remote], b"");
    assert!(!anonymous.status.success(), "an anonymous pull succeeded; was auth ever needed?");
    let config = fs::read_to_string(home.docker_config_dir().join("config.json")).unwrap();
    assert!(config.contains("psFormat"), "docker kept other keys: {config}");
}

fn assert_no_auth_field(home: &TestHome) {
    let text = fs::read_to_string(home.docker_config_dir().join("config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(config["credsStore"], "imgctl");
    if let Some(auths) = config["auths"].as_object() {
        for (server, entry) in auths {
            assert!(
                entry.get("auth").is_none() && entry.get("password").is_none(),
                "{server} has a plaintext field: {text}"
            );
        }
    }
}
