//! compose's runtime keys (resources, capabilities, ulimits, extra_hosts, dns, tmpfs,
//! read_only, init, sysctls, shm_size, logging, ...) reach the replicas: `docker inspect` of
//! every replica of both colors on this machine's Docker Engine, and `docker service inspect`
//! of a service on a single-node swarm (plus the task's container), show the values the
//! compose file asked for; a running replica shows them from inside too. Keys a target cannot
//! apply are refused by name before anything changes.

use crate::common;
use crate::common::compose_twin::ComposeTwin;

use std::fs;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use common::nginx::Nginx;
use common::swarm::Swarm;
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, random_hex, stderr, stdout};

/// The runtime keys both targets apply, as compose spells them (a service's indentation).
const RUNTIME_KEYS: &str = r#"    hostname: web-host
    cap_add: [NET_ADMIN]
    cap_drop: [mknod]
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      core: 0
    extra_hosts: ["db.internal:10.0.0.5", "gw.internal:host-gateway"]
    dns: 9.9.9.9
    dns_search: [example.internal]
    tmpfs: ["/tmp:size=1m,mode=1777"]
    read_only: true
    init: true
    sysctls: {net.core.somaxconn: 1024}
    logging: {driver: json-file, options: {max-size: 1m, max-file: "2"}}
"#;
// `max-file: "2"` quoted: docker-compose 1.29 sends an unquoted 2 as a JSON number, which the
// Engine refuses (imgctl, like compose v2, sends "2"; a unit test covers that).

/// What `RUNTIME_KEYS` becomes in `HostConfig`, on either target.
fn expected_host_config() -> Value {
    json!({
        "CapAdd": ["CAP_NET_ADMIN"],
        "CapDrop": ["CAP_MKNOD"],
        "Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}, {"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        "ExtraHosts": ["db.internal:10.0.0.5", "gw.internal:host-gateway"],
        "Dns": ["9.9.9.9"],
        "DnsSearch": ["example.internal"],
        "ReadonlyRootfs": true,
        "Init": true,
        "Sysctls": {"net.core.somaxconn": "1024"},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}},
        "NanoCpus": 500_000_000,
        "Memory": 64 << 20,
        "PidsLimit": 100,
        "MemoryReservation": 32 << 20,
    })
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).stdin(Stdio::null()).output().unwrap()
}

fn inspect(id: &str) -> Value {
    let out = docker(&["inspect", id]);
    assert_success(&out, "docker inspect");
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

/// Asserts each key of `expected` in `actual`, naming the first that differs.
fn assert_has(actual: &Value, expected: &Value, what: &str) {
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&actual[key], value, "{what}: {key} in {actual}");
    }
}

/// What a running replica sees from inside: its hosts file, resolver, hostname, limits,
/// sysctl, a read-only root, a writable tmpfs and an init as PID 1. `own_resolver`: the
/// nameserver is in resolv.conf (the default bridge); on a user network the engine's DNS at
/// 127.0.0.11 is, and forwards to it.
fn assert_applied_inside(id: &str, own_resolver: bool) {
    let run = |args: &[&str]| {
        let out = docker(&[&["exec", id, "/bin/busybox"], args].concat());
        (out.status.success(), stdout(&out) + &stderr(&out))
    };
    let (_, hosts) = run(&["cat", "/etc/hosts"]);
    assert!(hosts.lines().any(|l| l.split_whitespace().eq(["10.0.0.5", "db.internal"])), "{hosts}");
    let gateway = hosts.lines().find(|l| l.split_whitespace().nth(1) == Some("gw.internal"));
    let gateway = gateway.and_then(|l| l.split_whitespace().next()).map(str::parse::<std::net::IpAddr>);
    assert!(matches!(gateway, Some(Ok(_))), "host-gateway became the engine's address: {hosts}");
    let (_, resolv) = run(&["cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("search example.internal"), "{resolv}");
    assert!(!own_resolver || resolv.contains("nameserver 9.9.9.9"), "{resolv}");
    assert_eq!(run(&["hostname"]).1.trim(), "web-host");
    // PID 1's limits: a `docker exec`'d process does not always get the container's rlimits
    // (seen: 2048/2048 from an exec while PID 1 had 1024/2048).
    let (_, limits) = run(&["cat", "/proc/1/limits"]);
    let open_files: Vec<&str> =
        limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or_default().split_whitespace().collect();
    assert_eq!(open_files.get(3..5), Some(&["1024", "2048"][..]), "{limits}");
    assert_eq!(run(&["cat", "/proc/sys/net/core/somaxconn"]).1.trim(), "1024");
    let (wrote_root, why) = run(&["touch", "/imgctl-probe"]);
    assert!(!wrote_root && why.contains("Read-only file system"), "the root is read-only: {why}");
    assert!(run(&["touch", "/tmp/probe"]).0, "/tmp is a writable tmpfs");
    let (_, mounts) = run(&["cat", "/proc/mounts"]);
    assert!(mounts.lines().any(|l| l.starts_with("tmpfs /tmp tmpfs") && l.contains("size=1024k")), "{mounts}");
    let (_, init) = run(&["cat", "/proc/1/cmdline"]);
    assert!(init.contains("docker-init"), "init runs as PID 1: {init:?}");
}

#[test]
fn runtime_keys_reach_every_replica_of_both_colors_on_the_engine() {
    let service = format!("rtk{}", random_hex(3));
    let images = WebImages::build("rtk");
    let nginx = Nginx::start(&service);
    let mut home = TestHome::new("rtk");
    images.login(&mut home);
    let _cleanup = Containers(service.clone());
    let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
    let compose = format!(
        r#"services:
  {service}:
    image: {repo}:v1
    expose: ["8080"]
    stop_signal: SIGKILL
    shm_size: 64m
    cpus: 0.5
    mem_limit: 64m
    deploy:
      replicas: 2
      resources:
        limits: {{memory: 64m, pids: 100}}
        reservations: {{memory: 32m}}
{RUNTIME_KEYS}    x-imgctl:
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
    let deploy = |digest: &str| {
        let mut command = home.command(IMGCTL);
        command.args(["deploy", &service, "--digest", digest]).current_dir(&home.dir).stdin(Stdio::null());
        command.output().unwrap()
    };
    assert_success(&deploy(&images.v1.digest), "deploy v1 (blue)");
    assert_success(&deploy(&images.v2.digest), "deploy v2 (green)");

    let ids = stdout(&docker(&["ps", "-aq", "--filter", &format!("label=imgctl.service={service}")]));
    let mut colors = Vec::new();
    let mut expected = expected_host_config();
    expected["ShmSize"] = json!(64 << 20);
    for id in ids.split_whitespace() {
        let info = inspect(id);
        let name = info["Name"].as_str().unwrap_or_default().to_owned();
        assert_has(&info["HostConfig"], &expected, &name);
        assert_eq!(info["HostConfig"]["Tmpfs"], json!({"/tmp": "size=1m,mode=1777"}), "{name}");
        assert_eq!(info["Config"]["Hostname"], "web-host", "{name}: a fixed hostname is shared by both colors");
        colors.push(info["Config"]["Labels"]["imgctl.color"].as_str().unwrap_or_default().to_owned());
        if info["State"]["Running"] == true {
            assert_applied_inside(id, true);
        }
    }
    colors.sort();
    assert_eq!(colors, ["blue", "blue", "green", "green"], "two replicas of each color: {ids}");
}

/// The HostConfig fields the runtime keys set, spelled the same way whoever set them: docker's
/// CLI and imgctl send capabilities as `CAP_X`, docker-compose 1.29 as written (`mknod`);
/// compose 1.29 sends `security_opt` as written (`no-new-privileges:true`), imgctl with the `=`
/// docker's CLI uses. The Engine reads both spellings alike.
fn runtime_fields(host_config: &Value) -> Value {
    let caps = |v: &Value| {
        let mut caps: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|c| {
                let c = c.to_ascii_uppercase();
                if c.starts_with("CAP_") || c == "ALL" { c } else { format!("CAP_{c}") }
            })
            .collect();
        caps.sort();
        json!(caps)
    };
    let options: Vec<Value> = host_config["SecurityOpt"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|o| json!(o.replacen(':', "=", 1)))
        .collect();
    // Ulimits in name order: imgctl sorts them (as docker stack deploy does), compose 1.29
    // keeps the file's order; the order means nothing.
    let mut ulimits = host_config["Ulimits"].as_array().cloned().unwrap_or_default();
    ulimits.sort_by_key(|u| u["Name"].as_str().unwrap_or_default().to_owned());
    let mut fields = json!({
        "CapAdd": caps(&host_config["CapAdd"]),
        "CapDrop": caps(&host_config["CapDrop"]),
        "SecurityOpt": options,
        "Ulimits": ulimits,
    });
    for key in [
        "NanoCpus",
        "Memory",
        "MemoryReservation",
        "PidsLimit",
        "ShmSize",
        "ExtraHosts",
        "Dns",
        "DnsSearch",
        "Tmpfs",
        "ReadonlyRootfs",
        "Init",
        "Sysctls",
        "LogConfig",
    ] {
        fields[key] = host_config[key].clone();
    }
    fields
}

#[test]
fn the_engine_runs_the_runtime_keys_as_docker_compose_1_29_does() {
    let service = format!("rtkc{}", random_hex(3));
    let images = WebImages::build("rtkc");
    let nginx = Nginx::start(&service);
    let mut home = TestHome::new("rtkc");
    images.login(&mut home);
    let _cleanup = Containers(service.clone());
    let json_list = |v: Vec<String>| serde_json::to_string(&v).unwrap();
    // The keys both read alike: docker-compose 1.29 knows no deploy.resources.limits.pids
    // (its schema refuses it), so the PID limit is the service-level pids_limit here.
    let compose = |image: &str| {
        format!(
            r#"services:
  {service}:
    image: {image}
    expose: ["8080"]
    stop_signal: SIGKILL
    shm_size: 64m
    pids_limit: 100
    security_opt: ["no-new-privileges:true"]
    deploy:
      replicas: 1
      resources:
        limits: {{cpus: "0.5", memory: 64m}}
        reservations: {{memory: 32m}}
{RUNTIME_KEYS}    x-imgctl:
      health: {{path: /health, interval: 200ms, healthy_threshold: 2, deadline: 20s}}
      proxy:
        upstream_file: {upstream}
        test: {test}
        reload: {reload}
"#,
            upstream = nginx.upstream_file.display(),
            test = json_list(nginx.test_command()),
            reload = json_list(nginx.reload_command()),
        )
    };
    fs::write(home.dir.join("compose.yaml"), compose(&format!("{}:v1", images.repo))).unwrap();
    let mut command = home.command(IMGCTL);
    command.args(["deploy", &service, "--digest", &images.v1.digest]).current_dir(&home.dir).stdin(Stdio::null());
    assert_success(&command.output().unwrap(), "imgctl deploy");

    // docker-compose runs the same image under a local tag (nothing to pull), same file.
    let (twin, up) = ComposeTwin::up(&home.dir, &service, &images.v1.image, compose);
    let project = twin.project();
    let theirs = stdout(&docker(&["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={project}")]));
    let ours = stdout(&docker(&["ps", "-q", "--filter", &format!("label=imgctl.service={service}")]));
    let (theirs_info, ours_info) =
        (theirs.split_whitespace().next().map(inspect), ours.split_whitespace().next().map(inspect));
    drop(twin);
    assert_success(&up, "docker-compose up");
    let (theirs_info, ours_info) =
        (theirs_info.expect("docker-compose's container"), ours_info.expect("imgctl's replica"));
    assert_eq!(
        runtime_fields(&ours_info["HostConfig"]),
        runtime_fields(&theirs_info["HostConfig"]),
        "imgctl vs docker-compose 1.29"
    );
    assert_eq!(ours_info["Config"]["Hostname"], theirs_info["Config"]["Hostname"]);
    // Not vacuous: the fields compared are the ones the compose file set.
    assert_has(
        &runtime_fields(&ours_info["HostConfig"]),
        &json!({"NanoCpus": 500_000_000, "PidsLimit": 100, "ShmSize": 64 << 20}),
        "imgctl",
    );
}

#[test]
fn runtime_keys_reach_the_swarm_service_and_its_tasks() {
    let images = WebImages::build("rtks");
    let swarm = Swarm::start();
    let service = swarm.service_name("rtks");
    let mut home = TestHome::new("rtks");
    images.login(&mut home);
    let compose = format!(
        r#"services:
  {service}:
    image: {repo}:v1
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 1s
      retries: 2
    stop_grace_period: 1s
    deploy:
      replicas: 1
      resources:
        limits: {{cpus: "0.5", memory: 64m, pids: 100}}
        reservations: {{cpus: "0.25", memory: 32m}}
{RUNTIME_KEYS}    x-imgctl:
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

    let spec = &swarm.inspect(&service)["Spec"]["TaskTemplate"];
    assert_eq!(
        spec["Resources"],
        json!({
            "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 << 20, "Pids": 100},
            "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 32 << 20},
        })
    );
    assert_eq!(spec["LogDriver"], json!({"Name": "json-file", "Options": {"max-size": "1m", "max-file": "2"}}));
    let container = &spec["ContainerSpec"];
    assert_has(
        container,
        &json!({
            "Hostname": "web-host",
            "Hosts": ["10.0.0.5 db.internal", "host-gateway gw.internal"],
            "DNSConfig": {"Nameservers": ["9.9.9.9"], "Search": ["example.internal"]},
            "ReadOnly": true,
            "Init": true,
            "Sysctls": {"net.core.somaxconn": "1024"},
            "CapabilityAdd": ["CAP_NET_ADMIN"],
            "CapabilityDrop": ["CAP_MKNOD"],
            "Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}, {"Name": "nofile", "Soft": 1024, "Hard": 2048}],
            "Mounts": [{"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}}],
        }),
        "ContainerSpec",
    );

    // The task's container, as the engine ran it (a single node: it is here).
    let task = stdout(&docker(&["ps", "-q", "--filter", &format!("label=com.docker.swarm.service.name={service}")]));
    let id = task.split_whitespace().next().unwrap_or_else(|| panic!("no running task container of {service}"));
    let info = inspect(id);
    let mut expected = expected_host_config();
    // A task has no memory reservation of its own on the engine: swarm schedules by it.
    expected.as_object_mut().unwrap().remove("MemoryReservation");
    expected.as_object_mut().unwrap().remove("ExtraHosts");
    expected.as_object_mut().unwrap().remove("Dns");
    expected.as_object_mut().unwrap().remove("DnsSearch");
    assert_has(&info["HostConfig"], &expected, "the task's container");
    assert_applied_inside(id, false);
}

#[test]
fn keys_a_target_cannot_apply_are_refused_by_name_before_anything_changes() {
    let home = TestHome::new("rtkr");
    let service = format!("rtkr{}", random_hex(3));
    let cases = [
        (
            "privileged: true\n    devices: [/dev/fuse]\n    x-imgctl: {target: swarm, strategy: rolling, health: {path: /h}}",
            "cannot be applied on swarm (x-imgctl.target: swarm): privileged: a swarm service cannot run privileged",
        ),
        (
            "shm_size: 64m\n    x-imgctl: {target: swarm, strategy: rolling}",
            "shm_size: a swarm service has no shm_size",
        ),
        (
            "deploy: {resources: {reservations: {cpus: 0.5}}}\n    x-imgctl: {health: {path: /h}, proxy: {upstream_file: u}}",
            "deploy.resources.reservations.cpus: a container on a single Engine has no CPU reservation",
        ),
        (
            "ulimits: {nofile: {soft: 4096, hard: 1024}}\n    x-imgctl: {health: {path: /h}, proxy: {upstream_file: u}}",
            "services.SERVICE.ulimits.nofile: soft 4096 is above hard 1024",
        ),
    ];
    for (keys, expected) in cases {
        let compose = format!(
            "services:\n  {service}:\n    image: 127.0.0.1:9/web:v1\n    expose: [\"8080\"]\n    healthcheck: {{test: [CMD, 'true']}}\n    {keys}\n"
        );
        fs::write(home.dir.join("compose.yaml"), compose).unwrap();
        let mut command = home.command(IMGCTL);
        command.args(["deploy", &service, "--digest", &format!("sha256:{}", "a".repeat(64))]);
        let out = command.current_dir(&home.dir).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{keys}: {}", stderr(&out));
        let expected = expected.replace("SERVICE", &service);
        assert!(stderr(&out).contains(&expected), "{keys}: {}", stderr(&out));
    }
    let left = stdout(&docker(&["ps", "-aq", "--filter", &format!("label=imgctl.service={service}")]));
    assert_eq!(left.trim(), "", "nothing was created");
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
