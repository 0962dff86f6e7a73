//! The CI examples in `examples/ci/`, run the way their CI runs them, with a stand-in `imgctl`
//! that records what it was given: secrets reach imgctl on stdin and are never pasted into a
//! script, an input cannot inject shell code, and a malformed digest stops the job before
//! imgctl runs.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::TestHome;

const GOOD_DIGEST: &str = "sha256:4f1e7a0c2d9b8e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";

fn example(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci").join(name);
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A stand-in `imgctl` in `dir/bin`: each call appends its arguments, one per line, to
/// `dir/imgctl-argv` and its stdin to `dir/imgctl-stdin`.
fn stand_in(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{0}/imgctl-argv'\ncat >> '{0}/imgctl-stdin'\necho '{{}}'\n",
        dir.display()
    );
    std::fs::write(bin.join("imgctl"), script).unwrap();
    std::fs::set_permissions(bin.join("imgctl"), std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// GitHub Actions pastes each `${{ expr }}` into the text before the script exists.
fn expand(text: &str, context: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        let end = rest[start..].find("}}").expect("an unterminated expression") + start;
        out.push_str(&rest[..start]);
        let expr = rest[start + 3..end].trim();
        out.push_str(context.get(expr).map(String::as_str).unwrap_or(""));
        rest = &rest[end + 2..];
    }
    out + rest
}

/// Runs the step named `name` as the runner does (`bash --noprofile --norc -eo pipefail`).
/// Returns the script as written to disk, and how it ran.
fn run_github_step(home: &TestHome, name: &str, context: &BTreeMap<&str, String>) -> (String, Output) {
    let workflow = example("github-actions.yml");
    let steps = workflow["jobs"]["promote"]["steps"].as_array().unwrap();
    let step = steps.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no step {name}"));
    let script = expand(step["run"].as_str().unwrap(), context);
    let path = home.dir.join("step.sh");
    std::fs::write(&path, &script).unwrap();
    let bin = stand_in(&home.dir);
    let mut command = Command::new("bash");
    command.args(["--noprofile", "--norc", "-eo", "pipefail"]).arg(&path).env_clear().current_dir(&home.dir);
    command.env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    if let Some(env) = step["env"].as_object() {
        for (key, value) in env {
            command.env(key, expand(value.as_str().unwrap(), context));
        }
    }
    (script, command.output().unwrap())
}

#[test]
fn github_actions_secrets_reach_imgctl_on_stdin_and_never_the_script() {
    let home = TestHome::new("ci-gha-login");
    let harbor = format!("harbor-{}", common::random_hex(12));
    let hub = format!("hub-{}", common::random_hex(12));
    let context =
        BTreeMap::from([("secrets.HARBOR_ROBOT_TOKEN", harbor.clone()), ("secrets.DOCKERHUB_TOKEN", hub.clone())]);
    let (script, out) = run_github_step(&home, "Log in (secrets on stdin only)", &context);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for secret in [&harbor, &hub] {
        assert!(!script.contains(secret.as_str()), "a secret was pasted into the generated script:\n{script}");
    }
    let argv = read(home.dir.join("imgctl-argv"));
    assert!(!argv.contains(&harbor) && !argv.contains(&hub), "a secret on imgctl's argv: {argv}");
    assert_eq!(read(home.dir.join("imgctl-stdin")), format!("{harbor}{hub}"));
}

#[test]
fn github_actions_inputs_cannot_inject_shell_and_a_bad_digest_stops_the_job() {
    let home = TestHome::new("ci-gha-inject");
    let planted = home.dir.join("injected");
    let hostile = format!("sha256:0\"; touch '{}'; echo \"", planted.display());
    let context = BTreeMap::from([("inputs.digest", hostile), ("inputs.version", "1.4.0".to_owned())]);
    let (_, out) = run_github_step(&home, "Promote", &context);
    assert!(!planted.exists(), "the digest input ran as shell code");
    assert!(!out.status.success(), "a malformed digest was accepted");
    assert_eq!(read(home.dir.join("imgctl-argv")), "", "imgctl ran with a malformed digest");

    let home = TestHome::new("ci-gha-promote");
    let context = BTreeMap::from([("inputs.digest", GOOD_DIGEST.to_owned()), ("inputs.version", "1.4.0".to_owned())]);
    let (_, out) = run_github_step(&home, "Promote", &context);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = format!(
        "promote\nharbor.example.com/staging/app@{GOOD_DIGEST}\ndocker.io/your-org/app\n--tag\n1.4.0\n--output\njson\n"
    );
    assert_eq!(read(home.dir.join("imgctl-argv")), expected);
}

/// The job's script after the install lines, as the runner runs it (one bash, errexit).
fn run_gitlab_job(home: &TestHome, digest_file: &str, token: &str) -> Output {
    let job = example("gitlab-ci.yml");
    let lines: Vec<&str> = job["promote"]["script"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let script = lines.iter().skip_while(|l| !l.starts_with("printf")).copied().collect::<Vec<_>>().join("\n");
    std::fs::write(home.dir.join("image.digest"), digest_file).unwrap();
    let bin = stand_in(&home.dir);
    Command::new("bash")
        .args(["-eo", "pipefail", "-c", &script])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HARBOR_ROBOT_TOKEN", token)
        .env("CI_COMMIT_TAG", "1.4.0")
        .current_dir(&home.dir)
        .output()
        .unwrap()
}

#[test]
fn gitlab_ci_checks_the_digest_and_keeps_the_token_on_stdin() {
    let home = TestHome::new("ci-gitlab-bad");
    let token = format!("glpat-{}", common::random_hex(12));
    let out = run_gitlab_job(&home, "latest\n", &token);
    assert!(!out.status.success(), "a digest file without a digest was accepted");
    assert!(!read(home.dir.join("imgctl-argv")).contains("promote"), "imgctl promote ran without a digest");

    let home = TestHome::new("ci-gitlab-good");
    let out = run_gitlab_job(&home, &format!("{GOOD_DIGEST}\n"), &token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let argv = read(home.dir.join("imgctl-argv"));
    assert!(!argv.contains(&token), "the token on imgctl's argv");
    assert!(
        argv.contains(&format!("harbor.example.com/staging/app@{GOOD_DIGEST}\nharbor.example.com/prod/app:1.4.0\n")),
        "{argv}"
    );
    assert_eq!(read(home.dir.join("imgctl-stdin")), token);
}
