//! The compose keys beyond the common runtime ones reach the replicas: CPU, swap, OOM and
//! block I/O knobs, the process and session keys, and `deploy.restart_policy` on this
//! machine's Docker Engine (`docker inspect` of every replica of both colors, and what a
//! running replica sees from inside); `deploy.placement`, `deploy.labels` and
//! `deploy.restart_policy` on the single-node swarm (`docker service inspect`). Keys swarm has
//! no field for are refused there by name before anything changes.

use crate::common;

use std::fs;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use common::nginx::Nginx;
use common::swarm::Swarm;
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, random_hex, stderr, stdout};

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).stdin(Stdio::null()).output().unwrap()
}

fn inspect(id: &str) -> Value {
    let out = docker(&["inspect", id]);
    assert_success(&out, "docker inspect");
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

fn assert_has(actual: &Value, expected: &Value, what: &str) {
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&actual[key], value, "{what}: {key} in {actual}");
    }
}

/// The keys as compose writes them (strings where interpolation would give strings).
/// `blkio_config.weight` and `cpu_rt_*` are left out: this kernel discards a block I/O weight
/// and gives the Docker cgroup no realtime budget (unit tests cover their HostConfig fields).
const KEYS: &str = r#"    mem_limit: 64m
    cpu_shares: "512"
    cpu_period: 100000
    cpu_quota: "50000"
    cpuset: "0"
    memswap_limit: 128m
    mem_swappiness: "10"
    oom_kill_disable: false
    oom_score_adj: 500
    blkio_config:
      device_read_bps: [{path: /dev/vda, rate: 1mb}]
      device_write_iops: [{path: /dev/vda, rate: "120"}]
    tty: true
    stdin_open: true
    group_add: ["1234"]
    uts: host
    userns_mode: host
    cgroup_parent: imgctl-more-keys
    device_cgroup_rules: ["c 1:3 mr"]
    runtime: runc
"#;

#[test]
fn cpu_memory_process_keys_and_the_restart_policy_reach_every_replica_on_the_engine() {
    let service = format!("mkeys{}", random_hex(3));
    let images = WebImages::build("mkeys");
    let nginx = Nginx::start(&service);
    let mut home = TestHome::new("mkeys");
    images.login(&mut home);
    let _cleanup = Containers(service.clone());
    let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
    let compose = format!(
        r#"services:
  {service}:
    image: {repo}:v1
    expose: ["8080"]
    stop_signal: SIGKILL
    restart: always
{KEYS}    deploy:
      replicas: 2
      labels: {{tier: web}}
      placement: {{constraints: ["node.role == manager"]}}
      restart_policy: {{condition: on-failure, max_attempts: 3, delay: 5s}}
    x-imgctl:
      health: {{path: /health, interval: 200ms, healthy_threshold: 2, deadline: 20s}}
      keep_warm: 1s
      drain: 200ms
      proxy:
        upstream_file: {upstream}
        test: {test}
        reload: {reload}
"#,
        repo = images.repo,
        upstream = nginx.upstream_file.display(),
        test = json(nginx.test_command()),
        reload = json(nginx.reload_command()),
    );
    fs::write(home.dir.join("compose.yaml"), compose).unwrap();

    // What one Engine does not apply is said, not dropped.
    let mut config = home.command(IMGCTL);
    config.args(["config", &service, "-o", "json"]).current_dir(&home.dir).stdin(Stdio::null());
    let out = config.output().unwrap();
    assert_success(&out, "imgctl config");
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let notes: Vec<&str> = shown["notes"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for key in ["deploy.placement:", "deploy.labels:", "deploy.restart_policy:", "restart:"] {
        assert!(notes.iter().any(|n| n.starts_with(key)), "a note on {key} in {notes:?}");
    }

    let deploy = |digest: &str| {
        let mut command = home.command(IMGCTL);
        command.args(["deploy", &service, "--digest", digest]).current_dir(&home.dir).stdin(Stdio::null());
        command.output().unwrap()
    };
    assert_success(&deploy(&images.v1.digest), "deploy v1 (blue)");
    assert_success(&deploy(&images.v2.digest), "deploy v2 (green)");

    let expected = json!({
        "CpuShares": 512, "CpuPeriod": 100_000, "CpuQuota": 50_000, "CpusetCpus": "0",
        "Memory": 64 << 20, "MemorySwap": 128 << 20, "MemorySwappiness": 10, "OomKillDisable": false,
        "OomScoreAdj": 500,
        "BlkioDeviceReadBps": [{"Path": "/dev/vda", "Rate": 1 << 20}],
        "BlkioDeviceWriteIOps": [{"Path": "/dev/vda", "Rate": 120}],
        "GroupAdd": ["1234"], "UTSMode": "host", "UsernsMode": "host", "CgroupParent": "imgctl-more-keys",
        "DeviceCgroupRules": ["c 1:3 mr"], "Runtime": "runc",
        // compose v2: deploy.restart_policy wins over restart; none is `no`, any is `always`.
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
    });
    let ids = stdout(&docker(&["ps", "-aq", "--filter", &format!("label=imgctl.service={service}")]));
    let (mut colors, mut running) = (Vec::new(), 0);
    for id in ids.split_whitespace() {
        let info = inspect(id);
        let name = info["Name"].as_str().unwrap_or_default().to_owned();
        assert_has(&info["HostConfig"], &expected, &name);
        assert_eq!((&info["Config"]["Tty"], &info["Config"]["OpenStdin"]), (&json!(true), &json!(true)), "{name}");
        assert!(info["Config"]["Labels"].get("tier").is_none(), "{name}: deploy.labels are a swarm service's");
        colors.push(info["Config"]["Labels"]["imgctl.color"].as_str().unwrap_or_default().to_owned());
        if info["State"]["Running"] == true {
            running += 1;
            let inside = docker(&[
                "exec",
                id,
                "/bin/busybox",
                "sh",
                "-c",
                "cat /proc/1/oom_score_adj; id -G; cat /sys/fs/cgroup/cpu/cpu.shares; /bin/busybox hostname",
            ]);
            assert_success(&inside, "docker exec");
            let lines: Vec<String> = stdout(&inside).lines().map(str::to_owned).collect();
            let host = stdout(&Command::new("hostname").output().unwrap()).trim().to_owned();
            assert_eq!(lines[0], "500", "{name}: oom_score_adj inside");
            assert!(lines[1].split_whitespace().any(|g| g == "1234"), "{name}: group_add inside: {lines:?}");
            assert_eq!(lines[2], "512", "{name}: cpu.shares inside");
            assert_eq!(lines[3], host, "{name}: uts: host shares the host's name");
        }
    }
    colors.sort();
    assert_eq!(colors, ["blue", "blue", "green", "green"], "two replicas of each color: {ids}");
    assert!(running >= 2, "the live color runs: {ids}");
}

#[test]
fn placement_deploy_labels_and_restart_policy_reach_the_swarm_service() {
    let images = WebImages::build("mkeyss");
    let swarm = Swarm::start();
    let service = swarm.service_name("mkeyss");
    let mut home = TestHome::new("mkeyss");
    images.login(&mut home);
    let compose = format!(
        r#"services:
  {service}:
    image: {repo}:v1
    labels: {{team: web}}
    tty: true
    group_add: ["1234"]
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 1s
      retries: 2
    stop_grace_period: 1s
    deploy:
      replicas: 1
      labels: ["tier=web", "owner=imgctl-tests"]
      placement:
        constraints: ["node.role == manager"]
        preferences: [{{spread: node.labels.zone}}]
        max_replicas_per_node: 2
      restart_policy: {{condition: on-failure, delay: 2s, max_attempts: "3", window: 1m}}
    x-imgctl:
      target: swarm
      strategy: rolling
      swarm: {{network: {network}, converge_timeout: 90s}}
"#,
        repo = images.repo,
        network = swarm.network,
    );
    fs::write(home.dir.join("compose.yaml"), compose).unwrap();
    let mut command = home.command(IMGCTL);
    command.args(["deploy", &service, "--digest", &images.v1.digest]).current_dir(&home.dir).stdin(Stdio::null());
    assert_success(&command.output().unwrap(), "deploy on swarm");

    let spec = &swarm.inspect(&service)["Spec"];
    let task = &spec["TaskTemplate"];
    assert_eq!(
        task["Placement"],
        json!({
            "Constraints": ["node.role == manager"],
            "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
            "MaxReplicas": 2,
        })
    );
    assert_eq!(
        task["RestartPolicy"],
        json!({"Condition": "on-failure", "Delay": 2_000_000_000i64, "MaxAttempts": 3, "Window": 60_000_000_000i64})
    );
    assert_eq!((&spec["Labels"]["tier"], &spec["Labels"]["owner"]), (&json!("web"), &json!("imgctl-tests")));
    assert_eq!(spec["Labels"]["team"], "web");
    let container = &task["ContainerSpec"];
    assert!(container["Labels"].get("tier").is_none(), "deploy.labels label the service only: {container}");
    assert_eq!(container["Labels"]["team"], "web");
    assert_eq!((&container["TTY"], &container["Groups"]), (&json!(true), &json!(["1234"])));

    // The task's container, as the engine ran it (a single node: it is here).
    let task = stdout(&docker(&["ps", "-q", "--filter", &format!("label=com.docker.swarm.service.name={service}")]));
    let id = task.split_whitespace().next().unwrap_or_else(|| panic!("no running task container of {service}"));
    let info = inspect(id);
    assert_eq!(info["Config"]["Tty"], true);
    assert_eq!(info["HostConfig"]["GroupAdd"], json!(["1234"]));
}

#[test]
fn knobs_swarm_has_no_field_for_are_refused_there_by_name() {
    let home = TestHome::new("mkeysr");
    let service = format!("mkeysr{}", random_hex(3));
    for (keys, expected) in [
        ("cpu_shares: \"512\"", "cpu_shares: a swarm service has no such setting"),
        ("oom_score_adj: 500\n    uts: host", "oom_score_adj: a swarm service has no such setting"),
        ("blkio_config: {weight: 300}", "blkio_config: a swarm service has no such setting"),
        ("cgroup_parent: x", "cgroup_parent: a swarm service has no such setting"),
    ] {
        let compose = format!(
            "services:\n  {service}:\n    image: 127.0.0.1:9/web:v1\n    healthcheck: {{test: [CMD, 'true']}}\n    {keys}\n    x-imgctl: {{target: swarm, strategy: rolling}}\n"
        );
        fs::write(home.dir.join("compose.yaml"), compose).unwrap();
        let mut command = home.command(IMGCTL);
        command.args(["deploy", &service, "--digest", &format!("sha256:{}", "a".repeat(64))]);
        let out = command.current_dir(&home.dir).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{keys}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot be applied on swarm (x-imgctl.target: swarm)"),
            "{keys}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(expected), "{keys}: {}", stderr(&out));
    }
    let left = docker(&["service", "ls", "-q", "--filter", &format!("name={service}")]);
    assert_eq!(stdout(&left).trim(), "", "nothing was created");
}

/// Removes the service's containers when the test ends, however it ends.
struct Containers(String);

impl Drop for Containers {
    fn drop(&mut self) {
        let ids = stdout(&docker(&["ps", "-aq", "--filter", &format!("label=imgctl.service={}", self.0)]));
        for id in ids.split_whitespace() {
            let _ = docker(&["rm", "-f", id]);
        }
    }
}
