//! `imgctl deploy | history` refusals and output that need no Docker Engine: the exit status
//! of a configuration error, and a reader that closes stdout early.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::{Output, Stdio};

use common::{IMGCTL, TestHome, stderr, stdout};

const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// A compose file for service `web` in `dir`, with `extension` added to its `x-imgctl`.
fn compose(dir: &Path, extension: &str) {
    fs::create_dir_all(dir).unwrap();
    let text = format!(
        "services:\n  web:\n    image: registry.invalid/web:v1\n    expose: [\"8080\"]\n    x-imgctl:\n      health: {{path: /health}}\n      proxy:\n        upstream_file: upstreams/web.conf\n{extension}"
    );
    fs::write(dir.join("compose.yaml"), text).unwrap();
}

fn imgctl(home: &TestHome, dir: &Path, args: &[&str]) -> Output {
    home.command(IMGCTL).args(args).current_dir(dir).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn a_compose_value_that_would_inject_nginx_directives_is_refused_with_exit_2() {
    let home = TestHome::new("deploy-inject");
    let dir = home.dir.join("app");
    // A whole server block in the upstream's name: `nginx -t` accepts the file it makes.
    let hijack = "web; } server { listen 127.0.0.1:8099; location / { proxy_pass http://198.51.100.7; } } upstream x";
    compose(&dir, &format!("        upstream: {hijack:?}\n"));
    let out = imgctl(&home, &dir, &["deploy", "web", "--digest", DIGEST]);
    assert_eq!(out.status.code(), Some(2), "{} {}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("x-imgctl.proxy.upstream is \"web; } server {"), "{}", stderr(&out));
    assert!(!dir.join("upstreams/web.conf").exists(), "nothing was written for nginx");

    compose(&dir, "        host: \"127.0.0.1:1 down;\\n    server 198.51.100.7\"\n");
    let out = imgctl(&home, &dir, &["deploy", "web", "--digest", DIGEST]);
    assert_eq!(out.status.code(), Some(2), "{} {}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("x-imgctl.proxy.host is"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    let home = TestHome::new("deploy-usage");
    let dir = home.dir.join("app");
    compose(&dir, "");
    for (args, says) in [
        (&["deploy", "web"][..], "say what to deploy"),
        (&["deploy", "web", "--digest", "sha256:abc"][..], "sha256"),
        (&["deploy", "api", "--digest", DIGEST][..], "has no service \"api\""),
        (&["history", "web", "-f", "missing.yaml"][..], "missing.yaml"),
    ] {
        let out = imgctl(&home, &dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_closed_stdout_ends_history_with_success() {
    let home = TestHome::new("deploy-epipe");
    let dir = home.dir.join("app");
    compose(&dir, "");
    for args in [&["history", "web"][..], &["history", "web", "-o", "json"][..]] {
        // The reading end is closed before imgctl starts: its first write fails with EPIPE
        // (`imgctl history web | head -1`, once head has read its line).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = home
            .command(IMGCTL)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}: nothing to say about a reader that left");
    }
}

#[test]
fn what_the_switch_state_alone_refuses_is_refused_without_docker() {
    let home = TestHome::new("deploy-nodocker");
    let dir = home.dir.join("app");
    compose(&dir, "");
    fs::create_dir_all(dir.join("upstreams")).unwrap();
    // Never deployed: no upstream file, so nothing is paused, nothing to roll back or repair.
    for (args, says) in [
        (&["deploy", "web", "--continue"][..], "no paused deploy to continue"),
        (&["deploy", "web", "--abort"][..], "no paused deploy to abort"),
        (&["rollback", "web"][..], "it was never deployed"),
        (&["deploy", "web", "--repair"][..], "no traffic state to repair"),
        (&["deploy", "web", "--digest", DIGEST, "--no-auto-promote"][..], "no live version yet"),
    ] {
        let out = home
            .command(IMGCTL)
            .args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", "unix:///nonexistent/imgctl-test/docker.sock")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("Docker Engine"), "{args:?} reached for Docker: {}", stderr(&out));
    }
}

#[test]
fn hooks_get_every_compose_file_and_env_file_as_compose_file_lists_them() {
    let home = TestHome::new("deploy-hook-files");
    let dir = home.dir.join("app");
    compose(&dir, "");
    fs::write(dir.join("prod.yaml"), "services:\n  web:\n    environment: [MODE=prod]\n").unwrap();
    fs::write(dir.join("ci.env"), "TAG=1\n").unwrap();
    fs::create_dir_all(dir.join("hooks")).unwrap();
    let seen = dir.join("seen");
    // It stops the deploy before anything is pulled or started.
    let hook = dir.join("hooks/pre-deploy");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$IMGCTL_COMPOSE_FILE\" \"$IMGCTL_COMPOSE_FILES\" \"$IMGCTL_ENV_FILES\" > {}\nexit 1\n",
            seen.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let args = ["deploy", "web", "-f", "compose.yaml", "-f", "prod.yaml", "--env-file", "ci.env", "--digest", DIGEST];
    let out = imgctl(&home, &dir, &args);
    assert_eq!(out.status.code(), Some(1), "{} {}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("the pre-deploy hook"), "{}", stdout(&out));

    let seen = fs::read_to_string(&seen).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    let at = |name: &str| dir.join(name).display().to_string();
    assert_eq!(
        lines,
        [at("compose.yaml"), format!("{}:{}", at("compose.yaml"), at("prod.yaml")), at("ci.env")],
        "IMGCTL_COMPOSE_FILE (the first), IMGCTL_COMPOSE_FILES, IMGCTL_ENV_FILES"
    );
    // The list is what COMPOSE_FILE takes: docker-compose reads both files from it.
    let config = std::process::Command::new("docker-compose")
        .args(["config"])
        .current_dir(&home.dir)
        .env("COMPOSE_FILE", lines[1])
        .output()
        .expect("docker-compose (tests/setup.sh installs it)");
    assert!(config.status.success(), "{}", stderr(&config));
    assert!(stdout(&config).contains("MODE: prod"), "{}", stdout(&config));
}
