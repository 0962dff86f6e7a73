//! The runtime keys beyond the common ones: how swarm places and restarts a service's tasks
//! (`deploy.placement`, `deploy.labels`, `deploy.restart_policy`), the session keys both
//! targets run (`tty`, `stdin_open`, `group_add`), and the kernel knobs only a single Engine
//! sets (CPU shares and quotas, swap, OOM, block I/O, namespaces, cgroups, runtime).

use std::collections::BTreeMap;
use std::time::Duration;

/// compose `deploy.placement`, `deploy.labels` and `deploy.restart_policy`: swarm's, with no
/// meaning for one Engine's containers (compose v2 runs none of them there but the restart
/// policy; see [`super::Runtime::notes_on_engine`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scheduling {
    /// `deploy.placement.constraints` (`node.role == manager`).
    pub constraints: Vec<String>,
    /// `deploy.placement.preferences`: the spread descriptors (`node.labels.zone`).
    pub preferences: Vec<String>,
    /// `deploy.placement.max_replicas_per_node`.
    pub max_replicas_per_node: Option<u64>,
    /// `deploy.labels`: the swarm service's own labels (not its containers').
    pub labels: BTreeMap<String, String>,
    /// `deploy.restart_policy`.
    pub restart_policy: Option<RestartPolicy>,
}

impl Scheduling {
    /// Whether any placement key is set.
    pub fn has_placement(&self) -> bool {
        !self.constraints.is_empty() || !self.preferences.is_empty() || self.max_replicas_per_node.is_some()
    }
}

/// compose `deploy.restart_policy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// `condition` (`any` when not given, as swarm's default).
    pub condition: RestartCondition,
    /// `delay` between restarts.
    pub delay: Option<Duration>,
    /// `max_attempts` (none: no limit).
    pub max_attempts: Option<u64>,
    /// `window`: how long a restarted task must run to count as restarted.
    pub window: Option<Duration>,
}

/// When a task is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartCondition {
    /// `none`.
    Never,
    /// `on-failure`.
    OnFailure,
    /// `any`.
    Any,
}

/// compose `tty`, `stdin_open` and `group_add`: both targets run them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Session {
    /// compose `tty`.
    pub tty: bool,
    /// compose `stdin_open`.
    pub stdin_open: bool,
    /// compose `group_add`: supplementary groups, names or ids.
    pub group_add: Vec<String>,
}

/// One `blkio_config.device_*` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// The device on the host (`/dev/sda`).
    pub path: String,
    /// Bytes (or operations) a second; a weight for `weight_device`.
    pub rate: i64,
}

/// compose `blkio_config`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blkio {
    /// `weight`, 10 to 1000.
    pub weight: Option<u16>,
    /// `weight_device`.
    pub weight_device: Vec<Throttle>,
    /// `device_read_bps`.
    pub device_read_bps: Vec<Throttle>,
    /// `device_write_bps`.
    pub device_write_bps: Vec<Throttle>,
    /// `device_read_iops`.
    pub device_read_iops: Vec<Throttle>,
    /// `device_write_iops`.
    pub device_write_iops: Vec<Throttle>,
}

impl Blkio {
    /// Whether any of it is set.
    pub fn is_set(&self) -> bool {
        self != &Blkio::default()
    }
}

/// The kernel knobs a container on one Engine takes and a swarm service (API 1.41) has no
/// field for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tuning {
    /// compose `cpu_shares` (relative weight, 1024 is the default).
    pub cpu_shares: Option<i64>,
    /// compose `cpu_period`, microseconds.
    pub cpu_period: Option<i64>,
    /// compose `cpu_quota`, microseconds per period (-1: none).
    pub cpu_quota: Option<i64>,
    /// compose `cpuset` (`0-1`, `0,2`).
    pub cpuset: Option<String>,
    /// compose `cpu_rt_period`, microseconds.
    pub cpu_rt_period: Option<i64>,
    /// compose `cpu_rt_runtime`, microseconds.
    pub cpu_rt_runtime: Option<i64>,
    /// compose `memswap_limit`, bytes (memory plus swap; -1: unlimited swap).
    pub memswap_limit: Option<i64>,
    /// compose `mem_swappiness`, 0 to 100.
    pub mem_swappiness: Option<i64>,
    /// compose `oom_kill_disable`.
    pub oom_kill_disable: Option<bool>,
    /// compose `oom_score_adj`, -1000 to 1000.
    pub oom_score_adj: Option<i64>,
    /// compose `blkio_config`.
    pub blkio: Blkio,
    /// compose `userns_mode` (`host`).
    pub userns_mode: Option<String>,
    /// compose `uts` (`host`).
    pub uts: Option<String>,
    /// compose `cgroup_parent`.
    pub cgroup_parent: Option<String>,
    /// compose `device_cgroup_rules` (`c 1:3 mr`).
    pub device_cgroup_rules: Vec<String>,
    /// compose `runtime` (`runc`, `runsc`).
    pub runtime: Option<String>,
    /// compose `storage_opt` (`size: 1G`).
    pub storage_opt: BTreeMap<String, String>,
}

impl Tuning {
    /// The compose keys set here, in the order compose's documentation lists them.
    pub fn keys_set(&self) -> Vec<&'static str> {
        [
            ("cpu_shares", self.cpu_shares.is_some()),
            ("cpu_period", self.cpu_period.is_some()),
            ("cpu_quota", self.cpu_quota.is_some()),
            ("cpuset", self.cpuset.is_some()),
            ("cpu_rt_period", self.cpu_rt_period.is_some()),
            ("cpu_rt_runtime", self.cpu_rt_runtime.is_some()),
            ("memswap_limit", self.memswap_limit.is_some()),
            ("mem_swappiness", self.mem_swappiness.is_some()),
            ("oom_kill_disable", self.oom_kill_disable.is_some()),
            ("oom_score_adj", self.oom_score_adj.is_some()),
            ("blkio_config", self.blkio.is_set()),
            ("userns_mode", self.userns_mode.is_some()),
            ("uts", self.uts.is_some()),
            ("cgroup_parent", self.cgroup_parent.is_some()),
            ("device_cgroup_rules", !self.device_cgroup_rules.is_empty()),
            ("runtime", self.runtime.is_some()),
            ("storage_opt", !self.storage_opt.is_empty()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
}
