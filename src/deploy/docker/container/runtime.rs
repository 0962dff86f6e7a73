//! The Engine's view of compose's runtime keys: the `HostConfig` half of a container body
//! (the `Config` half, hostname and domainname, is set beside the rest in the body).

use std::collections::{BTreeMap, HashMap};

use bollard::models::{DeviceMapping, HostConfig, HostConfigLogConfig, ResourcesUlimits};

use crate::deploy::model::Runtime;

/// The HostConfig half of compose's runtime keys (nothing set: nothing sent, so the engine's
/// defaults hold).
pub(super) fn host_config(runtime: &Runtime) -> HostConfig {
    let some_vec = |v: &Vec<String>| Some(v.clone()).filter(|v| !v.is_empty());
    let some_map = |m: &BTreeMap<String, String>| {
        Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>()).filter(|m| !m.is_empty())
    };
    let resources = &runtime.resources;
    let engine_only = &runtime.engine_only;
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
        ..Default::default()
    }
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
            },
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
}
