//! How a replica's container runs, beyond what it runs: compose's runtime keys (resources,
//! capabilities, ulimits, hosts, DNS, tmpfs, logging, sysctls, ...), parsed once, in the
//! Engine API's units. The Engine applies all of them; a swarm service takes what its
//! `TaskTemplate` can carry, and [`Runtime::refused_on_swarm`] names the rest.

use std::collections::BTreeMap;

mod knobs;

pub use knobs::{Blkio, RestartCondition, RestartPolicy, Scheduling, Session, Throttle, Tuning};

/// Resource limits and reservations: compose `deploy.resources`, or the service-level
/// `cpus`, `mem_limit`, `pids_limit` and `mem_reservation` (the same settings, two spellings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPUs as billionths of a CPU (`1.5` → 1 500 000 000).
    pub cpus_limit: Option<i64>,
    /// Memory in bytes.
    pub memory_limit: Option<i64>,
    /// Processes (`-1`: unlimited).
    pub pids_limit: Option<i64>,
    /// CPUs reserved (swarm schedules by it; a single Engine has no such thing).
    pub cpus_reservation: Option<i64>,
    /// Memory reserved: swarm schedules by it; on the Engine it is the soft limit.
    pub memory_reservation: Option<i64>,
}

/// One `ulimits` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ulimit {
    /// `nofile`, `nproc`, ...
    pub name: String,
    /// The soft limit.
    pub soft: i64,
    /// The hard limit.
    pub hard: i64,
}

/// One `extra_hosts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraHost {
    /// The name.
    pub host: String,
    /// An IP address, or `host-gateway` (the Engine's own address, Engine 20.10+).
    pub ip: String,
}

/// One `tmpfs` mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tmpfs {
    /// The absolute path in the container.
    pub path: String,
    /// The mount options as written (`size=64m,mode=1777`), empty for none.
    pub options: String,
    /// `size=`, in bytes, when given.
    pub size: Option<i64>,
    /// `mode=`, when given (octal in compose).
    pub mode: Option<u32>,
    /// Options other than `size` and `mode` (`noexec`, `uid=1000`, ...).
    pub other: Vec<String>,
}

/// compose `logging`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Logging {
    /// The driver; `None` keeps the engine's default driver.
    pub driver: Option<String>,
    /// The driver's options, values as strings.
    pub options: BTreeMap<String, String>,
}

/// Keys a single Engine applies and a swarm service cannot carry (API 1.41): `docker stack
/// deploy` ignores every one of them with a warning; imgctl refuses them on swarm instead.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineOnly {
    /// compose `privileged`.
    pub privileged: bool,
    /// compose `devices`, as `host:container:permissions`.
    pub devices: Vec<Device>,
    /// compose `shm_size`, bytes.
    pub shm_size: Option<i64>,
    /// compose `security_opt` (`seccomp=` carries the profile itself, read from its file).
    pub security_opt: Vec<String>,
    /// compose `pid` (`host`, `container:NAME`).
    pub pid: Option<String>,
    /// compose `ipc` (`host`, `private`, `shareable`, `none`, `container:NAME`).
    pub ipc: Option<String>,
    /// compose `domainname`.
    pub domainname: Option<String>,
    /// CPU, swap, OOM, block I/O, namespaces, cgroups, runtime.
    pub tuning: Tuning,
}

/// One `devices` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The device on the host.
    pub host: String,
    /// Where it appears in the container.
    pub container: String,
    /// cgroup permissions, `rwm` by default.
    pub permissions: String,
}

/// A key one target cannot apply, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The compose key, e.g. `privileged`.
    pub key: &'static str,
    /// Why, and what to do instead.
    pub reason: &'static str,
}

impl std::fmt::Display for Refusal {
    /// `key: reason`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// compose's runtime keys of one service. Empty and `None` keep the engine's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Runtime {
    /// Limits and reservations.
    pub resources: Resources,
    /// compose `cap_add`.
    pub cap_add: Vec<String>,
    /// compose `cap_drop`.
    pub cap_drop: Vec<String>,
    /// compose `ulimits`, sorted by name.
    pub ulimits: Vec<Ulimit>,
    /// compose `extra_hosts`, in order.
    pub extra_hosts: Vec<ExtraHost>,
    /// compose `dns`: nameserver addresses.
    pub dns: Vec<String>,
    /// compose `dns_search`.
    pub dns_search: Vec<String>,
    /// compose `dns_opt`.
    pub dns_opt: Vec<String>,
    /// compose `tmpfs`.
    pub tmpfs: Vec<Tmpfs>,
    /// compose `read_only`: the root filesystem is read-only.
    pub read_only: bool,
    /// compose `init`: an init process as PID 1 reaps zombies and forwards signals.
    pub init: Option<bool>,
    /// compose `logging`.
    pub logging: Option<Logging>,
    /// compose `sysctls`.
    pub sysctls: BTreeMap<String, String>,
    /// compose `hostname`: the same for every replica of both colors (a name inside the
    /// container, unlike `container_name`, two containers may share it).
    pub hostname: Option<String>,
    /// What only a single Engine applies.
    pub engine_only: EngineOnly,
    /// compose `tty`, `stdin_open`, `group_add`.
    pub session: Session,
    /// compose `deploy.placement`, `deploy.labels`, `deploy.restart_policy`.
    pub scheduling: Scheduling,
}

/// Why a swarm service refuses a key of [`Tuning`].
const TUNING_ON_SWARM: &str = "a swarm service has no such setting and `docker stack deploy` does not apply it (remove it, or use x-imgctl.target: engine)";

impl Runtime {
    /// The keys set here that a swarm service cannot carry, each with its reason.
    pub fn refused_on_swarm(&self) -> Vec<Refusal> {
        let e = &self.engine_only;
        let mut refused = Vec::new();
        let mut refuse = |set: bool, key, reason| {
            if set {
                refused.push(Refusal { key, reason });
            }
        };
        refuse(e.privileged, "privileged", "a swarm service cannot run privileged (docker stack deploy ignores it)");
        refuse(
            !e.devices.is_empty(),
            "devices",
            "a swarm service cannot map host devices (docker stack deploy ignores them)",
        );
        refuse(
            e.shm_size.is_some(),
            "shm_size",
            "a swarm service has no shm_size (docker stack deploy ignores it); mount a tmpfs at /dev/shm instead (tmpfs: /dev/shm:size=64m)",
        );
        refuse(
            !e.security_opt.is_empty(),
            "security_opt",
            "a swarm service takes no security options (docker stack deploy ignores them)",
        );
        refuse(e.pid.is_some(), "pid", "a swarm service cannot share a PID namespace (docker stack deploy ignores it)");
        refuse(e.ipc.is_some(), "ipc", "a swarm service cannot set its IPC mode (docker stack deploy ignores it)");
        refuse(
            e.domainname.is_some(),
            "domainname",
            "a swarm service has no domainname (docker stack deploy ignores it); set hostname to the full name",
        );
        refuse(
            self.tmpfs.iter().any(|t| !t.other.is_empty()),
            "tmpfs",
            "a swarm tmpfs mount takes only size= and mode= (Engine API 1.41)",
        );
        refused.extend(e.tuning.keys_set().into_iter().map(|key| Refusal { key, reason: TUNING_ON_SWARM }));
        refused
    }

    /// The keys set here that a single Engine cannot apply, each with its reason.
    pub fn refused_on_engine(&self) -> Vec<Refusal> {
        let mut refused = Vec::new();
        if self.resources.cpus_reservation.is_some() {
            refused.push(Refusal {
                key: "deploy.resources.reservations.cpus",
                reason: "a container on a single Engine has no CPU reservation (docker-compose 1.29 ignores it with a warning); set it with x-imgctl.target: swarm, or use deploy.resources.limits.cpus",
            });
        }
        refused
    }

    /// What a single Engine does not apply of the keys set here, said (compose v2 drops them
    /// without a word): swarm's placement and service labels, a restart policy's timing.
    pub fn notes_on_engine(&self) -> Vec<String> {
        let s = &self.scheduling;
        let mut notes = Vec::new();
        if s.has_placement() {
            notes.push(
                "deploy.placement: one Engine places nothing, every replica runs on it (compose v2 ignores it too); it applies with x-imgctl.target: swarm".to_owned(),
            );
        }
        if !s.labels.is_empty() {
            notes.push(
                "deploy.labels: they label a swarm service, and a single Engine has none (compose v2 ignores them too); service labels (labels:) label each replica".to_owned(),
            );
        }
        if let Some(policy) = &s.restart_policy
            && (policy.delay.is_some() || policy.window.is_some())
        {
            notes.push(
                "deploy.restart_policy: the Engine restarts by condition and max_attempts; delay and window are swarm's (compose v2 drops them too)".to_owned(),
            );
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_set_is_refused_nowhere() {
        assert_eq!(Runtime::default().refused_on_swarm(), []);
        assert_eq!(Runtime::default().refused_on_engine(), []);
    }

    #[test]
    fn each_engine_only_key_is_refused_on_swarm_by_name() {
        let device = Device { host: "/dev/fuse".into(), container: "/dev/fuse".into(), permissions: "rwm".into() };
        let cases: [(&str, Runtime); 8] = [
            (
                "privileged",
                Runtime { engine_only: EngineOnly { privileged: true, ..Default::default() }, ..Default::default() },
            ),
            (
                "devices",
                Runtime {
                    engine_only: EngineOnly { devices: vec![device], ..Default::default() },
                    ..Default::default()
                },
            ),
            (
                "shm_size",
                Runtime { engine_only: EngineOnly { shm_size: Some(1), ..Default::default() }, ..Default::default() },
            ),
            (
                "security_opt",
                Runtime {
                    engine_only: EngineOnly { security_opt: vec!["no-new-privileges".into()], ..Default::default() },
                    ..Default::default()
                },
            ),
            (
                "pid",
                Runtime {
                    engine_only: EngineOnly { pid: Some("host".into()), ..Default::default() },
                    ..Default::default()
                },
            ),
            (
                "ipc",
                Runtime {
                    engine_only: EngineOnly { ipc: Some("host".into()), ..Default::default() },
                    ..Default::default()
                },
            ),
            (
                "domainname",
                Runtime {
                    engine_only: EngineOnly { domainname: Some("example.org".into()), ..Default::default() },
                    ..Default::default()
                },
            ),
            (
                "tmpfs",
                Runtime {
                    tmpfs: vec![Tmpfs {
                        path: "/run".into(),
                        options: "noexec".into(),
                        size: None,
                        mode: None,
                        other: vec!["noexec".into()],
                    }],
                    ..Default::default()
                },
            ),
        ];
        for (key, runtime) in cases {
            let refused = runtime.refused_on_swarm();
            assert_eq!(refused.iter().map(|r| r.key).collect::<Vec<_>>(), [key]);
            assert!(!refused[0].reason.is_empty());
            assert_eq!(runtime.refused_on_engine(), [], "{key} is fine on the Engine");
        }
        let reserved =
            Runtime { resources: Resources { cpus_reservation: Some(1), ..Default::default() }, ..Default::default() };
        assert_eq!(reserved.refused_on_engine()[0].key, "deploy.resources.reservations.cpus");
        assert_eq!(reserved.refused_on_swarm(), []);
    }

    #[test]
    fn each_tuning_key_is_refused_on_swarm_and_swarm_scheduling_is_noted_on_the_engine() {
        let tuning = Tuning {
            cpu_shares: Some(512),
            cpuset: Some("0".into()),
            oom_kill_disable: Some(false),
            blkio: Blkio { weight: Some(300), ..Default::default() },
            storage_opt: [("size".into(), "1G".into())].into(),
            ..Default::default()
        };
        let runtime = Runtime { engine_only: EngineOnly { tuning, ..Default::default() }, ..Default::default() };
        let keys: Vec<_> = runtime.refused_on_swarm().iter().map(|r| r.key).collect();
        assert_eq!(keys, ["cpu_shares", "cpuset", "oom_kill_disable", "blkio_config", "storage_opt"]);
        assert_eq!(runtime.refused_on_engine(), []);
        assert_eq!(runtime.notes_on_engine(), Vec::<String>::new());

        let scheduling = Scheduling {
            constraints: vec!["node.role == manager".into()],
            labels: [("tier".into(), "web".into())].into(),
            restart_policy: Some(RestartPolicy {
                condition: RestartCondition::OnFailure,
                delay: Some(std::time::Duration::from_secs(5)),
                max_attempts: Some(3),
                window: None,
            }),
            ..Default::default()
        };
        let runtime = Runtime { scheduling, ..Default::default() };
        let notes = runtime.notes_on_engine();
        assert_eq!(notes.len(), 3, "{notes:?}");
        for (note, key) in notes.iter().zip(["deploy.placement:", "deploy.labels:", "deploy.restart_policy:"]) {
            assert!(note.starts_with(key), "{note}");
        }
        assert_eq!(runtime.refused_on_swarm(), []);
    }
}
