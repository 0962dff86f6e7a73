//! Every compose service key imgctl knows, and what it does with it: nothing in a compose
//! file is dropped without a word. A key is applied to each replica (by the spec, or by the
//! runtime keys' reader), accepted with a note saying why it changes nothing, or refused with
//! the reason. A key compose does not know is refused by name, with the nearest known key.

/// The `healthcheck` keys.
pub const HEALTHCHECK_KEYS: &[(&str, Treatment)] = {
    use Treatment::*;
    &[
        ("test", Applied),
        ("interval", Applied),
        ("timeout", Applied),
        ("retries", Applied),
        ("start_period", Applied),
        ("disable", Applied),
        ("start_interval", Refused("not yet supported: imgctl does not pass start_interval to docker yet")),
    ]
};

/// What imgctl does with a service key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Treatment {
    /// Read into the workload or the deploy settings.
    Applied,
    /// Read by the loader itself (`extends`, `env_file`), gone from the resolved service.
    Loader,
    /// Applied to each replica's container or service as docker runs it (the runtime keys).
    Runtime,
    /// Accepted, with this note: it changes nothing in what imgctl deploys.
    Ignored(&'static str),
    /// Refused, for this reason.
    Refused(&'static str),
}

/// compose keys imgctl does not apply yet (the compose specification's service keys).
const NOT_YET: &str = "imgctl does not apply it yet; remove it, or deploy this service with compose";

/// The service keys, in the compose specification's order of topics.
pub const SERVICE_KEYS: &[(&str, Treatment)] = {
    use Treatment::*;
    &[
        ("image", Applied),
        ("command", Applied),
        ("entrypoint", Applied),
        ("environment", Applied),
        ("env_file", Loader),
        ("extends", Loader),
        ("working_dir", Applied),
        ("user", Applied),
        ("healthcheck", Applied),
        ("volumes", Applied),
        ("networks", Applied),
        ("labels", Applied),
        ("restart", Applied),
        ("stop_signal", Applied),
        ("stop_grace_period", Applied),
        ("expose", Applied),
        ("ports", Applied),
        ("deploy", Applied),
        ("cap_add", Runtime),
        ("cap_drop", Runtime),
        ("ulimits", Runtime),
        ("extra_hosts", Runtime),
        ("dns", Runtime),
        ("dns_search", Runtime),
        ("tmpfs", Runtime),
        ("read_only", Runtime),
        ("init", Runtime),
        ("logging", Runtime),
        ("sysctls", Runtime),
        ("shm_size", Runtime),
        ("security_opt", Runtime),
        ("devices", Runtime),
        ("privileged", Runtime),
        ("pid", Runtime),
        ("ipc", Runtime),
        ("hostname", Runtime),
        ("domainname", Runtime),
        ("depends_on", Ignored("imgctl deploys this service alone: the services it depends on must already run")),
        (
            "profiles",
            Ignored(
                "a service named on the command line is deployed whatever its profiles, as `docker compose up SERVICE` does",
            ),
        ),
        ("pull_policy", Ignored("imgctl always pulls the pinned digest (a digest never changes)")),
        ("container_name", Refused("the two colors run side by side and cannot share one container name")),
        (
            "build",
            Refused("imgctl deploys an image a registry holds, by digest: build and push it in CI, then set image"),
        ),
        (
            "network_mode",
            Refused(
                "the two colors must each have their own network stack (host networking makes their ports clash); use networks",
            ),
        ),
        (
            "links",
            Refused("links bind to one container, and the colors come and go; use networks and the service name"),
        ),
        ("external_links", Refused("links bind to one container, and the colors come and go; use networks")),
        ("volumes_from", Refused("it ties each replica to another container's lifetime; name the volumes instead")),
        ("scale", Refused("set deploy.replicas")),
        ("mac_address", Refused("the two colors run at the same time and cannot share one MAC address")),
        ("secrets", Applied),
        ("configs", Applied),
        (
            "platform",
            Refused(
                "imgctl pins the digest the registry holds and runs it as pulled; pin the digest of the platform you want (a per-platform manifest) instead",
            ),
        ),
        ("annotations", Refused(NOT_YET)),
        ("attach", Refused(NOT_YET)),
        ("blkio_config", Runtime),
        ("cgroup", Refused(NOT_YET)),
        ("cgroup_parent", Runtime),
        ("cpu_count", Refused(NOT_YET)),
        ("cpu_percent", Refused(NOT_YET)),
        ("cpu_period", Runtime),
        ("cpu_quota", Runtime),
        ("cpu_rt_period", Runtime),
        ("cpu_rt_runtime", Runtime),
        ("cpu_shares", Runtime),
        ("cpus", Runtime),
        ("cpuset", Runtime),
        ("credential_spec", Refused(NOT_YET)),
        ("develop", Refused(NOT_YET)),
        ("device_cgroup_rules", Runtime),
        ("dns_opt", Runtime),
        ("gpus", Refused(NOT_YET)),
        ("group_add", Runtime),
        ("isolation", Refused(NOT_YET)),
        ("log_driver", Refused("set logging.driver")),
        ("log_opt", Refused("set logging.options")),
        ("mem_limit", Runtime),
        ("mem_reservation", Runtime),
        ("mem_swappiness", Runtime),
        ("memswap_limit", Runtime),
        ("oom_kill_disable", Runtime),
        ("oom_score_adj", Runtime),
        ("pids_limit", Runtime),
        ("post_start", Refused(NOT_YET)),
        ("pre_stop", Refused(NOT_YET)),
        ("runtime", Runtime),
        ("stdin_open", Runtime),
        ("storage_opt", Runtime),
        ("tty", Runtime),
        ("userns_mode", Runtime),
        ("uts", Runtime),
        ("volume_driver", Refused(NOT_YET)),
    ]
};

/// The `deploy` keys.
pub const DEPLOY_KEYS: &[(&str, Treatment)] = {
    use Treatment::*;
    &[
        ("replicas", Applied),
        ("update_config", Applied),
        ("rollback_config", Applied),
        ("resources", Runtime),
        // replicated, or global on a swarm rolling update (checked by the spec).
        ("mode", Applied),
        ("restart_policy", Runtime),
        ("placement", Runtime),
        ("labels", Runtime),
        ("endpoint_mode", Refused("not yet supported: imgctl reaches swarm tasks by their names (tasks.SERVICE)")),
    ]
};

/// What imgctl does with `key` of a service (`x-` keys: `x-imgctl` is applied, others are
/// compose's extension fields, ignored as compose ignores them).
pub fn treatment(key: &str) -> Option<Treatment> {
    if key == "x-imgctl" {
        return Some(Treatment::Applied);
    }
    if key.starts_with("x-") {
        return Some(Treatment::Ignored("an extension field (x-): compose ignores it, and so does imgctl"));
    }
    lookup(SERVICE_KEYS, key)
}

/// What imgctl does with `healthcheck.KEY`.
pub fn healthcheck_treatment(key: &str) -> Option<Treatment> {
    lookup(HEALTHCHECK_KEYS, key)
}

/// What imgctl does with `deploy.KEY`.
pub fn deploy_treatment(key: &str) -> Option<Treatment> {
    lookup(DEPLOY_KEYS, key)
}

fn lookup(table: &[(&str, Treatment)], key: &str) -> Option<Treatment> {
    table.iter().find(|(name, _)| *name == key).map(|(_, t)| *t)
}

/// The known key nearest to a misspelt `key`, if one is near enough to be meant.
pub fn nearest(table: &[(&'static str, Treatment)], key: &str) -> Option<&'static str> {
    table
        .iter()
        .map(|(name, _)| (*name, strsim::damerau_levenshtein(key, name)))
        .filter(|(name, distance)| *distance <= 2.max(name.len() / 4))
        .min_by_key(|(_, distance)| *distance)
        .map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_once_and_typos_find_their_key() {
        for table in [SERVICE_KEYS, DEPLOY_KEYS, HEALTHCHECK_KEYS] {
            for (i, (key, _)) in table.iter().enumerate() {
                assert!(!table[i + 1..].iter().any(|(k, _)| k == key), "{key} twice");
            }
        }
        assert_eq!(nearest(SERVICE_KEYS, "enviroment"), Some("environment"));
        assert_eq!(nearest(SERVICE_KEYS, "helthcheck"), Some("healthcheck"));
        assert_eq!(nearest(SERVICE_KEYS, "imgae"), Some("image"));
        assert_eq!(nearest(DEPLOY_KEYS, "replica"), Some("replicas"));
        assert_eq!(nearest(SERVICE_KEYS, "zzzzzz"), None);
        assert_eq!(
            treatment("x-anything"),
            Some(Treatment::Ignored("an extension field (x-): compose ignores it, and so does imgctl"))
        );
    }
}
