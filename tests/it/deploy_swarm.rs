//! `imgctl deploy` with `x-imgctl.target: swarm` against a real single-node swarm on this
//! machine's engine (loopback-only; left as it was found), busybox images pulled from an
//! htpasswd registry with the credential from imgctl's store, and nginx in a container on the
//! swarm's overlay network. A load generator counts every failed request through nginx.
#![allow(clippy::print_stderr)] // figures reported as measured

use crate::common;

use std::fs;
use std::process::{Output, Stdio};

use common::load::{self, Load, Mode, Tally};
use common::nginx_container::{NginxContainer, ProxyImage, Resolution};
use common::swarm::Swarm;
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, stderr, stdout};

/// A swarm service deployed by imgctl behind nginx. Fields drop in declaration order: nginx
/// before the swarm whose network it is on, the swarm (and its services) before the images.
struct SwarmSite {
    nginx: NginxContainer,
    _proxy: ProxyImage,
    swarm: Swarm,
    home: TestHome,
    images: WebImages,
    service: String,
}

impl SwarmSite {
    fn new(name: &str, resolution: Resolution) -> Self {
        let images = WebImages::build(name);
        let swarm = Swarm::start();
        let service = swarm.service_name(name);
        for color in ["blue", "green"] {
            swarm.track(&format!("{service}-{color}"));
        }
        let proxy = ProxyImage::build();
        // An nginx variable name (per-request mode) allows no dashes: the upstream is "web".
        let nginx = NginxContainer::start(&swarm, &proxy, "web", resolution);
        let mut home = TestHome::new(name);
        images.login(&mut home);
        Self { nginx, _proxy: proxy, swarm, home, images, service }
    }

    fn compose(&self, strategy: &str, order: &str) {
        let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
        let text = format!(
            r#"services:
  {service}:
    image: {repo}:v1
    expose: ["8080"]
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 1s
      retries: 2
    stop_grace_period: 2s
    deploy:
      replicas: 4
      update_config: {{parallelism: 2, delay: 0s, monitor: 3s, order: {order}, failure_action: rollback}}
    x-imgctl:
      target: swarm
      strategy: {strategy}
      swarm: {{network: {network}, converge_timeout: 120s}}
      health: {{deadline: 90s}}
      keep_warm: 1s
      drain: 1s
      proxy:
        upstream: web
        upstream_file: {upstream}
        test: {test}
        reload: {reload}
        verify_url: http://{addr}/health
"#,
            service = self.service,
            repo = self.images.repo,
            network = self.swarm.network,
            upstream = self.nginx.upstream_file().display(),
            test = json(self.nginx.test_command()),
            reload = json(self.nginx.reload_command()),
            addr = self.nginx.addr(),
        );
        fs::write(self.home.dir.join("compose.yaml"), text).unwrap();
    }

    fn imgctl(&self, args: &[&str]) -> Output {
        let mut command = self.home.command(IMGCTL);
        command.args(args).current_dir(&self.home.dir).stdin(Stdio::null());
        command.output().unwrap()
    }

    fn deploy(&self, digest: &str) -> Output {
        self.imgctl(&["deploy", &self.service, "--digest", digest, "-o", "json"])
    }

    fn load(&self) -> Load {
        Load::start(self.nginx.addr(), "/", Mode::Close, 3)
    }

    fn serving(&self) -> String {
        load::get(self.nginx.addr(), "/").map(|r| r.text().trim().to_owned()).unwrap_or_default()
    }

    /// The images the service's running tasks run.
    fn running(&self, service: &str) -> Vec<String> {
        let mut images = self.swarm.running_images(service);
        images.sort();
        images.dedup();
        images
    }
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", stdout(out), stderr(out)))
}

fn assert_clean(tally: &Tally, what: &str) {
    assert!(tally.ok > 20, "{what}: too few requests to judge ({tally:?})");
    assert_eq!(tally.failed(), 0, "{what}: failed requests through nginx: {:?}", tally.errors);
}

#[test]
fn swarm_rolling_update_good_bad_stop_first_and_rollback() {
    // nginx resolves tasks.SERVICE per request: swarm replaces tasks without a reload.
    let site = SwarmSite::new("swroll", Resolution::PerRequest);
    site.compose("rolling", "start-first");
    site.nginx.switch_to(&format!("tasks.{}:8080", site.service));

    let out = site.deploy(&site.images.v1.digest);
    assert_success(&out, "create the swarm service at v1");
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v1.image));
    assert!(stderr(&out).contains("service create"), "{}", stderr(&out));

    let close = site.load();
    let out = site.deploy(&site.images.v2.digest);
    let tally = close.stop();
    assert_success(&out, "rolling update to v2, start-first");
    assert!(stderr(&out).contains("updating"), "progress follows UpdateStatus: {}", stderr(&out));
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v2.image), "converged on the digest");
    assert_clean(&tally, "swarm rolling start-first");
    eprintln!("swarm start-first v1 -> v2: {tally:?}");

    // A bad version: swarm's failure_action rollback ends in rollback_completed; imgctl exits 1
    // with the failing tasks' reason.
    let close = site.load();
    let out = site.deploy(&site.images.bad.digest);
    let tally = close.stop();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let result = report(&out);
    let reason = result["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("rollback_completed"), "{reason}");
    assert!(reason.contains("unhealthy") || reason.contains("exit"), "the failing tasks' reason: {reason}");
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v2.image));
    assert_clean(&tally, "a bad version on swarm");

    // The same bad digest again: its reason names this run's failed tasks, never the last
    // run's (which swarm still lists).
    let again = site.deploy(&site.images.bad.digest);
    assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
    let again_reason = report(&again)["reason"].as_str().unwrap_or_default().to_owned();
    let task_ids = |text: &str| -> Vec<String> {
        text.split("task ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next())
            .filter(|id| id.len() == 12)
            .map(str::to_owned)
            .collect()
    };
    let (first, second) = (task_ids(reason), task_ids(&again_reason));
    assert!(!first.is_empty() && !second.is_empty(), "{reason} / {again_reason}");
    assert!(second.iter().all(|id| !first.contains(id)), "stale tasks cited: {reason} / {again_reason}");

    site.compose("rolling", "stop-first");
    let close = site.load();
    let out = site.deploy(&site.images.v3.digest);
    let tally = close.stop();
    assert_success(&out, "rolling update to v3, stop-first");
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v3.image));
    assert_clean(&tally, "swarm rolling stop-first");
    eprintln!("swarm stop-first v2 -> v3: {tally:?}");

    let close = site.load();
    let out = site.imgctl(&["rollback", &site.service, "-o", "json"]);
    let tally = close.stop();
    assert_success(&out, "imgctl rollback (swarm rollback=previous)");
    assert_eq!(report(&out)["digest"], site.images.v2.digest.as_str());
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v2.image));
    assert_clean(&tally, "swarm rollback");
    assert_eq!(site.serving(), "v2");

    let status: serde_json::Value =
        serde_json::from_slice(&site.imgctl(&["status", &site.service, "-o", "json"]).stdout).unwrap();
    let service = &status["services"][0];
    assert_eq!(service["name"], site.service.as_str());
    let running = service["tasks"].as_array().unwrap().iter().filter(|t| t["state"] == "running").count();
    assert_eq!(running, 4, "{service}");
    let plan = stdout(&site.imgctl(&["deploy", &site.service, "--digest", &site.images.v3.digest, "--dry-run"]));
    assert!(plan.contains("update swarm service") && plan.contains("follow UpdateStatus"), "{plan}");
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v2.image), "a dry run changes nothing");

    let history: Vec<serde_json::Value> =
        serde_json::from_slice(&site.imgctl(&["history", &site.service, "-o", "json"]).stdout).unwrap();
    let outcomes: Vec<_> = history
        .iter()
        .map(|r| (r["action"].as_str().unwrap().to_owned(), r["outcome"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("deploy", "succeeded"),
        ("deploy", "succeeded"),
        ("deploy", "failed"),
        ("deploy", "failed"),
        ("deploy", "succeeded"),
        ("rollback", "succeeded"),
    ];
    assert_eq!(outcomes, expected.map(|(a, o)| (a.to_owned(), o.to_owned())));

    // A rolling service needs no proxy block; `status` reads no upstream file then (it once
    // read the compose file's directory as one: "Is a directory").
    let compose = site.home.dir.join("compose.yaml");
    let text = fs::read_to_string(&compose).unwrap();
    fs::write(&compose, &text[..text.find("      proxy:\n").unwrap()]).unwrap();
    let out = site.imgctl(&["status", &site.service, "-o", "json"]);
    assert_success(&out, "status of a swarm rolling service without a proxy block");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["services"][0]["name"], site.service.as_str(), "{status}");

    // Nor a port: a swarm rolling update of a worker that listens on nothing is deployed.
    let text = fs::read_to_string(&compose).unwrap();
    fs::write(&compose, text.replace("    expose: [\"8080\"]\n", "")).unwrap();
    let out = site.deploy(&site.images.v3.digest);
    assert_success(&out, "rolling update of a service with no port");
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v3.image));

    // After swarm rolled a bad update back itself, `imgctl rollback` goes to the previous good
    // digest of imgctl's history (v2, the one before v3), not to swarm's "previous spec" (it
    // once failed: "does not have a previous spec").
    let out = site.deploy(&site.images.bad.digest);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v3.image));
    let out = site.imgctl(&["rollback", &site.service, "-o", "json"]);
    assert_success(&out, "imgctl rollback after swarm rolled back by itself");
    assert_eq!(report(&out)["digest"], site.images.v2.digest.as_str());
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v2.image));
}

#[test]
fn swarm_blue_green_switches_nginx_between_color_services() {
    // imgctl writes nginx's upstream block (resolved at reload) naming one color's tasks.
    let site = SwarmSite::new("swbg", Resolution::AtReload);
    site.compose("blue-green", "start-first");
    let blue = format!("{}-blue", site.service);
    let green = format!("{}-green", site.service);

    assert_success(&site.deploy(&site.images.v1.digest), "first deploy, into blue");
    assert_eq!(site.serving(), "v1");
    assert_eq!(site.running(&blue), std::slice::from_ref(&site.images.v1.image));

    let close = site.load();
    let out = site.deploy(&site.images.v2.digest);
    let tally = close.stop();
    assert_success(&out, "blue/green to v2 on swarm");
    let result = report(&out);
    assert_eq!(result["color"], "green");
    // nginx runs in a container: the test and the reload are each a `docker exec`.
    eprintln!(
        "swarm blue/green switch {} ms, time to traffic {} ms",
        result["switch_ms"], result["time_to_traffic_ms"]
    );
    assert!(result["switch_ms"].as_u64().unwrap() < 5000, "switch {}", result["switch_ms"]);
    assert_clean(&tally, "swarm blue/green");
    eprintln!("swarm blue/green v1 -> v2: {tally:?}");
    assert_eq!(site.serving(), "v2");
    assert_eq!(site.running(&green), std::slice::from_ref(&site.images.v2.image));
    let upstream = fs::read_to_string(site.nginx.upstream_file()).unwrap();
    assert!(upstream.contains(&format!("server tasks.{green}:8080")), "{upstream}");
    // The old color is kept, scaled to zero, for a rollback.
    let inspect = site.swarm.inspect(&blue);
    assert_eq!(inspect["Spec"]["Mode"]["Replicated"]["Replicas"], 0);

    let close = site.load();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = site.imgctl(&["rollback", &site.service]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let tally = close.stop();
    assert_success(&out, "rollback on swarm blue/green");
    assert_clean(&tally, "swarm blue/green rollback");
    assert_eq!(site.serving(), "v1");
    let status: serde_json::Value =
        serde_json::from_slice(&site.imgctl(&["status", &site.service, "-o", "json"]).stdout).unwrap();
    assert_eq!(status["live"], "blue");
}

/// Runs tests/it/common/cosign_signer.py (pyca cryptography, cosign's formats) against the
/// site's registry.
fn signer(site: &SwarmSite, args: &[&str]) {
    let images = &site.images;
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/common/cosign_signer.py"))
        .args(["--registry", &images.registry.addr, "--user", &images.user])
        .args(args)
        .env("SIGNER_PASSWORD", &images.password)
        .output()
        .unwrap();
    assert_success(&out, &format!("cosign_signer.py {}", args.join(" ")));
}

#[test]
fn swarm_deploy_and_rollback_refuse_an_unsigned_digest_before_the_service_changes() {
    common::require("python3", "python3");
    let site = SwarmSite::new("swsig", Resolution::PerRequest);
    site.compose("rolling", "start-first");
    // One task on every node (the single node here), and the team's policy.
    let compose = site.home.dir.join("compose.yaml");
    let text = fs::read_to_string(&compose).unwrap();
    let text = text
        .replace("      replicas: 4\n", "      mode: global\n")
        .replace("    x-imgctl:\n", "    x-imgctl:\n      verify: policy.json\n");
    fs::write(&compose, text).unwrap();
    site.nginx.switch_to(&format!("tasks.{}:8080", site.service));
    let key = site.home.dir.join("team");
    signer(&site, &["keygen", &key.display().to_string()]);
    let repo = site.images.repo.clone();
    let policy = serde_json::json!({"default": [{"type": "reject"}], "transports": {"docker": {
        repo.clone(): [{"type": "sigstoreSigned", "keyPath": "team.pub", "signedIdentity": {"type": "matchRepository"}}]}}});
    fs::write(site.home.dir.join("policy.json"), policy.to_string()).unwrap();
    fs::write(site.home.dir.join("anything.json"), r#"{"default": [{"type": "insecureAcceptAnything"}]}"#).unwrap();
    // The repository `web` of the registry (WebImages pushes there).
    signer(&site, &["classic", "web", &site.images.v1.digest, "--key", &format!("{}.key", key.display())]);

    // Signed: accepted, and the service is created in global mode.
    let out = site.deploy(&site.images.v1.digest);
    assert_success(&out, "deploy signed v1 (global)");
    assert!(stderr(&out).contains("signature policy") && stderr(&out).contains("accepts"), "{}", stderr(&out));
    let spec = site.swarm.inspect(&site.service);
    assert!(spec["Spec"]["Mode"].get("Global").is_some(), "global mode: {}", spec["Spec"]["Mode"]);
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v1.image));

    // Unsigned: refused before the service is touched, naming image, digest and reason.
    let tasks = |site: &SwarmSite| {
        let mut ids: Vec<String> =
            site.swarm.tasks(&site.service).iter().map(|t| t["ID"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        ids
    };
    let (version, tasks_before) = (site.swarm.inspect(&site.service)["Version"].clone(), tasks(&site));
    let close = site.load();
    // The refusal takes milliseconds: enough requests around it to judge.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = site.deploy(&site.images.v2.digest);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let tally = close.stop();
    assert_eq!(out.status.code(), Some(1), "{} {}", stdout(&out), stderr(&out));
    let text = stderr(&out);
    assert!(text.contains(&site.images.v2.digest) && text.contains(&repo) && text.contains("no signature"), "{text}");
    assert_eq!(site.swarm.inspect(&site.service)["Version"], version, "the service spec is unchanged");
    assert_eq!(tasks(&site), tasks_before, "no task was started or stopped");
    assert_clean(&tally, "an unsigned deploy refused on swarm");
    eprintln!("swarm: unsigned deploy refused under load: {tally:?}");

    // v2 deployed while anything was accepted (before the policy), then a rollback to v1
    // (signed: accepted), then one back to v2: refused under the policy.
    let out = site.imgctl(&["deploy", &site.service, "--digest", &site.images.v2.digest, "--policy", "anything.json"]);
    assert_success(&out, "deploy v2 before the policy");
    let out = site.imgctl(&["rollback", &site.service, "-o", "json"]);
    assert_success(&out, "rollback to signed v1");
    assert_eq!(report(&out)["digest"], site.images.v1.digest.as_str());
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v1.image));
    let (version, tasks_before) = (site.swarm.inspect(&site.service)["Version"].clone(), tasks(&site));
    let close = site.load();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = site.imgctl(&["rollback", &site.service]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let tally = close.stop();
    assert_eq!(out.status.code(), Some(1), "{} {}", stdout(&out), stderr(&out));
    let text = stderr(&out);
    assert!(text.contains(&site.images.v2.digest) && text.contains("no signature"), "{text}");
    assert_eq!(site.swarm.inspect(&site.service)["Version"], version, "the service spec is unchanged");
    assert_eq!(tasks(&site), tasks_before, "no task was started or stopped");
    assert_eq!(site.running(&site.service), std::slice::from_ref(&site.images.v1.image));
    assert_clean(&tally, "an unsigned rollback refused on swarm");
    eprintln!("swarm: unsigned rollback refused under load: {tally:?}");
}
