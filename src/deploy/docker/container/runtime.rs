//! The Engine's view of compose's runtime keys: the `HostConfig` half of a container body
//! (the `Config` half, hostname and domainname, is set beside the rest in the body).

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    DeviceMapping, HostConfig, HostConfigLogConfig, ResourcesBlkioWeightDevice, ResourcesUlimits, RestartPolicy,
    RestartPolicyNameEnum, ThrottleDevice,
};

use crate::deploy::model::{RestartCondition, Runtime, Throttle};

/// The HostConfig half of compose's runtime keys (nothing set: nothing sent, so the engine's
/// defaults hold).
pub(super) fn host_config(runtime: &Runtime) -> HostConfig {
    let some_vec = |v: &Vec<String>| Some(v.clone()).filter(|v| !v.is_empty());
    let some_map = |m: &BTreeMap<String, String>| {
        Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>()).filter(|m| !m.is_empty())
    };
    let resources = &runtime.resources;
    let engine_only = &runtime.engine_only;
    let tuning = &engine_only.tuning;
    let blkio = &tuning.blkio;
    HostConfig {
        nano_cpus: resources.cpus_limit,
        memory: resources.memory_limit,
        pids_limit: resources.pids_limit,
        memory_reservation: resources.memory_reservation,
        cap_add: some_vec(&runtime.cap_add),
        cap_drop: some_vec(&runtime.cap_drop),
        ulimits: ulimits(runtime),
        extra_hosts: Some(runtime.extra_hosts.iter().map(|h| format!("{}:{}", h.host, h.ip)).collect::<Vec<_>>())
            .filter(|h| !h.is_empty()),
        dns: some_vec(&runtime.dns),
        dns_search: some_vec(&runtime.dns_search),
        dns_options: some_vec(&runtime.dns_opt),
        tmpfs: Some(runtime.tmpfs.iter().map(|t| (t.path.clone(), t.options.clone())).collect::<HashMap<_, _>>())
            .filter(|t| !t.is_empty()),
        readonly_rootfs: runtime.read_only.then_some(true),
        init: runtime.init,
        log_config: runtime
            .logging
            .as_ref()
            .map(|l| HostConfigLogConfig { typ: l.driver.clone(), config: some_map(&l.options) }),
        sysctls: sysctls(runtime),
        shm_size: engine_only.shm_size,
        security_opt: some_vec(&engine_only.security_opt),
        devices: Some(
            engine_only
                .devices
                .iter()
                .map(|d| DeviceMapping {
                    path_on_host: Some(d.host.clone()),
                    path_in_container: Some(d.container.clone()),
                    cgroup_permissions: Some(d.permissions.clone()),
                })
                .collect::<Vec<_>>(),
        )
        .filter(|d| !d.is_empty()),
        privileged: engine_only.privileged.then_some(true),
        pid_mode: engine_only.pid.clone(),
        ipc_mode: engine_only.ipc.clone(),
        cpu_shares: tuning.cpu_shares,
        cpu_period: tuning.cpu_period,
        cpu_quota: tuning.cpu_quota,
        cpuset_cpus: tuning.cpuset.clone(),
        cpu_realtime_period: tuning.cpu_rt_period,
        cpu_realtime_runtime: tuning.cpu_rt_runtime,
        memory_swap: tuning.memswap_limit,
        memory_swappiness: tuning.mem_swappiness,
        oom_kill_disable: tuning.oom_kill_disable,
        oom_score_adj: tuning.oom_score_adj,
        blkio_weight: blkio.weight,
        blkio_weight_device: Some(
            blkio
                .weight_device
                .iter()
                .map(|t| ResourcesBlkioWeightDevice {
                    path: Some(t.path.clone()),
                    weight: usize::try_from(t.rate).ok(),
                })
                .collect::<Vec<_>>(),
        )
        .filter(|d| !d.is_empty()),
        blkio_device_read_bps: throttles(&blkio.device_read_bps),
        blkio_device_write_bps: throttles(&blkio.device_write_bps),
        blkio_device_read_iops: throttles(&blkio.device_read_iops),
        blkio_device_write_iops: throttles(&blkio.device_write_iops),
        userns_mode: tuning.userns_mode.clone(),
        uts_mode: tuning.uts.clone(),
        cgroup_parent: tuning.cgroup_parent.clone(),
        device_cgroup_rules: some_vec(&tuning.device_cgroup_rules),
        runtime: tuning.runtime.clone(),
        storage_opt: some_map(&tuning.storage_opt),
        group_add: some_vec(&runtime.session.group_add),
        ..Default::default()
    }
}

fn throttles(devices: &[Throttle]) -> Option<Vec<ThrottleDevice>> {
    Some(devices.iter().map(|t| ThrottleDevice { path: Some(t.path.clone()), rate: Some(t.rate) }).collect::<Vec<_>>())
        .filter(|d| !d.is_empty())
}

/// compose `deploy.restart_policy` on one Engine, as compose v2 runs it: the condition
/// (`none` is `no`, `any` is `always`) and `max_attempts` as the retry count; none when not
/// given (then compose `restart` holds).
pub(super) fn restart_policy(runtime: &Runtime) -> Option<RestartPolicy> {
    let policy = runtime.scheduling.restart_policy.as_ref()?;
    let name = match policy.condition {
        RestartCondition::Never => RestartPolicyNameEnum::NO,
        RestartCondition::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        RestartCondition::Any => RestartPolicyNameEnum::ALWAYS,
    };
    let retries = policy.max_attempts.filter(|_| policy.condition == RestartCondition::OnFailure);
    Some(RestartPolicy { name: Some(name), maximum_retry_count: retries.and_then(|n| i64::try_from(n).ok()) })
}

/// compose `ulimits` as the Engine API takes them, for a container and a swarm task alike.
pub(in crate::deploy) fn ulimits(runtime: &Runtime) -> Option<Vec<ResourcesUlimits>> {
    let ulimits: Vec<_> = runtime
        .ulimits
        .iter()
        .map(|u| ResourcesUlimits { name: Some(u.name.clone()), soft: Some(u.soft), hard: Some(u.hard) })
        .collect();
    Some(ulimits).filter(|u| !u.is_empty())
}

/// compose `sysctls` as the Engine API takes them, for a container and a swarm task alike.
pub(in crate::deploy) fn sysctls(runtime: &Runtime) -> Option<HashMap<String, String>> {
    Some(runtime.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::super::{ContainerSpec, create_body};
    use super::*;
    use crate::deploy::color::label;
    use crate::deploy::model::Workload;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web-green-1".into(),
            image: "127.0.0.1:5000/web@sha256:aa".into(),
            labels: [(label::COLOR.to_owned(), "green".to_owned())].into(),
            workload: Workload { networks: vec!["front".into()], ..Default::default() },
            host_port: None,
        }
    }

    #[test]
    fn the_runtime_keys_become_the_host_config() {
        use crate::deploy::model::{Device, EngineOnly, ExtraHost, Logging, Resources, Tmpfs, Ulimit};
        let mut spec = spec();
        spec.workload.runtime = Runtime {
            resources: Resources {
                cpus_limit: Some(1_500_000_000),
                memory_limit: Some(64 << 20),
                pids_limit: Some(100),
                cpus_reservation: None,
                memory_reservation: Some(32 << 20),
            },
            cap_add: vec!["CAP_NET_ADMIN".into()],
            cap_drop: vec!["CAP_MKNOD".into()],
            ulimits: vec![Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 }],
            extra_hosts: vec![ExtraHost { host: "db".into(), ip: "10.0.0.5".into() }],
            dns: vec!["9.9.9.9".into()],
            dns_search: vec!["example.internal".into()],
            dns_opt: vec!["ndots:2".into()],
            tmpfs: vec![Tmpfs {
                path: "/run".into(),
                options: "size=1m".into(),
                size: Some(1 << 20),
                mode: None,
                other: vec![],
            }],
            read_only: true,
            init: Some(true),
            logging: Some(Logging {
                driver: Some("json-file".into()),
                options: [("max-size".into(), "1m".into())].into(),
            }),
            sysctls: [("net.core.somaxconn".into(), "1024".into())].into(),
            hostname: Some("web".into()),
            engine_only: EngineOnly {
                privileged: true,
                devices: vec![Device {
                    host: "/dev/fuse".into(),
                    container: "/dev/fuse".into(),
                    permissions: "rwm".into(),
                }],
                shm_size: Some(64 << 20),
                security_opt: vec!["no-new-privileges=true".into()],
                pid: Some("host".into()),
                ipc: Some("shareable".into()),
                domainname: Some("example.org".into()),
                tuning: Default::default(),
            },
            ..Default::default()
        };
        let json = serde_json::to_value(create_body(&spec).unwrap()).unwrap();
        assert_eq!(
            (&json["Hostname"], &json["Domainname"]),
            (&serde_json::json!("web"), &serde_json::json!("example.org"))
        );
        let host = &json["HostConfig"];
        let expected = serde_json::json!({
            "NanoCpus": 1_500_000_000i64, "Memory": 64 << 20, "PidsLimit": 100, "MemoryReservation": 32 << 20,
            "CapAdd": ["CAP_NET_ADMIN"], "CapDrop": ["CAP_MKNOD"],
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
            "ExtraHosts": ["db:10.0.0.5"], "Dns": ["9.9.9.9"], "DnsSearch": ["example.internal"], "DnsOptions": ["ndots:2"],
            "Tmpfs": {"/run": "size=1m"}, "ReadonlyRootfs": true, "Init": true,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
            "Sysctls": {"net.core.somaxconn": "1024"}, "ShmSize": 64 << 20, "SecurityOpt": ["no-new-privileges=true"],
            "Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}],
            "Privileged": true, "PidMode": "host", "IpcMode": "shareable",
        });
        for (key, value) in expected.as_object().unwrap() {
            assert_eq!(&host[key], value, "HostConfig.{key}");
        }
        // The spec's own keys are still there beside them.
        assert_eq!(host["NetworkMode"], "front");

        spec.workload.runtime.resources.cpus_reservation = Some(1);
        let error = create_body(&spec).unwrap_err().to_string();
        assert!(error.contains("deploy.resources.reservations.cpus"), "{error}");
    }

    #[test]
    fn the_knobs_and_session_keys_reach_the_container_and_deploy_restart_policy_wins() {
        use crate::deploy::model::{Blkio, RestartCondition, RestartPolicy, Throttle, Tuning};
        let mut spec = spec();
        spec.workload.restart = Some("always".into());
        let runtime = &mut spec.workload.runtime;
        runtime.engine_only.tuning = Tuning {
            cpu_shares: Some(512),
            cpu_period: Some(100_000),
            cpu_quota: Some(50_000),
            cpuset: Some("0".into()),
            memswap_limit: Some(128 << 20),
            mem_swappiness: Some(10),
            oom_kill_disable: Some(false),
            oom_score_adj: Some(500),
            blkio: Blkio {
                weight: Some(300),
                device_read_bps: vec![Throttle { path: "/dev/sda".into(), rate: 1 << 20 }],
                ..Default::default()
            },
            uts: Some("host".into()),
            cgroup_parent: Some("imgctl.slice".into()),
            device_cgroup_rules: vec!["c 1:3 mr".into()],
            runtime: Some("runc".into()),
            ..Default::default()
        };
        runtime.session.tty = true;
        runtime.session.stdin_open = true;
        runtime.session.group_add = vec!["audio".into()];
        runtime.scheduling.restart_policy = Some(RestartPolicy {
            condition: RestartCondition::OnFailure,
            delay: None,
            max_attempts: Some(3),
            window: None,
        });
        let json = serde_json::to_value(create_body(&spec).unwrap()).unwrap();
        assert_eq!((&json["Tty"], &json["OpenStdin"]), (&serde_json::json!(true), &serde_json::json!(true)));
        let expected = serde_json::json!({
            "CpuShares": 512, "CpuPeriod": 100_000, "CpuQuota": 50_000, "CpusetCpus": "0",
            "MemorySwap": 128 << 20, "MemorySwappiness": 10, "OomKillDisable": false, "OomScoreAdj": 500,
            "BlkioWeight": 300, "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1 << 20}],
            "UTSMode": "host", "CgroupParent": "imgctl.slice", "DeviceCgroupRules": ["c 1:3 mr"],
            "Runtime": "runc", "GroupAdd": ["audio"],
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        });
        for (key, value) in expected.as_object().unwrap() {
            assert_eq!(&json["HostConfig"][key], value, "HostConfig.{key}");
        }
        spec.workload.runtime.scheduling.restart_policy = None;
        let json = serde_json::to_value(create_body(&spec).unwrap()).unwrap();
        assert_eq!(json["HostConfig"]["RestartPolicy"]["Name"], "always", "without it, restart holds");
        assert!(json["HostConfig"].get("BlkioWeightDevice").is_none(), "nothing set, nothing sent");
    }
}
