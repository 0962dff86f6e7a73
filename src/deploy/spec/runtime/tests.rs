use super::*;
use crate::deploy::model::Device;

fn read(yaml: &str) -> Result<Runtime, String> {
    let body: Value = serde_norway::from_str(yaml).unwrap();
    runtime(&body, Path::new("/nonexistent"))
}

#[test]
fn every_key_is_read() {
    let r = read(
        r#"
deploy:
  resources:
    limits: {cpus: "0.5", memory: 64m, pids: 100}
    reservations: {memory: 32m}
cap_add: [net_admin, CAP_SYS_PTRACE]
cap_drop: [MKNOD]
ulimits: {nproc: 512, nofile: {soft: 1024, hard: 2048}}
extra_hosts: ["db.internal:10.0.0.5", "v6.internal:::1", "gw=host-gateway"]
dns: 9.9.9.9
dns_search: [example.internal]
dns_opt: [ndots:2]
tmpfs: ["/tmp", "/run:size=64m,mode=1777,noexec"]
read_only: true
init: "true"
logging: {driver: json-file, options: {max-size: 1m, max-file: 2}}
sysctls: [net.core.somaxconn=1024]
shm_size: 64m
security_opt: ["no-new-privileges:true", "label:disable"]
devices: ["/dev/fuse", "/dev/sda:/dev/xvda:r"]
privileged: false
hostname: web
domainname: example.org
pid: host
ipc: shareable
"#,
    )
    .unwrap();
    assert_eq!(
        r.resources,
        Resources {
            cpus_limit: Some(500_000_000),
            memory_limit: Some(64 << 20),
            pids_limit: Some(100),
            cpus_reservation: None,
            memory_reservation: Some(32 << 20),
        }
    );
    assert_eq!(
        (r.cap_add, r.cap_drop),
        (vec!["CAP_NET_ADMIN".into(), "CAP_SYS_PTRACE".into()], vec!["CAP_MKNOD".into()])
    );
    assert_eq!(
        r.ulimits,
        [
            Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 },
            Ulimit { name: "nproc".into(), soft: 512, hard: 512 }
        ]
    );
    let hosts: Vec<(&str, &str)> = r.extra_hosts.iter().map(|h| (h.host.as_str(), h.ip.as_str())).collect();
    assert_eq!(hosts, [("db.internal", "10.0.0.5"), ("v6.internal", "::1"), ("gw", "host-gateway")]);
    assert_eq!(
        (r.dns, r.dns_search, r.dns_opt),
        (vec!["9.9.9.9".into()], vec!["example.internal".into()], vec!["ndots:2".into()])
    );
    assert_eq!(
        r.tmpfs[0],
        Tmpfs { path: "/tmp".into(), options: String::new(), size: None, mode: None, other: vec![] }
    );
    assert_eq!(
        r.tmpfs[1],
        Tmpfs {
            path: "/run".into(),
            options: "size=64m,mode=1777,noexec".into(),
            size: Some(64 << 20),
            mode: Some(0o1777),
            other: vec!["noexec".into()]
        }
    );
    assert!(r.read_only);
    assert_eq!(r.init, Some(true), "a string from interpolation reads as compose reads it");
    let logging = r.logging.unwrap();
    assert_eq!(logging.driver.as_deref(), Some("json-file"));
    assert_eq!(logging.options, BTreeMap::from([("max-file".into(), "2".into()), ("max-size".into(), "1m".into())]));
    assert_eq!(r.sysctls, BTreeMap::from([("net.core.somaxconn".into(), "1024".into())]));
    assert_eq!(r.hostname.as_deref(), Some("web"));
    let e = r.engine_only;
    assert_eq!(e.shm_size, Some(64 << 20));
    assert_eq!(e.security_opt, ["no-new-privileges=true", "label=disable"], "the old key:value form rewritten");
    assert_eq!(
        e.devices,
        [
            Device { host: "/dev/fuse".into(), container: "/dev/fuse".into(), permissions: "rwm".into() },
            Device { host: "/dev/sda".into(), container: "/dev/xvda".into(), permissions: "r".into() },
        ]
    );
    assert_eq!((e.privileged, e.domainname.as_deref()), (false, Some("example.org")));
    assert_eq!((e.pid.as_deref(), e.ipc.as_deref()), (Some("host"), Some("shareable")));
}

#[test]
fn nothing_given_is_the_engines_defaults() {
    assert_eq!(read("{image: x, cap_add: null}").unwrap(), Runtime::default());
}

#[test]
fn service_level_resources_are_the_same_settings_as_deploy_resources() {
    let r = read("{cpus: 1.5, mem_limit: 1g, pids_limit: 50, mem_reservation: 512m}").unwrap();
    assert_eq!(
        r.resources,
        Resources {
            cpus_limit: Some(1_500_000_000),
            memory_limit: Some(1 << 30),
            pids_limit: Some(50),
            cpus_reservation: None,
            memory_reservation: Some(512 << 20),
        }
    );
    // The same value both ways is one setting; `1024m` is `1g`.
    let both = read("{mem_limit: 1024m, deploy: {resources: {limits: {memory: 1g}}}}").unwrap();
    assert_eq!(both.resources.memory_limit, Some(1 << 30));
    let mixed = read("{cpus: 2, deploy: {resources: {limits: {memory: 1g}}}}").unwrap();
    assert_eq!((mixed.resources.cpus_limit, mixed.resources.memory_limit), (Some(2_000_000_000), Some(1 << 30)));
}

#[test]
fn capabilities_both_added_and_dropped_are_added_and_all_stands_alone() {
    let r = read("{cap_add: [NET_ADMIN, net_admin], cap_drop: [ALL, NET_ADMIN]}").unwrap();
    assert_eq!((r.cap_add, r.cap_drop), (vec!["CAP_NET_ADMIN".into()], vec!["ALL".into()]));
    let r = read("{cap_drop: [CHOWN, all]}").unwrap();
    assert_eq!(r.cap_drop, ["ALL"]);
}

#[test]
fn a_seccomp_profile_is_sent_as_the_profile_itself() {
    let dir = std::env::temp_dir().join(format!("imgctl-seccomp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("profile.json"), "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\"\n}\n").unwrap();
    let body: Value = serde_norway::from_str("{security_opt: ['seccomp:profile.json', seccomp=unconfined]}").unwrap();
    let r = runtime(&body, &dir).unwrap();
    assert_eq!(r.engine_only.security_opt, [r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#, "seccomp=unconfined"]);
    let body: Value = serde_norway::from_str("{security_opt: ['seccomp=missing.json']}").unwrap();
    let error = runtime(&body, &dir).unwrap_err();
    assert!(error.starts_with("security_opt: seccomp profile") && error.contains("missing.json"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_shapes_are_refused_by_the_keys_name() {
    let cases = [
        ("{cpus: many}", "cpus:"),
        (
            "{deploy: {resources: {limits: {cpus: '0.0000000001'}}}}",
            "deploy.resources.limits.cpus: \"0.0000000001\" has more than nine decimals",
        ),
        ("{deploy: {resources: {limits: {memory: lots}}}}", "deploy.resources.limits.memory: \"lots\" is not a size"),
        (
            "{deploy: {resources: {limits: {memroy: 1g}}}}",
            "deploy.resources.limits.memroy: not a key of it (it takes cpus, memory, pids)",
        ),
        ("{deploy: {resources: {limits: [1]}}}", "deploy.resources.limits: a map"),
        (
            "{deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}}",
            "deploy.resources.reservations.devices: device and generic resource",
        ),
        ("{deploy: {resources: {requests: {}}}}", "deploy.resources.requests: not a key of it"),
        ("{deploy: {resources: {limits: {pids: -5}}}}", "deploy.resources.limits.pids: -1 (unlimited) or more"),
        (
            "{mem_limit: 1g, deploy: {resources: {limits: {memory: 2g}}}}",
            "mem_limit and deploy.resources.limits.memory are the same setting and differ",
        ),
        (
            "{cpus: 1, deploy: {resources: {limits: {cpus: 2}}}}",
            "cpus and deploy.resources.limits.cpus are the same setting and differ",
        ),
        ("{pids_limit: 10, deploy: {resources: {limits: {pids: 20}}}}", "pids_limit and deploy.resources.limits.pids"),
        (
            "{mem_reservation: 1m, deploy: {resources: {reservations: {memory: 2m}}}}",
            "mem_reservation and deploy.resources.reservations.memory",
        ),
        ("{mem_reservation: 1.5}", "mem_reservation: a size"),
        ("{cap_add: NET_ADMIN}", "cap_add: a list of strings"),
        ("{cap_drop: ['NET ADMIN']}", "cap_drop: \"NET ADMIN\" is not a capability"),
        ("{ulimits: [nofile]}", "ulimits: a map"),
        ("{ulimits: {nofiles: 1}}", "ulimits.nofiles: not a ulimit"),
        ("{ulimits: {nofile: {soft: 1}}}", "ulimits.nofile: needs both soft and hard"),
        ("{ulimits: {nofile: {soft: 3, hard: 2}}}", "ulimits.nofile: soft 3 is above hard 2"),
        ("{ulimits: {nofile: {soft: 1, hard: 2, max: 3}}}", "ulimits.nofile: max is not soft or hard"),
        ("{ulimits: {nofile: many}}", "ulimits.nofile: \"many\" is not a whole number"),
        ("{ulimits: {nofile: {soft: x, hard: 2}}}", "ulimits.nofile.soft:"),
        ("{extra_hosts: 'db:1.2.3.4'}", "extra_hosts: a list of host:ip or a map"),
        ("{extra_hosts: [db]}", "extra_hosts: \"db\" is not host:ip"),
        ("{extra_hosts: ['db:not-an-ip']}", "extra_hosts: db: \"not-an-ip\" is not an IP address"),
        ("{extra_hosts: {db: [1]}}", "extra_hosts.db: an IP address"),
        ("{extra_hosts: [' :1.2.3.4']}", "extra_hosts: \"\" is not a host name"),
        ("{dns: [8.8.8.8, dns.example]}", "dns: \"dns.example\" is not an IP address"),
        ("{dns: {a: 1}}", "dns: a string or a list of strings"),
        ("{dns_search: 'a b'}", "dns_search: \"a b\" is not a domain"),
        ("{dns_opt: ndots:2}", "dns_opt: a list of strings"),
        ("{tmpfs: run}", "tmpfs: \"run\": the path in the container must be absolute"),
        ("{tmpfs: {a: b}}", "tmpfs: a string or a list"),
        ("{read_only: maybe}", "read_only: \"maybe\" is not true or false"),
        ("{read_only: 1}", "read_only: true or false"),
        ("{init: /sbin/tini}", "init: true or false (a path to an init binary is not supported"),
        ("{privileged: [true]}", "privileged: true or false"),
        ("{logging: json-file}", "logging: a map"),
        ("{logging: {driver: syslog, opts: {}}}", "logging.opts: not a key of it"),
        ("{logging: {options: [a]}}", "logging.options: a map of strings"),
        ("{logging: {options: {tag: [a]}}}", "logging.options.tag: a string"),
        ("{logging: {driver: [a]}}", "logging.driver: a string"),
        ("{sysctls: [net.core.somaxconn]}", "sysctls: \"net.core.somaxconn\" is not name=value"),
        ("{sysctls: {'net core': 1}}", "sysctls: \"net core\" is not a sysctl name"),
        ("{sysctls: {a: [1]}}", "sysctls.a: a value"),
        ("{sysctls: 1}", "sysctls: a list of name=value or a map"),
        ("{shm_size: huge}", "shm_size: \"huge\" is not a size"),
        ("{security_opt: no-new-privileges}", "security_opt: a list of strings"),
        ("{security_opt: [privileged]}", "security_opt: \"privileged\" is not one of"),
        ("{security_opt: ['no-new-privileges:perhaps']}", "security_opt: \"perhaps\" is not true or false"),
        ("{devices: /dev/fuse}", "devices: a list"),
        ("{devices: [dev/fuse]}", "devices: \"dev/fuse\": device paths are absolute"),
        ("{devices: ['/dev/fuse:/dev/fuse:rx']}", "devices: /dev/fuse: permissions \"rx\" are made of r, w and m"),
        ("{devices: [1]}", "devices: each device is"),
        ("{hostname: 'web 1'}", "hostname: \"web 1\" is not a name"),
        ("{hostname: [web]}", "hostname: a string"),
        ("{domainname: ''}", "domainname: \"\" is not a name"),
        ("{pid: 'service:db'}", "pid: \"service:db\": imgctl deploys one service"),
        ("{pid: private}", "pid: \"private\" is not one of host, container:NAME"),
        ("{ipc: 'container:'}", "ipc: \"container:\" is not one of host, private, shareable, none"),
        // Lines written into the replica's /etc/hosts and resolv.conf cannot be smuggled in.
        (
            "{extra_hosts: [\"db\\n6.6.6.6 bank.example:10.0.0.5\"]}",
            "extra_hosts: \"db\\n6.6.6.6 bank.example\" is not a host name",
        ),
        (
            "{extra_hosts: {\"db\\n6.6.6.6 bank.example\": 10.0.0.5}}",
            "extra_hosts: \"db\\n6.6.6.6 bank.example\" is not a host name",
        ),
        (
            "{dns_search: \"example.org\\nnameserver 6.6.6.6\"}",
            "dns_search: \"example.org\\nnameserver 6.6.6.6\" is not a domain",
        ),
        ("{dns: \"9.9.9.9\\nnameserver 6.6.6.6\"}", "dns: \"9.9.9.9\\nnameserver 6.6.6.6\" is not an IP address"),
        ("{hostname: \"web\\n6.6.6.6 bank.example\"}", "hostname: \"web\\n6.6.6.6 bank.example\" is not a name"),
        ("{cpus: '99999999999999999999'}", "cpus: \"99999999999999999999\" is too many CPUs"),
    ];
    for (yaml, expected) in cases {
        let error = read(yaml).unwrap_err();
        assert!(error.starts_with(expected), "{yaml}: {error}");
    }
}

#[test]
fn each_target_refuses_what_it_cannot_apply_by_name() {
    let swarm_only = read("{deploy: {resources: {reservations: {cpus: 0.25}}}}").unwrap();
    assert_eq!(for_target(swarm_only.clone(), Target::Swarm).unwrap().resources.cpus_reservation, Some(250_000_000));
    let error = for_target(swarm_only, Target::Engine).unwrap_err();
    assert!(error.starts_with("cannot be applied on a single Docker Engine (x-imgctl.target: engine): deploy.resources.reservations.cpus: "), "{error}");

    let engine_only = read("{privileged: true, shm_size: 64m, devices: [/dev/fuse]}").unwrap();
    assert_eq!(for_target(engine_only.clone(), Target::Engine).unwrap(), engine_only);
    let error = for_target(engine_only, Target::Swarm).unwrap_err();
    assert!(error.starts_with("cannot be applied on swarm (x-imgctl.target: swarm): privileged: "), "{error}");
    assert!(
        error.contains("; devices: ") && error.contains("; shm_size: ") && error.contains("tmpfs: /dev/shm"),
        "{error}"
    );
}

#[test]
fn cpu_memory_and_blkio_knobs_are_read_as_compose_writes_them() {
    let r = read(
        r#"
cpu_shares: "512"
cpu_period: 100000
cpu_quota: "50000"
cpuset: 0-1
cpu_rt_period: 1400us
cpu_rt_runtime: 400ms
memswap_limit: 1g
mem_swappiness: "10"
oom_kill_disable: "false"
oom_score_adj: -500
blkio_config:
  weight: 300
  weight_device: [{path: /dev/sda, weight: 400}]
  device_read_bps: [{path: /dev/sda, rate: 12mb}]
  device_write_bps: [{path: /dev/sda, rate: 1024k}]
  device_read_iops: [{path: /dev/sda, rate: "120"}]
  device_write_iops: [{path: /dev/sda, rate: 30}]
"#,
    )
    .unwrap();
    let t = &r.engine_only.tuning;
    assert_eq!((t.cpu_shares, t.cpu_period, t.cpu_quota), (Some(512), Some(100_000), Some(50_000)));
    assert_eq!(t.cpuset.as_deref(), Some("0-1"));
    assert_eq!((t.cpu_rt_period, t.cpu_rt_runtime), (Some(1400), Some(400_000)));
    assert_eq!((t.memswap_limit, t.mem_swappiness), (Some(1 << 30), Some(10)));
    assert_eq!((t.oom_kill_disable, t.oom_score_adj), (Some(false), Some(-500)));
    let throttle = |rate| vec![crate::deploy::model::Throttle { path: "/dev/sda".into(), rate }];
    assert_eq!(t.blkio.weight, Some(300));
    assert_eq!(t.blkio.weight_device, throttle(400));
    assert_eq!(t.blkio.device_read_bps, throttle(12 << 20));
    assert_eq!(t.blkio.device_write_bps, throttle(1 << 20));
    assert_eq!(t.blkio.device_read_iops, throttle(120));
    assert_eq!(t.blkio.device_write_iops, throttle(30));
    assert_eq!(t.keys_set().len(), 11);
    assert_eq!(read("memswap_limit: -1").unwrap().engine_only.tuning.memswap_limit, Some(-1));
    assert_eq!(read("cpu_rt_runtime: 95000").unwrap().engine_only.tuning.cpu_rt_runtime, Some(95_000));
    assert_eq!(read("cpuset: 0").unwrap().engine_only.tuning.cpuset.as_deref(), Some("0"));
}

#[test]
fn process_and_session_keys_are_read() {
    let r = read(
        r#"
tty: true
stdin_open: "yes"
group_add: [audio, 1234]
userns_mode: host
uts: host
cgroup_parent: imgctl.slice
device_cgroup_rules: ["c 1:3 mr", "a 7:* rmw"]
runtime: runc
storage_opt: {size: 1G}
"#,
    )
    .unwrap();
    assert_eq!((r.session.tty, r.session.stdin_open), (true, true));
    assert_eq!(r.session.group_add, ["audio", "1234"]);
    let t = &r.engine_only.tuning;
    assert_eq!((t.userns_mode.as_deref(), t.uts.as_deref()), (Some("host"), Some("host")));
    assert_eq!((t.cgroup_parent.as_deref(), t.runtime.as_deref()), (Some("imgctl.slice"), Some("runc")));
    assert_eq!(t.device_cgroup_rules, ["c 1:3 mr", "a 7:* rmw"]);
    assert_eq!(t.storage_opt, BTreeMap::from([("size".to_owned(), "1G".to_owned())]));
}

#[test]
fn placement_labels_and_restart_policy_are_read_as_docker_stack_deploy_reads_them() {
    let r = read(
        r#"
deploy:
  labels: ["tier=web", "flag"]
  placement:
    constraints: ["node.role == manager", "node.labels.zone!=b"]
    preferences: [{spread: node.labels.zone}]
    max_replicas_per_node: "2"
  restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 1m30s}
"#,
    )
    .unwrap();
    let s = &r.scheduling;
    assert_eq!(s.constraints, ["node.role == manager", "node.labels.zone!=b"]);
    assert_eq!((s.preferences.as_slice(), s.max_replicas_per_node), (&["node.labels.zone".to_owned()][..], Some(2)));
    assert_eq!(s.labels, BTreeMap::from([("tier".into(), "web".into()), ("flag".into(), String::new())]));
    let policy = s.restart_policy.clone().unwrap();
    assert_eq!(policy.condition, crate::deploy::model::RestartCondition::OnFailure);
    assert_eq!((policy.delay, policy.max_attempts), (Some(std::time::Duration::from_secs(5)), Some(3)));
    assert_eq!(policy.window, Some(std::time::Duration::from_secs(90)));
    let any = read("deploy: {restart_policy: {}, labels: {a: b}}").unwrap().scheduling;
    assert_eq!(any.restart_policy.unwrap().condition, crate::deploy::model::RestartCondition::Any);
    assert_eq!(any.labels, BTreeMap::from([("a".into(), "b".into())]));
}

#[test]
fn wrong_knobs_are_refused_by_the_keys_name() {
    for (yaml, key) in [
        ("cpu_shares: lots", "cpu_shares:"),
        ("cpu_shares: 1", "cpu_shares:"),
        ("mem_swappiness: 101", "mem_swappiness:"),
        ("oom_score_adj: 2000", "oom_score_adj:"),
        ("memswap_limit: big", "memswap_limit:"),
        ("cpuset: all", "cpuset:"),
        ("cpu_rt_runtime: soon", "cpu_rt_runtime:"),
        ("blkio_config: {weight: 5}", "blkio_config.weight:"),
        ("blkio_config: {device_read_bps: [{path: sda, rate: 1m}]}", "blkio_config.device_read_bps:"),
        ("blkio_config: {limit: 1}", "blkio_config.limit:"),
        ("uts: private", "uts:"),
        ("userns_mode: remap", "userns_mode:"),
        ("device_cgroup_rules: [\"x 1:3 mr\"]", "device_cgroup_rules:"),
        ("storage_opt: [size=1G]", "storage_opt:"),
        ("tty: maybe", "tty:"),
        ("group_add: [\"a b\"]", "group_add:"),
        ("deploy: {placement: {constraints: [manager]}}", "deploy.placement.constraints:"),
        ("deploy: {placement: {preferences: [node.labels.zone]}}", "deploy.placement.preferences:"),
        ("deploy: {placement: {max_replicas_per_node: 0}}", "deploy.placement.max_replicas_per_node:"),
        ("deploy: {placement: {spread: x}}", "deploy.placement.spread:"),
        ("deploy: {restart_policy: {condition: always}}", "deploy.restart_policy.condition:"),
        ("deploy: {restart_policy: {delay: soon}}", "deploy.restart_policy.delay:"),
        ("deploy: {restart_policy: {max_attempts: -1}}", "deploy.restart_policy.max_attempts:"),
    ] {
        let error = read(yaml).unwrap_err();
        assert!(error.starts_with(key), "{yaml}: {error}");
    }
}

#[test]
fn the_knobs_are_refused_on_swarm_and_swarms_scheduling_noted_on_the_engine() {
    let r = read("cpu_shares: 512\nuts: host\ntty: true\ndeploy: {placement: {constraints: [node.role==manager]}}")
        .unwrap();
    let error = for_target(r.clone(), Target::Swarm).unwrap_err();
    assert!(error.contains("cpu_shares: a swarm service has no such setting") && error.contains("uts:"), "{error}");
    assert!(!error.contains("tty") && !error.contains("placement"), "{error}");
    assert!(for_target(r.clone(), Target::Engine).is_ok());
    let body: Value = serde_norway::from_str("restart: always\ndeploy: {restart_policy: {condition: none}}").unwrap();
    let runtime = runtime(&body, Path::new("/")).unwrap();
    let notes = notes(&body, &runtime, Target::Engine);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].starts_with("restart: deploy.restart_policy is given too and wins"), "{notes:?}");
    assert_eq!(super::notes(&body, &runtime, Target::Swarm), Vec::<String>::new());
    assert_eq!(super::notes(&body, &r, Target::Engine).len(), 1, "placement is noted");
}

#[test]
fn cpu_period_and_quota_are_microseconds_or_durations() {
    let t = read("cpu_period: 100ms\ncpu_quota: \"50000\"").unwrap().engine_only.tuning;
    assert_eq!((t.cpu_period, t.cpu_quota), (Some(100_000), Some(50_000)));
    assert_eq!(read("cpu_quota: -1").unwrap().engine_only.tuning.cpu_quota, Some(-1));
    assert!(read("cpu_period: 2s").unwrap_err().starts_with("cpu_period: 2000000 microseconds"));
}
