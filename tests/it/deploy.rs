//! `imgctl deploy | rollback | status | history` against real peers: this machine's Docker
//! Engine, a `docker-registry` with htpasswd (credentials through imgctl's store), a real
//! nginx on loopback, and busybox httpd images (v1, v2, v3, and a bad one whose /health is
//! missing). A load generator sends requests through nginx for the whole of each deploy and
//! counts every non-2xx answer and socket error.
//!
//! Figures that are reported rather than asserted (keep-alive clients across an nginx reload,
//! the rollback's time) are printed; `cargo test --test deploy -- --nocapture` shows them.
#![allow(clippy::print_stderr)]

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::load::{self, Load, Mode, Tally};
use common::nginx::Nginx;
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, random_hex, stderr, stdout};

/// One service on one host: registry with the images, nginx, a HOME with the credential, a
/// compose file. Its containers are removed when it is dropped.
struct Site {
    service: String,
    images: WebImages,
    nginx: Nginx,
    home: TestHome,
    dir: PathBuf,
}

impl Site {
    fn new(name: &str) -> Self {
        let service = format!("{name}{}", random_hex(3));
        let images = WebImages::build(name);
        let nginx = Nginx::start(&service);
        let mut home = TestHome::new(name);
        images.login(&mut home);
        let dir = home.dir.join("app");
        fs::create_dir_all(dir.join("hooks")).unwrap();
        let site = Self { service, images, nginx, home, dir };
        site.compose(1, "", "");
        site
    }

    /// Writes compose.yaml: `replicas`, extra `deploy:` keys, extra `x-imgctl` keys.
    fn compose(&self, replicas: u32, deploy: &str, extension: &str) {
        let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
        let text = format!(
            r#"services:
  {service}:
    image: {repo}:v1
    expose: ["8080"]
    # busybox httpd as PID 1 ignores SIGTERM; it is out of traffic when it is stopped.
    stop_signal: SIGKILL
    deploy:
      replicas: {replicas}
{deploy}
    x-imgctl:
{health}      keep_warm: 1s
      drain: 500ms
      hooks: hooks
      proxy:
        upstream_file: {upstream}
        test: {test}
        reload: {reload}
        verify_url: {verify}
{extension}
"#,
            service = self.service,
            repo = self.images.repo,
            upstream = self.nginx.upstream_file.display(),
            test = json(self.nginx.test_command()),
            reload = json(self.nginx.reload_command()),
            verify = self.nginx.url("/health"),
            // The extension's own `health` replaces this one (a mapping holds a key once).
            health = if extension.contains("health:") {
                ""
            } else {
                "      health: {path: /health, interval: 200ms, healthy_threshold: 2, deadline: 20s}\n"
            },
        );
        fs::write(self.dir.join("compose.yaml"), text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.home.command(IMGCTL);
        command.args(args).current_dir(&self.dir).stdin(Stdio::null());
        command
    }

    fn imgctl(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn deploy(&self, digest: &str, extra: &[&str]) -> Output {
        let mut args = vec!["deploy", &self.service, "--digest", digest];
        args.extend_from_slice(extra);
        self.imgctl(&args)
    }

    fn deploy_ok(&self, digest: &str) {
        let out = self.deploy(digest, &[]);
        assert_success(&out, &format!("deploy {digest}"));
    }

    /// What nginx serves at / now.
    fn serving(&self) -> String {
        load::get(self.nginx.addr(), "/").expect("GET / through nginx").text().trim().to_owned()
    }

    fn status(&self) -> serde_json::Value {
        let out = self.imgctl(&["status", &self.service, "-o", "json"]);
        assert_success(&out, "status");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn history(&self) -> Vec<serde_json::Value> {
        let out = self.imgctl(&["history", &self.service, "-o", "json"]);
        assert_success(&out, "history");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// (name, color, state) of every container of the service, sorted.
    fn containers(&self) -> Vec<(String, String, String)> {
        let mut list: Vec<_> = self.status()["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_owned(),
                    r["color"].as_str().unwrap().to_owned(),
                    r["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        list.sort();
        list
    }

    fn count(&self, color: &str, state: &str) -> usize {
        self.containers().iter().filter(|(_, c, s)| c == color && s == state).count()
    }

    fn live(&self) -> String {
        self.status()["live"].as_str().unwrap_or_default().to_owned()
    }

    fn hook(&self, name: &str, script: &str) {
        let path = self.dir.join("hooks").join(name);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn load(&self, mode: Mode) -> Load {
        Load::start(self.nginx.addr(), "/", mode, 3)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        common::remove_service_containers(&self.service);
    }
}

/// Asserts a `Connection: close` load saw no failure and served `versions` (and only those).
fn assert_clean(tally: &Tally, versions: &[&str], what: &str) {
    assert!(tally.ok > 50, "{what}: too few requests to judge ({tally:?})");
    assert_eq!(tally.failed(), 0, "{what}: failed requests through nginx: {:?}", tally.errors);
    let seen: Vec<&str> = tally.by_body.keys().map(String::as_str).collect();
    assert_eq!(seen, versions, "{what}: versions served");
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", stdout(out), stderr(out)))
}

#[test]
fn blue_green_v1_to_v2_under_load_drops_no_request() {
    let site = Site::new("bg");
    site.compose(2, "", "");

    // A tag is refused unless --resolve pins it; the digest is what gets recorded.
    let tag = format!("{}:v1", site.images.repo);
    let out = site.imgctl(&["deploy", &site.service, "--image", &tag]);
    assert!(stderr(&out).contains("is a tag, and a tag can move"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let out = site.imgctl(&["deploy", &site.service, "--image", &tag, "--resolve", "-o", "json"]);
    assert_success(&out, "deploy --resolve");
    assert_eq!(report(&out)["digest"], site.images.v1.digest.as_str());
    assert_eq!(site.serving(), "v1");
    assert_eq!(site.live(), "blue");

    let close = site.load(Mode::Close);
    let keep_alive = site.load(Mode::KeepAlive);
    std::thread::sleep(Duration::from_millis(500));
    let out = site.deploy(&site.images.v2.digest, &["-o", "json"]);
    std::thread::sleep(Duration::from_millis(500));
    let (close, keep_alive) = (close.stop(), keep_alive.stop());
    assert_success(&out, "deploy v2");
    let result = report(&out);
    assert_eq!((result["outcome"].as_str(), result["color"].as_str()), (Some("succeeded"), Some("green")));
    assert!(result["switch_ms"].as_u64().unwrap() < 1000, "the switch took {}", result["switch_ms"]);
    assert_clean(&close, &["v1", "v2"], "Connection: close clients");
    eprintln!("keep-alive clients during blue/green: {keep_alive:?}");
    assert!(keep_alive.ok > 50 && keep_alive.by_body.contains_key("v2"), "{keep_alive:?}");

    assert_eq!(site.serving(), "v2");
    assert_eq!(site.live(), "green");
    // The old color is stopped, not removed: a rollback needs no pull.
    assert_eq!((site.count("green", "running"), site.count("blue", "exited"), site.containers().len()), (2, 2, 4));
    let history = site.history();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["digest"], site.images.v2.digest.as_str());
    assert_eq!(history[1]["previous_digest"], site.images.v1.digest.as_str());
    assert_eq!(history[1]["outcome"], "succeeded");
}

#[test]
fn a_bad_version_never_gets_traffic() {
    let site = Site::new("bad");
    site.compose(2, "", "      health: {path: /health, interval: 200ms, deadline: 4s}");
    site.deploy_ok(&site.images.v1.digest);
    let before = fs::read_to_string(&site.nginx.upstream_file).unwrap();

    let close = site.load(Mode::Close);
    let out = site.deploy(&site.images.bad.digest, &[]);
    let close = close.stop();
    assert_eq!(out.status.code(), Some(1), "{} {}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("health check failed") && stdout(&out).contains("404"), "{}", stdout(&out));
    assert!(stdout(&out).contains("traffic never left the old version"), "{}", stdout(&out));
    assert_clean(&close, &["v1"], "during a bad deploy");
    assert_eq!(fs::read_to_string(&site.nginx.upstream_file).unwrap(), before, "nginx's upstream was not touched");
    assert_eq!(site.containers().iter().filter(|(_, c, _)| c == "green").count(), 0, "the bad color was removed");
    assert_eq!(site.history().last().unwrap()["outcome"], "failed");
}

#[test]
fn rollback_after_a_good_deploy_is_instant_and_drops_nothing() {
    let site = Site::new("rb");
    site.compose(2, "", "");
    site.deploy_ok(&site.images.v1.digest);
    site.deploy_ok(&site.images.v2.digest);
    assert_eq!(site.serving(), "v2");

    let close = site.load(Mode::Close);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let out = site.imgctl(&["rollback", &site.service, "-o", "json"]);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let close = close.stop();
    assert_success(&out, "rollback");
    let result = report(&out);
    assert_eq!(result["digest"], site.images.v1.digest.as_str());
    // Instant: the stopped blue replicas are started again; nothing is pulled or created (a
    // rollback that rebuilds pulls first).
    let steps: Vec<&str> = result["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(!steps.iter().any(|s| s.starts_with("pull")), "{steps:?}");
    assert_eq!(steps.first(), Some(&"start blue x2"), "{steps:?}");
    assert!(steps.contains(&"switch") && steps.contains(&"stop green x2"), "{steps:?}");
    assert_clean(&close, &["v1", "v2"], "during the rollback");
    assert_eq!(site.serving(), "v1");
    assert_eq!(site.live(), "blue");
    eprintln!("rollback took {took:?}");
    let history = site.history();
    assert_eq!((history.last().unwrap()["action"].as_str(), history.len()), (Some("rollback"), 3));

    // Rolling forward again works the same way.
    assert_success(&site.imgctl(&["rollback", &site.service]), "roll forward");
    assert_eq!(site.serving(), "v2");
}

#[test]
fn rolling_over_four_replicas_in_both_orders() {
    let site = Site::new("roll");
    let update = |order: &str, parallelism: u32| {
        format!(
            "      update_config: {{parallelism: {parallelism}, delay: 200ms, monitor: 1s, order: {order}, failure_action: rollback}}"
        )
    };
    site.compose(4, &update("start-first", 2), "      strategy: rolling");
    site.deploy_ok(&site.images.v1.digest);
    assert_eq!(site.count("blue", "running"), 4);

    let close = site.load(Mode::Close);
    let out = site.deploy(&site.images.v2.digest, &[]);
    let close = close.stop();
    assert_success(&out, "rolling v1 -> v2, start-first, 2 at a time");
    assert_clean(&close, &["v1", "v2"], "rolling start-first");
    assert_eq!((site.count("green", "running"), site.count("blue", "exited")), (4, 4));
    let err = stderr(&out);
    assert_eq!(err.matches("switch batch").count(), 2, "two batches of two: {err}");

    site.compose(4, &update("stop-first", 1), "      strategy: rolling");
    let close = site.load(Mode::Close);
    let out = site.deploy(&site.images.v3.digest, &[]);
    let close = close.stop();
    assert_success(&out, "rolling v2 -> v3, stop-first, 1 at a time");
    assert_clean(&close, &["v2", "v3"], "rolling stop-first");
    assert_eq!(stderr(&out).matches("take out").count(), 4, "{}", stderr(&out));
    assert_eq!((site.count("blue", "running"), site.count("green", "exited")), (4, 4));
    assert_eq!(site.serving(), "v3");

    // A bad version with failure_action rollback: every replica back on v3, no failed request.
    site.compose(
        4,
        &update("start-first", 2),
        "      strategy: rolling\n      health: {path: /health, interval: 200ms, deadline: 3s}",
    );
    let close = site.load(Mode::Close);
    let out = site.deploy(&site.images.bad.digest, &[]);
    let close = close.stop();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("failure_action rollback"), "{}", stdout(&out));
    assert_clean(&close, &["v3"], "a bad rolling update");
    assert_eq!((site.count("blue", "running"), site.live()), (4, "blue".into()));
}

#[test]
fn canary_10_50_100_with_continue_and_abort() {
    let site = Site::new("can");
    let canary =
        "      strategy: canary\n      canary:\n        steps: [{weight: 10, pause: 3s}, {weight: 50, pause: forever}]";
    site.compose(2, "", canary);
    site.deploy_ok(&site.images.v1.digest);

    let close = site.load(Mode::Close);
    let out = site.deploy(&site.images.v2.digest, &["-o", "json"]);
    assert_success(&out, "canary to 50%");
    assert_eq!(report(&out)["outcome"], "paused");
    let upstream = fs::read_to_string(&site.nginx.upstream_file).unwrap();
    assert_eq!(upstream.matches("weight=1;").count(), 4, "50%: all four servers weigh the same\n{upstream}");
    let status = site.status();
    assert_eq!(status["phase"], "a canary with 50% on green");
    // At 50% both versions answer, in roughly equal shares.
    let before = close.snapshot();
    std::thread::sleep(Duration::from_secs(2));
    let after = close.snapshot();
    let share = |v: &str| after.by_body.get(v).copied().unwrap_or(0) - before.by_body.get(v).copied().unwrap_or(0);
    let (v1, v2) = (share("v1"), share("v2"));
    let ratio = v2 as f64 / (v1 + v2) as f64;
    assert!((0.3..0.7).contains(&ratio), "v2 share at 50%: {ratio} ({v1} v1, {v2} v2)");
    // A new deploy is refused while the canary waits.
    let refused = site.deploy(&site.images.v3.digest, &[]);
    assert!(stderr(&refused).contains("--continue"), "{}", stderr(&refused));
    assert_eq!(refused.status.code(), Some(3), "a deploy in flight");

    let out = site.imgctl(&["deploy", &site.service, "--continue"]);
    let close = close.stop();
    assert_success(&out, "--continue to 100%");
    assert!(stderr(&out).contains("canary 10%") || stderr(&out).contains("switch"), "{}", stderr(&out));
    assert_clean(&close, &["v1", "v2"], "canary 10 -> 50 -> 100");
    assert_eq!(site.serving(), "v2");
    assert_eq!(site.live(), "green");

    // --abort: the canary's share goes back to the stable color and the canary is removed.
    let close = site.load(Mode::Close);
    assert_success(&site.deploy(&site.images.v3.digest, &[]), "canary v3 to 50%");
    let out = site.imgctl(&["deploy", &site.service, "--abort", "-o", "json"]);
    let close = close.stop();
    assert_success(&out, "--abort");
    assert_eq!(report(&out)["outcome"], "aborted");
    assert_clean(&close, &["v2", "v3"], "canary abort");
    assert_eq!(site.serving(), "v2");
    assert_eq!(site.count("blue", "running"), 0, "the aborted canary is removed");
    let out = site.imgctl(&["deploy", &site.service, "--abort"]);
    assert!(stderr(&out).contains("no paused deploy"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(2), "nothing to abort: a usage error");
}

#[test]
fn no_auto_promote_holds_the_switch_for_a_judgement() {
    let site = Site::new("hold");
    site.deploy_ok(&site.images.v1.digest);
    let out = site.deploy(&site.images.v2.digest, &["--no-auto-promote"]);
    assert_success(&out, "deploy --no-auto-promote");
    assert!(stdout(&out).contains("paused") && stdout(&out).contains("--continue"), "{}", stdout(&out));
    assert_eq!(site.serving(), "v1", "no traffic moved");
    assert_eq!(site.count("green", "running"), 1, "the new color runs, healthy and idle");
    assert_success(&site.imgctl(&["deploy", &site.service, "--continue"]), "--continue");
    assert_eq!(site.serving(), "v2");
}

#[test]
fn hooks_gate_the_switch_and_a_failed_post_switch_moves_traffic_back() {
    let site = Site::new("hook");
    // The notifier writes where IMGCTL_NOTIFY_FILE says: hooks get it only when passed.
    site.compose(1, "", "      pass_env: [IMGCTL_NOTIFY_FILE]");
    // The repository's sample hooks, as a user would copy them.
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks");
    for name in ["pre-switch", "post-deploy"] {
        fs::copy(samples.join(name), site.dir.join("hooks").join(name)).unwrap();
    }
    let notify_log = site.dir.join("deploys.log");
    let mut command = site.command(&["deploy", &site.service, "--digest", &site.images.v1.digest]);
    let out = command.env("IMGCTL_NOTIFY_FILE", &notify_log).output().unwrap();
    assert_success(&out, "deploy with the sample hooks");
    assert!(stderr(&out).contains("hook pre-switch"), "{}", stderr(&out));
    let log = fs::read_to_string(&notify_log).unwrap();
    assert!(log.contains(&site.service) && log.contains(&site.images.v1.digest) && log.contains("succeeded"), "{log}");

    // A pre-switch smoke test that fails: aborted, traffic never moves.
    site.hook(
        "pre-switch",
        "#!/bin/sh\necho \"smoke test of $IMGCTL_NEW_COLOR at $IMGCTL_NEW_ADDRS failed\"\nexit 1\n",
    );
    let out = site.deploy(&site.images.v2.digest, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("the pre-switch hook") && stdout(&out).contains("exit status: 1"),
        "{}",
        stdout(&out)
    );
    // What the hook printed is for the person watching (stderr), not for the report.
    assert!(stderr(&out).contains("smoke test of green at 127.0.0.1:"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("smoke test of"), "{}", stdout(&out));
    assert_eq!(site.serving(), "v1");
    assert_eq!(site.count("green", "running"), 0);

    // A post-switch check that fails: traffic returns to blue, on-rollback runs.
    fs::remove_file(site.dir.join("hooks/pre-switch")).unwrap();
    site.hook("post-switch", "#!/bin/sh\necho error rate too high\nexit 2\n");
    site.hook(
        "on-rollback",
        &format!("#!/bin/sh\necho \"$IMGCTL_REASON\" > {}\n", site.dir.join("rolled-back").display()),
    );
    let close = site.load(Mode::Close);
    let out = site.deploy(&site.images.v2.digest, &[]);
    let close = close.stop();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("traffic is back on blue"), "{}", stdout(&out));
    let reason = fs::read_to_string(site.dir.join("rolled-back")).unwrap();
    assert!(reason.contains("the post-switch hook") && reason.contains("exit status: 2"), "IMGCTL_REASON: {reason}");
    assert!(!reason.contains("error rate too high"), "a hook's output is not the next hook's input: {reason}");
    assert_eq!(close.failed(), 0, "{:?}", close.errors);
    assert_eq!(site.serving(), "v1");
    assert_eq!(site.live(), "blue");
}

#[test]
fn hooks_get_no_imgctl_secret_and_their_output_stays_out_of_the_history() {
    let mut site = Site::new("hookenv");
    site.compose(1, "", "      pass_env: [SMOKE_PATHS]");
    let passphrase = site.home.secret("passphrase");
    let auth_config = format!(r#"{{"auths": {{"registry.invalid": {{"auth": "{}"}}}}}}"#, site.home.secret("auth"));
    let printed = site.home.secret("token");
    let dump = site.dir.join("pre-deploy.env");
    site.hook(
        "pre-deploy",
        // The token is put together when the hook runs: the script itself must not hold it.
        &format!(
            "#!/bin/sh\nenv | grep -v '^_=' | cut -d= -f1 > {}\nprintf 'GITHUB_TOKEN=%s%s\\n' '{}' '{}'\nexit 1\n",
            dump.display(),
            &printed[..4],
            &printed[4..]
        ),
    );
    let out = site
        .command(&["deploy", &site.service, "--digest", &site.images.v1.digest])
        .env("IMGCTL_PASSPHRASE", &passphrase)
        .env("DOCKER_AUTH_CONFIG", &auth_config)
        .env("SMOKE_PATHS", "/health")
        .env("CI_JOB_TOKEN", "not-passed")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{} {}", stdout(&out), stderr(&out));

    let mut names: Vec<String> = fs::read_to_string(&dump).unwrap().lines().map(str::to_owned).collect();
    names.sort();
    assert!(!names.iter().any(|n| n == "IMGCTL_PASSPHRASE" || n == "DOCKER_AUTH_CONFIG"), "{names:?}");
    assert!(!names.iter().any(|n| n == "CI_JOB_TOKEN" || n == "DOCKER_CONFIG"), "not on the allow-list: {names:?}");
    for expected in ["SMOKE_PATHS", "PATH", "HOME", "LANG", "IMGCTL_SERVICE", "IMGCTL_DIGEST", "IMGCTL_REASON"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing: {names:?}");
    }

    // The report says the hook failed and how; the output went to the terminal only.
    assert!(
        stdout(&out).contains("the pre-deploy hook") && stdout(&out).contains("exit status: 1"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains(&printed), "{}", stdout(&out));
    assert!(stderr(&out).contains(&format!("pre-deploy: GITHUB_TOKEN={printed}")), "{}", stderr(&out));
    let history = site.history();
    assert_eq!(history.last().unwrap()["outcome"], "failed");
    assert!(!serde_json::to_string(&history).unwrap().contains(&printed), "{history:?}");
    // And no file under HOME (the history, the lock) holds any of the three: TestHome's drop
    // checks every file.
}

#[test]
fn a_deploy_killed_mid_way_is_reconciled_by_the_next_and_two_at_once_are_refused() {
    let site = Site::new("kill");
    site.compose(2, "", "");
    site.deploy_ok(&site.images.v1.digest);

    // The pre-switch hook marks that green is up and healthy, then waits: the kill lands
    // between the health gate and the switch.
    let marker = site.dir.join("green-up");
    site.hook("pre-switch", &format!("#!/bin/sh\ntouch {}\nexec sleep 30\n", marker.display()));
    let close = site.load(Mode::Close);
    let mut first = site
        .command(&["deploy", &site.service, "--digest", &site.images.v2.digest])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the deploy never reached its pre-switch hook");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Meanwhile a second deploy is refused and told who holds the lock.
    let second = site.deploy(&site.images.v3.digest, &[]);
    assert_eq!(second.status.code(), Some(3), "the lock is held: {}", stdout(&second));
    let err = stderr(&second);
    assert!(
        err.contains("locked by another run") && err.contains(&format!("deploy {}", site.images.v2.digest)),
        "{err}"
    );
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");

    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert_eq!(site.count("green", "running"), 2, "the killed run left its green replicas behind");
    assert_eq!(site.serving(), "v1");

    fs::remove_file(site.dir.join("hooks/pre-switch")).unwrap();
    let out = site.deploy(&site.images.v2.digest, &[]);
    let close = close.stop();
    assert_success(&out, "the deploy after the kill");
    let err = stderr(&out);
    assert!(err.contains("took over the lock of a run that died"), "{err}");
    assert!(err.contains("2 idle or orphaned container(s) removed"), "{err}");
    assert_clean(&close, &["v1", "v2"], "a killed deploy and its rerun");
    assert_eq!(site.serving(), "v2");
    // No orphans: green runs v2, blue is the stopped previous version, nothing else.
    let containers = site.containers();
    assert_eq!(containers.len(), 4, "{containers:?}");
    assert_eq!((site.count("green", "running"), site.count("blue", "exited")), (2, 2));
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let site = Site::new("dry");
    site.deploy_ok(&site.images.v1.digest);
    let before = fs::read_to_string(&site.nginx.upstream_file).unwrap();
    let out = site.deploy(&site.images.v2.digest, &["--dry-run"]);
    assert_success(&out, "--dry-run");
    let plan = stdout(&out);
    for step in ["pull", "start green x1", "health gate", "switch", "keep blue warm"] {
        assert!(plan.contains(step), "{step} missing from:\n{plan}");
    }
    assert_eq!(fs::read_to_string(&site.nginx.upstream_file).unwrap(), before);
    assert_eq!(site.containers().len(), 1);
    assert_eq!(site.history().len(), 1);
}

#[test]
fn the_compose_healthcheck_can_be_the_gate() {
    let site = Site::new("hc");
    site.compose(2, "", "");
    // No health.path: docker's own health status, from the compose healthcheck, is the gate.
    let path = site.dir.join("compose.yaml");
    let text = fs::read_to_string(&path).unwrap();
    let text = text.replace("health: {path: /health, interval: 200ms,", "health: {interval: 200ms,").replace(
        "    deploy:\n",
        "    healthcheck:\n      test: [\"CMD\", \"/bin/busybox\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8080/health\"]\n      interval: 1s\n      timeout: 1s\n      retries: 2\n    deploy:\n",
    );
    fs::write(&path, text).unwrap();

    site.deploy_ok(&site.images.v1.digest);
    let status = site.status();
    let healths: Vec<_> =
        status["replicas"].as_array().unwrap().iter().map(|r| r["health"].as_str().unwrap().to_owned()).collect();
    assert_eq!(healths, ["healthy", "healthy"], "docker ran the compose healthcheck");

    let close = site.load(Mode::Close);
    let out = site.deploy(&site.images.bad.digest, &[]);
    let close = close.stop();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("unhealthy by its compose healthcheck"), "{}", stdout(&out));
    assert_clean(&close, &["v1"], "a bad version gated by the compose healthcheck");
    assert_eq!(site.serving(), "v1");
}

/// The host port a running replica publishes now, by `docker port`.
fn published_port(container: &str) -> Option<String> {
    let out = Command::new("docker").args(["port", container, "8080/tcp"]).output().ok()?;
    stdout(&out).lines().next().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty())
}

#[test]
fn a_restarted_replica_gets_a_new_port_and_repair_points_nginx_at_it() {
    let site = Site::new("rst");
    site.deploy_ok(&site.images.v1.digest);
    assert_eq!(site.serving(), "v1");
    let name = format!("{}-blue-1", site.service);
    let before = published_port(&name).expect("the replica publishes its port");

    // docker restart (as a reboot or a restart policy would) under load: a new host port.
    let broken = site.load(Mode::Close);
    let mut after = before.clone();
    for _ in 0..3 {
        assert!(Command::new("docker").args(["restart", "-t", "0", &name]).status().unwrap().success());
        after = published_port(&name).expect("the restarted replica publishes its port");
        if after != before {
            break;
        }
    }
    assert_ne!(after, before, "docker gave the restarted container the same port three times");
    std::thread::sleep(Duration::from_millis(500));
    let status = site.status();
    let replica = &status["replicas"][0];
    assert_eq!((replica["name"].as_str(), replica["stale"].as_bool()), (Some(name.as_str()), Some(true)), "{status}");
    assert!(
        load::get(site.nginx.addr(), "/").map(|r| r.status != 200).unwrap_or(true),
        "nginx still reaches the old port?"
    );

    // One command: traffic recovers, and status no longer flags the replica.
    let out = site.imgctl(&["deploy", &site.service, "--repair", "-o", "json"]);
    assert_success(&out, "deploy --repair");
    let steps: Vec<String> =
        report(&out)["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap().to_owned()).collect();
    assert!(steps.contains(&"re-point".to_owned()), "{steps:?}");
    let broken = broken.stop();
    assert!(broken.failed() > 0, "the load saw the stale port: {broken:?}");
    // `nginx -s reload` returns before the old workers stop taking connections.
    std::thread::sleep(Duration::from_millis(1000));
    let clean = site.load(Mode::Close);
    std::thread::sleep(Duration::from_millis(1500));
    assert_clean(&clean.stop(), &["v1"], "after --repair");
    assert_eq!(site.status()["replicas"][0]["stale"], false);
    assert_eq!(site.history().last().unwrap()["action"], "repair");
}
