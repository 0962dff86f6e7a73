//! The signature gate in front of what a deploy or a rollback starts on the Engine behind
//! nginx, under load: an unsigned digest is refused before any container starts, with 0
//! failed requests; a digest signed by the team's key (tests/it/common/cosign_signer.py, the
//! independent signer) is accepted. The swarm case is in `deploy_swarm.rs`.

use crate::common;

use std::fs;
use std::process::Command;

use common::{TestHome, assert_success, random_hex, run_with_stdin, stderr, stdout};

const SIGNER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/common/cosign_signer.py");

#[test]
fn a_deploy_and_a_rollback_of_an_unsigned_digest_are_refused_before_anything_starts() {
    use common::load::{Load, Mode};
    use common::nginx::Nginx;
    use common::web::WebImages;

    let images = WebImages::build("sig-deploy");
    let service = format!("sigdeploy{}", random_hex(3));
    let nginx = Nginx::start(&service);
    let mut home = TestHome::new("sig-deploy");
    images.login(&mut home);
    let dir = home.dir.join("app");
    fs::create_dir_all(&dir).unwrap();
    let _cleanup = Containers(service.clone());

    // v1 is signed by the team's key (the independent signer), v2 is not.
    let key = home.dir.join("team");
    let signer = |args: &[&str]| {
        let out = Command::new("/usr/bin/python3")
            .arg(SIGNER)
            .args(["--registry", &images.registry.addr, "--user", &images.user])
            .args(args)
            .env("SIGNER_PASSWORD", &images.password)
            .output()
            .unwrap();
        assert_success(&out, "cosign_signer.py");
    };
    signer(&["keygen", &key.display().to_string()]);
    signer(&["classic", "web", &images.v1.digest, "--key", &format!("{}.key", key.display())]);
    let policy = serde_json::json!({"default": [{"type": "reject"}], "transports": {"docker": {
        images.repo.clone(): [{"type": "sigstoreSigned", "keyPath": "team.pub", "signedIdentity": {"type": "matchRepository"}}]}}});
    fs::write(home.dir.join("policy.json"), policy.to_string()).unwrap();
    let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
    let compose = format!(
        "services:\n  {service}:\n    image: {repo}:v1\n    expose: [\"8080\"]\n    stop_signal: SIGKILL\n    x-imgctl:\n      verify: ../policy.json\n      health: {{path: /health, interval: 200ms, healthy_threshold: 2, deadline: 20s}}\n      keep_warm: 1s\n      drain: 500ms\n      proxy:\n        upstream_file: {upstream}\n        test: {test}\n        reload: {reload}\n        verify_url: {verify}\n",
        repo = images.repo,
        upstream = nginx.upstream_file.display(),
        test = json(nginx.test_command()),
        reload = json(nginx.reload_command()),
        verify = nginx.url("/health"),
    );
    fs::write(dir.join("compose.yaml"), compose).unwrap();
    let deploy = |digest: &str| {
        let mut command = home.command(common::IMGCTL);
        command.args(["deploy", &service, "--digest", digest]).current_dir(&dir);
        run_with_stdin(&mut command, b"")
    };

    let out = deploy(&images.v1.digest);
    assert_success(&out, "deploy signed v1");
    assert!(stderr(&out).contains("signature policy"), "{}", stderr(&out));

    let load = Load::start(nginx.addr(), "/", Mode::Close, 3);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let upstream_before = fs::read(&nginx.upstream_file).unwrap();
    let containers_before = containers(&service);
    let out = deploy(&images.v2.digest);
    let tally = load.stop();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no signature") && stderr(&out).contains(&images.v2.digest), "{}", stderr(&out));
    assert_eq!(containers(&service), containers_before, "no container was created, started or stopped");
    assert_eq!(fs::read(&nginx.upstream_file).unwrap(), upstream_before, "nginx was not touched");
    let pulled = images.docker().args(["image", "inspect", &images.v2.image]).output().unwrap();
    assert!(!pulled.status.success(), "v2 was not pulled");
    assert_eq!(tally.failed(), 0, "failed requests: {:?}", tally.errors);
    assert_eq!(tally.by_body.keys().collect::<Vec<_>>(), ["v1"]);
    assert!(tally.ok > 10, "{tally:?}");

    // v2 deployed while anything was accepted (before the policy), then a rollback to v1
    // (signed: accepted), then rollbacks back to v2, plain and with --to: refused under the
    // policy before any container starts, naming the image, the digest and why.
    fs::write(home.dir.join("anything.json"), r#"{"default": [{"type": "insecureAcceptAnything"}]}"#).unwrap();
    let mut command = home.command(common::IMGCTL);
    command.args(["deploy", &service, "--digest", &images.v2.digest, "--policy", "../anything.json"]).current_dir(&dir);
    assert_success(&run_with_stdin(&mut command, b""), "deploy v2 before the policy");
    let rollback = |extra: &[&str]| {
        let mut command = home.command(common::IMGCTL);
        command.args([&["rollback", &service][..], extra].concat()).current_dir(&dir);
        run_with_stdin(&mut command, b"")
    };
    let out = rollback(&[]);
    assert_success(&out, "rollback to signed v1");
    assert!(stderr(&out).contains("signature policy") && stderr(&out).contains(&images.v1.digest), "{}", stderr(&out));
    for extra in [&[][..], &["--to", &images.v2.digest][..]] {
        let load = Load::start(nginx.addr(), "/", Mode::Close, 3);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let upstream_before = fs::read(&nginx.upstream_file).unwrap();
        let containers_before = containers(&service);
        let out = rollback(extra);
        let tally = load.stop();
        assert_eq!(out.status.code(), Some(1), "rollback {extra:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains("no signature") && text.contains(&images.v2.digest) && text.contains(&images.repo),
            "rollback {extra:?}: {text}"
        );
        assert_eq!(containers(&service), containers_before, "rollback {extra:?}: no container started or stopped");
        assert_eq!(fs::read(&nginx.upstream_file).unwrap(), upstream_before, "rollback {extra:?}: nginx untouched");
        assert_eq!(tally.failed(), 0, "rollback {extra:?}: failed requests: {:?}", tally.errors);
        assert_eq!(tally.by_body.keys().collect::<Vec<_>>(), ["v1"], "rollback {extra:?}");
        assert!(tally.ok > 10, "{tally:?}");
    }
}

/// (id, image, state) of the service's containers.
fn containers(service: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Image}} {{.State}}",
            "--filter",
            &format!("label=imgctl.service={service}"),
        ])
        .output()
        .unwrap();
    let mut list: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    list.sort();
    list
}

/// Removes the service's containers when the test ends, however it ends.
struct Containers(String);

impl Drop for Containers {
    fn drop(&mut self) {
        for line in containers(&self.0) {
            if let Some(id) = line.split_whitespace().next() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
    }
}
