//! The swarm service's view of compose's runtime keys: what a `TaskTemplate` carries
//! (ContainerSpec fields, tmpfs mounts, Resources, LogDriver), converted as `docker stack
//! deploy` converts them.

use std::collections::HashMap;

use bollard::models::{
    Limit, Mount, MountTmpfsOptions, MountType, ResourceObject, TaskSpecContainerSpec, TaskSpecContainerSpecDnsConfig,
    TaskSpecLogDriver, TaskSpecPlacement, TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};

use crate::deploy::docker::{sysctls, ulimits};
use crate::deploy::model::{RestartCondition, Runtime};

/// The ContainerSpec half of compose's runtime keys, as `docker stack deploy` converts them
/// (extra hosts in swarm's `IP host` notation; tmpfs as tmpfs mounts).
pub(super) fn container_spec(runtime: &Runtime) -> TaskSpecContainerSpec {
    let some_vec = |v: &Vec<String>| Some(v.clone()).filter(|v| !v.is_empty());
    let dns = !(runtime.dns.is_empty() && runtime.dns_search.is_empty() && runtime.dns_opt.is_empty());
    TaskSpecContainerSpec {
        hostname: runtime.hostname.clone(),
        hosts: Some(runtime.extra_hosts.iter().map(|h| format!("{} {}", h.ip, h.host)).collect::<Vec<_>>())
            .filter(|h| !h.is_empty()),
        dns_config: dns.then(|| TaskSpecContainerSpecDnsConfig {
            nameservers: some_vec(&runtime.dns),
            search: some_vec(&runtime.dns_search),
            options: some_vec(&runtime.dns_opt),
        }),
        read_only: runtime.read_only.then_some(true),
        init: runtime.init,
        tty: runtime.session.tty.then_some(true),
        open_stdin: runtime.session.stdin_open.then_some(true),
        groups: some_vec(&runtime.session.group_add),
        sysctls: sysctls(runtime),
        capability_add: some_vec(&runtime.cap_add),
        capability_drop: some_vec(&runtime.cap_drop),
        ulimits: ulimits(runtime),
        mounts: Some(
            runtime
                .tmpfs
                .iter()
                .map(|t| Mount {
                    target: Some(t.path.clone()),
                    typ: Some(MountType::TMPFS),
                    tmpfs_options: (t.size.is_some() || t.mode.is_some()).then(|| MountTmpfsOptions {
                        size_bytes: t.size,
                        mode: t.mode.map(i64::from),
                        options: None,
                    }),
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        )
        .filter(|m| !m.is_empty()),
        ..Default::default()
    }
}

/// `TaskTemplate.Resources`: limits and reservations, none when compose sets none.
pub(super) fn resources(runtime: &Runtime) -> Option<TaskSpecResources> {
    let r = &runtime.resources;
    let limits = (r.cpus_limit.is_some() || r.memory_limit.is_some() || r.pids_limit.is_some()).then_some(Limit {
        nano_cpus: r.cpus_limit,
        memory_bytes: r.memory_limit,
        pids: r.pids_limit,
    });
    let reservations = (r.cpus_reservation.is_some() || r.memory_reservation.is_some()).then_some(ResourceObject {
        nano_cpus: r.cpus_reservation,
        memory_bytes: r.memory_reservation,
        generic_resources: None,
    });
    (limits.is_some() || reservations.is_some()).then(|| TaskSpecResources {
        limits,
        reservations,
        ..Default::default()
    })
}

/// `TaskTemplate.Placement`: compose `deploy.placement`, as `docker stack deploy` converts it
/// (each preference a spread).
pub(super) fn placement(runtime: &Runtime) -> Option<TaskSpecPlacement> {
    let s = &runtime.scheduling;
    s.has_placement().then(|| TaskSpecPlacement {
        constraints: Some(s.constraints.clone()).filter(|c| !c.is_empty()),
        preferences: Some(
            s.preferences
                .iter()
                .map(|p| TaskSpecPlacementPreferences {
                    spread: Some(TaskSpecPlacementSpread { spread_descriptor: Some(p.clone()) }),
                })
                .collect::<Vec<_>>(),
        )
        .filter(|p| !p.is_empty()),
        max_replicas: s.max_replicas_per_node.and_then(|n| i64::try_from(n).ok()),
        platforms: None,
    })
}

/// `TaskTemplate.RestartPolicy`: compose `deploy.restart_policy`, durations in nanoseconds.
///
/// Without `deploy.restart_policy`, compose's `restart` says it, as `docker stack deploy`
/// converts it (docker/cli `convertRestartPolicy`): `always` and `unless-stopped` are `any`,
/// `on-failure[:N]` is `on-failure` with N attempts, `no` leaves swarm's default.
pub(super) fn restart_policy(runtime: &Runtime, restart: Option<&str>) -> Option<TaskSpecRestartPolicy> {
    let Some(policy) = runtime.scheduling.restart_policy.as_ref() else {
        return from_restart(restart?);
    };
    let nanos = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    Some(TaskSpecRestartPolicy {
        condition: Some(match policy.condition {
            RestartCondition::Never => TaskSpecRestartPolicyConditionEnum::NONE,
            RestartCondition::OnFailure => TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
            RestartCondition::Any => TaskSpecRestartPolicyConditionEnum::ANY,
        }),
        delay: policy.delay.map(nanos),
        max_attempts: policy.max_attempts.and_then(|n| i64::try_from(n).ok()),
        window: policy.window.map(nanos),
    })
}

/// compose `restart` as a swarm restart policy (`None`: swarm's default, or `no`).
fn from_restart(restart: &str) -> Option<TaskSpecRestartPolicy> {
    let (condition, attempts) = match restart.split_once(':') {
        Some(("on-failure", n)) => (TaskSpecRestartPolicyConditionEnum::ON_FAILURE, n.parse::<i64>().ok()),
        None if restart == "on-failure" => (TaskSpecRestartPolicyConditionEnum::ON_FAILURE, Some(0)),
        None if restart == "always" || restart == "unless-stopped" => (TaskSpecRestartPolicyConditionEnum::ANY, None),
        _ => return None,
    };
    Some(TaskSpecRestartPolicy { condition: Some(condition), max_attempts: attempts, ..Default::default() })
}

/// `TaskTemplate.LogDriver`: compose `logging`.
pub(super) fn log_driver(runtime: &Runtime) -> Option<TaskSpecLogDriver> {
    runtime.logging.as_ref().map(|l| TaskSpecLogDriver {
        name: l.driver.clone(),
        options: Some(l.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>())
            .filter(|o| !o.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{SwarmServiceSpec, service_spec};
    use crate::deploy::model::Runtime;
    use crate::deploy::model::Workload;

    #[test]
    fn the_runtime_keys_go_where_a_service_carries_them() {
        use crate::deploy::model::{EngineOnly, ExtraHost, Logging, Resources, Tmpfs, Ulimit};
        let runtime = Runtime {
            resources: Resources {
                cpus_limit: Some(500_000_000),
                memory_limit: Some(64 << 20),
                pids_limit: Some(100),
                cpus_reservation: Some(250_000_000),
                memory_reservation: Some(32 << 20),
            },
            cap_add: vec!["CAP_NET_ADMIN".into()],
            cap_drop: vec!["CAP_MKNOD".into()],
            ulimits: vec![Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 }],
            extra_hosts: vec![ExtraHost { host: "db".into(), ip: "10.0.0.5".into() }],
            dns: vec!["9.9.9.9".into()],
            dns_search: vec!["example.internal".into()],
            dns_opt: vec![],
            tmpfs: vec![
                Tmpfs {
                    path: "/run".into(),
                    options: "size=1m,mode=1777".into(),
                    size: Some(1 << 20),
                    mode: Some(0o1777),
                    other: vec![],
                },
                Tmpfs { path: "/tmp".into(), options: String::new(), size: None, mode: None, other: vec![] },
            ],
            read_only: true,
            init: Some(true),
            logging: Some(Logging {
                driver: Some("json-file".into()),
                options: [("max-size".into(), "1m".into())].into(),
            }),
            sysctls: [("net.core.somaxconn".into(), "1024".into())].into(),
            hostname: Some("web".into()),
            engine_only: EngineOnly::default(),
            ..Default::default()
        };
        let mut spec = SwarmServiceSpec {
            name: "web".into(),
            image: "r/web@sha256:aa".into(),
            replicas: 1,
            workload: Workload { runtime, ..Default::default() },
            ..Default::default()
        };
        let body = serde_json::to_value(service_spec(&spec).unwrap()).unwrap();
        let task = &body["TaskTemplate"];
        assert_eq!(
            task["Resources"],
            serde_json::json!({
                "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 << 20, "Pids": 100},
                "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 32 << 20},
            })
        );
        assert_eq!(task["LogDriver"], serde_json::json!({"Name": "json-file", "Options": {"max-size": "1m"}}));
        let expected = serde_json::json!({
            "Hostname": "web", "Hosts": ["10.0.0.5 db"],
            "DNSConfig": {"Nameservers": ["9.9.9.9"], "Search": ["example.internal"]},
            "ReadOnly": true, "Init": true, "Sysctls": {"net.core.somaxconn": "1024"},
            "CapabilityAdd": ["CAP_NET_ADMIN"], "CapabilityDrop": ["CAP_MKNOD"],
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
            "Mounts": [
                {"Target": "/run", "Type": "tmpfs", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}},
                {"Target": "/tmp", "Type": "tmpfs"},
            ],
        });
        for (key, value) in expected.as_object().unwrap() {
            assert_eq!(&task["ContainerSpec"][key], value, "ContainerSpec.{key}");
        }
        assert_eq!(task["ContainerSpec"]["Image"], "r/web@sha256:aa", "beside the spec's own keys");

        spec.workload.runtime.engine_only.privileged = true;
        let error = service_spec(&spec).unwrap_err().to_string();
        assert!(
            error.contains("service web") && error.contains("privileged: a swarm service cannot run privileged"),
            "{error}"
        );
    }

    #[test]
    fn nothing_of_the_runtime_set_sends_nothing() {
        let spec = SwarmServiceSpec { name: "w".into(), image: "i".into(), replicas: 1, ..Default::default() };
        let body = serde_json::to_value(service_spec(&spec).unwrap()).unwrap();
        for key in ["Resources", "LogDriver"] {
            assert!(body["TaskTemplate"].get(key).is_none(), "{key}: {body}");
        }
        for key in
            ["Hostname", "Hosts", "DNSConfig", "ReadOnly", "Init", "Sysctls", "CapabilityAdd", "Ulimits", "Mounts"]
        {
            assert!(body["TaskTemplate"]["ContainerSpec"].get(key).is_none(), "{key}: {body}");
        }
    }

    #[test]
    fn without_deploy_restart_policy_restart_says_it_as_docker_stack_deploy_converts_it() {
        let policy = |restart: Option<&str>| {
            let workload = Workload { restart: restart.map(str::to_owned), ..Workload::default() };
            let spec =
                SwarmServiceSpec { name: "w".into(), image: "i".into(), replicas: 1, workload, ..Default::default() };
            serde_json::to_value(service_spec(&spec).unwrap()).unwrap()["TaskTemplate"]["RestartPolicy"].clone()
        };
        assert_eq!(policy(Some("always")), serde_json::json!({"Condition": "any"}));
        assert_eq!(policy(Some("unless-stopped")), serde_json::json!({"Condition": "any"}));
        assert_eq!(policy(Some("on-failure:3")), serde_json::json!({"Condition": "on-failure", "MaxAttempts": 3}));
        assert_eq!(policy(Some("on-failure")), serde_json::json!({"Condition": "on-failure", "MaxAttempts": 0}));
        assert_eq!(policy(Some("no")), serde_json::Value::Null, "swarm's default");
        assert_eq!(policy(None), serde_json::Value::Null);
    }

    #[test]
    fn placement_restart_policy_and_deploy_labels_go_to_the_service() {
        use crate::deploy::model::{RestartCondition, RestartPolicy, Scheduling, Session};
        use std::time::Duration;
        let runtime = Runtime {
            scheduling: Scheduling {
                constraints: vec!["node.role == manager".into()],
                preferences: vec!["node.labels.zone".into()],
                max_replicas_per_node: Some(2),
                labels: [("tier".into(), "web".into())].into(),
                restart_policy: Some(RestartPolicy {
                    condition: RestartCondition::OnFailure,
                    delay: Some(Duration::from_secs(5)),
                    max_attempts: Some(3),
                    window: Some(Duration::from_secs(90)),
                }),
            },
            session: Session { tty: true, stdin_open: true, group_add: vec!["audio".into()] },
            ..Default::default()
        };
        let spec = SwarmServiceSpec {
            name: "web".into(),
            image: "r/web@sha256:aa".into(),
            replicas: 1,
            labels: [("imgctl.service".into(), "web".into())].into(),
            workload: Workload { runtime, labels: [("team".into(), "a".into())].into(), ..Default::default() },
            ..Default::default()
        };
        let body = serde_json::to_value(service_spec(&spec).unwrap()).unwrap();
        let task = &body["TaskTemplate"];
        assert_eq!(
            task["Placement"],
            serde_json::json!({
                "Constraints": ["node.role == manager"],
                "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
                "MaxReplicas": 2,
            })
        );
        assert_eq!(
            task["RestartPolicy"],
            serde_json::json!({"Condition": "on-failure", "Delay": 5_000_000_000i64, "MaxAttempts": 3, "Window": 90_000_000_000i64})
        );
        assert_eq!(body["Labels"], serde_json::json!({"team": "a", "tier": "web", "imgctl.service": "web"}));
        assert_eq!(
            task["ContainerSpec"]["Labels"],
            serde_json::json!({"team": "a", "imgctl.service": "web"}),
            "deploy.labels label the service, not its containers"
        );
        let container = &task["ContainerSpec"];
        assert_eq!((&container["TTY"], &container["OpenStdin"]), (&serde_json::json!(true), &serde_json::json!(true)));
        assert_eq!(container["Groups"], serde_json::json!(["audio"]));
    }
}
