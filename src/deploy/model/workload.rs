//! What one replica runs, whatever image it runs: the compose service as the template of every
//! replica of both colors. The targets turn it into a container or a swarm service; the spec
//! reads it from compose and `x-imgctl`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{FileMount, Runtime};

/// A docker healthcheck (compose `healthcheck:`), durations already parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Time between checks.
    pub interval: Option<Duration>,
    /// Time a check may take.
    pub timeout: Option<Duration>,
    /// Consecutive failures before unhealthy.
    pub retries: Option<u32>,
    /// Grace period during which failures do not count.
    pub start_period: Option<Duration>,
}

/// The template of one replica: how it runs, apart from its image, its name and imgctl's own
/// labels (those differ per color and replica, and each target adds them). `None` and empty
/// keep what the image says.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// compose `environment`, as `KEY=VALUE` (a bare `KEY` as compose gives it).
    pub environment: Vec<String>,
    /// compose `command`: replaces the image's CMD.
    pub command: Option<Vec<String>>,
    /// compose `entrypoint`: replaces the image's ENTRYPOINT.
    pub entrypoint: Option<Vec<String>>,
    /// compose `working_dir`.
    pub working_dir: Option<String>,
    /// compose `user`.
    pub user: Option<String>,
    /// compose `healthcheck`, as docker runs it; `None` keeps the image's.
    pub healthcheck: Option<Healthcheck>,
    /// compose `volumes`, short syntax: `src:dst[:mode]` (an absolute host path or a named
    /// volume), or `dst` alone for an anonymous volume. A relative host path is resolved
    /// against the compose file's folder by the spec; the Engine refuses one left relative.
    pub volumes: Vec<String>,
    /// compose `networks`, in order.
    pub networks: Vec<String>,
    /// compose `labels`.
    pub labels: BTreeMap<String, String>,
    /// compose `restart`: `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`.
    pub restart: Option<String>,
    /// compose `stop_signal` (e.g. `SIGQUIT` for nginx, `SIGKILL` for a server that ignores
    /// SIGTERM as PID 1).
    pub stop_signal: Option<String>,
    /// From the stop signal to SIGKILL: `x-imgctl.stop_grace`, else compose
    /// `stop_grace_period`, else [`Workload::DEFAULT_STOP_GRACE`].
    pub stop_grace: Duration,
    /// The container port the replica serves on (`x-imgctl.port`, else compose `expose` or
    /// `ports`); `None` only where nothing reaches the replicas through imgctl (swarm's own
    /// rolling update: a queue worker listens on nothing).
    pub port: Option<u16>,
    /// compose's runtime keys (resources, capabilities, ulimits, hosts, DNS, tmpfs, logging,
    /// sysctls, ...): how the container runs, one value for every replica.
    pub runtime: Runtime,
    /// compose `secrets` and `configs`: files each replica gets, in the order written.
    pub files: Vec<FileMount>,
}

impl Workload {
    /// The stop grace when neither compose nor `x-imgctl` gives one (docker's own default).
    pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
}

impl Default for Workload {
    /// The image as it is: nothing replaced, no port, docker's stop grace.
    fn default() -> Self {
        Self {
            environment: Vec::new(),
            command: None,
            entrypoint: None,
            working_dir: None,
            user: None,
            healthcheck: None,
            volumes: Vec::new(),
            networks: Vec::new(),
            labels: BTreeMap::new(),
            restart: None,
            stop_signal: None,
            stop_grace: Self::DEFAULT_STOP_GRACE,
            port: None,
            runtime: Runtime::default(),
            files: Vec::new(),
        }
    }
}
