//! The `x-imgctl` block: what compose has no word for (the target, the strategy, the health
//! gate, the traffic switch, hooks, timings, canary steps), read with its defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

mod host_ports;

pub use host_ports::PortRange;

use crate::deploy::child_env;
use crate::deploy::compose::{parse_duration, scalar, words};

/// How the new version replaces the old one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Start the idle color beside the live one, switch all traffic at once.
    #[default]
    BlueGreen,
    /// Replace replicas in batches (`deploy.update_config`).
    Rolling,
    /// Shift traffic to the new color in weighted steps with pauses.
    Canary,
}

impl Strategy {
    /// `blue-green`, `rolling` or `canary`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlueGreen => "blue-green",
            Self::Rolling => "rolling",
            Self::Canary => "canary",
        }
    }
}

/// Where the service runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Containers on this Docker Engine, published on loopback for nginx.
    #[default]
    Engine,
    /// Docker Swarm services: `rolling` updates the service `SERVICE` in place (swarm's own
    /// update_config); `blue-green` and `canary` run `SERVICE-blue` and `SERVICE-green` behind
    /// nginx, which reaches them by name on `swarm.network`.
    Swarm,
}

/// Swarm settings (`x-imgctl.swarm`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SwarmSettings {
    /// The overlay network the services join and nginx reaches them on (needed for
    /// blue-green and canary).
    pub network: Option<String>,
    /// How long an update may take to converge before the deploy fails.
    pub converge_timeout: Duration,
    /// `x-imgctl.stack`: the stack `docker stack deploy` made, whose service `STACK_SERVICE`
    /// is updated in place (see `spec::stack`).
    pub stack: Option<String>,
}

/// The health gate a new replica must pass before it gets traffic.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HealthGate {
    /// An HTTP path probed on each replica's published port; without it the compose
    /// healthcheck (docker's health status) is the gate.
    pub path: Option<String>,
    /// Between probes.
    pub interval: Duration,
    /// One probe's limit.
    pub timeout: Duration,
    /// Consecutive successes that make a replica healthy.
    pub healthy_threshold: u32,
    /// The whole gate's limit: a replica not healthy by then fails the deploy.
    pub deadline: Duration,
}

/// The nginx traffic switch.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProxySettings {
    /// The file imgctl writes the service's `upstream` block into; nginx.conf includes it in
    /// its `http` block. `None`: no switch, as swarm's own rolling update moves no traffic
    /// through imgctl.
    pub upstream_file: Option<PathBuf>,
    /// The upstream's name (what `proxy_pass http://NAME` names). Default: the service name.
    pub upstream: String,
    /// The configuration test, run after the file is written (default `nginx -t -q`).
    pub test: Vec<String>,
    /// The reload (default `nginx -s reload`; `docker exec proxy nginx -s reload` for nginx in
    /// a container).
    pub reload: Vec<String>,
    /// A URL through nginx that must answer 2xx after the switch (default: none, then the
    /// switch is verified by the new replicas' health through their own ports).
    pub verify_url: Option<String>,
    /// Consecutive 2xx answers from `verify_url` that verify the switch.
    pub verify_count: u32,
    /// The host address the replicas' ports are published on and nginx reaches them at.
    pub host: String,
    /// A docker network the proxy runs on (nginx or haproxy in a container, the usual
    /// compose layout): imgctl joins each replica to it, and the switch reaches replicas at
    /// their IP address on it instead of a published host port.
    pub network: Option<String>,
}

/// The HAProxy traffic switch (`x-imgctl.proxy.kind: haproxy`): a `server-template` pool in
/// one backend, driven over the stats socket, never reloaded.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HaproxySettings {
    /// The stats socket (`stats socket PATH level admin` in haproxy.cfg).
    pub socket: PathBuf,
    /// The backend whose `server-template` slots imgctl owns. Default: `proxy.upstream`, else
    /// the service name.
    pub backend: String,
    /// Where the switch keeps the traffic and deploy state (haproxy keeps none across a
    /// restart); written before each change, replayed after a haproxy restart.
    pub state_file: PathBuf,
}

/// A canary step: a share of traffic on the new color, then a pause.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CanaryStep {
    /// Percent of requests sent to the new color (1..=100).
    pub weight: u32,
    /// Wait before the next step; `None` waits for `imgctl deploy --continue`.
    pub pause: Option<Duration>,
}

/// Everything `x-imgctl` says, with defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeploySettings {
    /// Docker Engine (default) or Docker Swarm.
    pub target: Target,
    /// Swarm settings.
    pub swarm: SwarmSettings,
    /// Blue/green (default), rolling or canary.
    pub strategy: Strategy,
    /// The gate for new replicas.
    pub health: HealthGate,
    /// The traffic switch.
    pub proxy: ProxySettings,
    /// With `proxy.kind: haproxy`, its settings (then `proxy.upstream_file`, `test` and
    /// `reload` are unused); `None`: nginx (or no switch).
    pub haproxy: Option<HaproxySettings>,
    /// The folder of lifecycle hooks.
    pub hooks_dir: PathBuf,
    /// A hook's time limit.
    pub hook_timeout: Duration,
    /// Variables of imgctl's environment that hooks and the proxy's test and reload commands
    /// get besides the allowed ones (`PATH`, `HOME`, `USER`, `LANG`, `LC_*`, `TZ`, `TMPDIR`).
    pub pass_env: Vec<String>,
    /// How long the old color keeps running after the switch, so a rollback is instant.
    pub keep_warm: Duration,
    /// The longest wait, after replicas leave traffic, for their open connections to end
    /// before they are stopped: the wait ends as soon as none is open.
    pub drain: Duration,
    /// Canary steps (the last one is 100).
    pub canary_steps: Vec<CanaryStep>,
    /// Fixed host ports for the replicas (`None`: ports the engine picks, new at each start).
    pub host_ports: Option<PortRange>,
    /// false: stop before the switch and wait for `imgctl deploy --continue`.
    pub auto_promote: bool,
    /// `x-imgctl.verify`: the signature policy (containers-policy.json) a digest must pass
    /// before it is pulled; `--policy` wins over it.
    pub verify: Option<PathBuf>,
}

impl DeploySettings {
    /// Refuses `host_ports` too small for both colors of `replicas` replicas (a switch runs
    /// them side by side).
    pub fn check_host_ports(&self, replicas: u32) -> Result<(), String> {
        match self.host_ports {
            Some(range) if range.count() < 2 * replicas as usize => Err(format!(
                "host_ports {range} holds {} port(s), and both colors of {replicas} replica(s) need {}",
                range.count(),
                2 * replicas
            )),
            _ => Ok(()),
        }
    }
}

/// The `x-imgctl` block, read: the deploy settings, and what it says of the workload.
#[derive(Debug)]
pub(super) struct Extension {
    /// Everything about the deploy.
    pub settings: DeploySettings,
    /// The port the replicas serve on: `x-imgctl.port`, else compose's.
    pub port: Option<u16>,
    /// `x-imgctl.stop_grace`, which wins over compose `stop_grace_period`.
    pub stop_grace: Option<Duration>,
}

/// Reads the merged `x-imgctl` block of `service` (`compose_port`: the port compose's own
/// fields give; `base`: the folder relative paths are taken from).
pub(super) fn parse(
    extension: &Value,
    service: &str,
    compose_port: Option<u16>,
    base: &Path,
) -> Result<Extension, String> {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        target: Option<Target>,
        swarm: Option<RawSwarm>,
        strategy: Option<Strategy>,
        port: Option<u16>,
        health: Option<RawHealth>,
        proxy: Option<RawProxy>,
        hooks: Option<PathBuf>,
        hook_timeout: Option<Value>,
        pass_env: Option<Vec<String>>,
        keep_warm: Option<Value>,
        drain: Option<Value>,
        stop_grace: Option<Value>,
        canary: Option<RawCanary>,
        auto_promote: Option<bool>,
        host_ports: Option<Value>,
        verify: Option<PathBuf>,
        stack: Option<String>,
    }
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct RawSwarm {
        network: Option<String>,
        converge_timeout: Option<Value>,
    }
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct RawHealth {
        path: Option<String>,
        interval: Option<Value>,
        timeout: Option<Value>,
        healthy_threshold: Option<u32>,
        deadline: Option<Value>,
    }
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct RawProxy {
        kind: Option<ProxyKind>,
        socket: Option<PathBuf>,
        backend: Option<String>,
        state_file: Option<PathBuf>,
        upstream_file: Option<PathBuf>,
        upstream: Option<String>,
        test: Option<Value>,
        reload: Option<Value>,
        verify_url: Option<String>,
        verify_count: Option<u32>,
        host: Option<String>,
        network: Option<String>,
    }
    #[derive(Deserialize, Default, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum ProxyKind {
        #[default]
        Nginx,
        Haproxy,
    }
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct RawCanary {
        steps: Vec<RawStep>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawStep {
        weight: u32,
        pause: Option<Value>,
    }

    let mut raw: Raw = if extension.is_null() {
        Raw::default()
    } else {
        serde_json::from_value(extension.clone()).map_err(|e| e.to_string())?
    };
    let optional = |v: Option<Value>, name: &str| -> Result<Option<Duration>, String> {
        v.map(|v| parse_duration(&scalar(&v)).map_err(|e| format!("{name}: {e}"))).transpose()
    };
    let duration = |v: Option<Value>, default: Duration, name: &str| -> Result<Duration, String> {
        optional(v, name).map(|d| d.unwrap_or(default))
    };
    let argv = |v: Option<Value>, default: &[&str], name: &str| -> Result<Vec<String>, String> {
        let list = v
            .map(|v| words(&v).map_err(|e| format!("{name}: {e}")))
            .transpose()?
            .unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect());
        if list.is_empty() { Err(format!("{name} is empty")) } else { Ok(list) }
    };
    let relative = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

    // Before the keys a stack's service needs none of (a port, a proxy).
    let stack = super::stack::read(raw.stack.take(), raw.target.unwrap_or_default(), raw.strategy.unwrap_or_default())?;
    let swarm_rolling = raw.target == Some(Target::Swarm) && raw.strategy == Some(Strategy::Rolling);
    let port = match raw.port.or(compose_port) {
        Some(port) => Some(port),
        None if swarm_rolling => None,
        None => return Err("no port: set x-imgctl.port, or expose/ports in the service".into()),
    };
    let health = raw.health.unwrap_or_default();
    let health = HealthGate {
        path: health.path.map(|p| if p.starts_with('/') { p } else { format!("/{p}") }),
        interval: duration(health.interval, Duration::from_secs(1), "health.interval")?,
        timeout: duration(health.timeout, Duration::from_secs(2), "health.timeout")?,
        healthy_threshold: health.healthy_threshold.unwrap_or(2).max(1),
        deadline: duration(health.deadline, Duration::from_secs(60), "health.deadline")?,
    };
    let mut proxy = raw.proxy.unwrap_or_default();
    // The first of `keys` that is set, of those that belong to the other kind.
    let first_set = |keys: [(&'static str, bool); 3]| keys.into_iter().find(|(_, set)| *set).map(|(key, _)| key);
    let haproxy = match proxy.kind.take().unwrap_or_default() {
        ProxyKind::Nginx => {
            let haproxy_keys = [
                ("socket", proxy.socket.is_some()),
                ("backend", proxy.backend.is_some()),
                ("state_file", proxy.state_file.is_some()),
            ];
            if let Some(key) = first_set(haproxy_keys) {
                return Err(format!("proxy.{key} is for proxy.kind haproxy (this proxy is nginx)"));
            }
            None
        }
        ProxyKind::Haproxy => {
            let nginx_keys = [
                ("upstream_file", proxy.upstream_file.is_some()),
                ("test", proxy.test.is_some()),
                ("reload", proxy.reload.is_some()),
            ];
            if let Some(key) = first_set(nginx_keys) {
                return Err(format!(
                    "proxy.{key} is for nginx: with proxy.kind haproxy imgctl changes servers over the stats socket and reloads nothing"
                ));
            }
            if raw.target == Some(Target::Swarm) {
                // haproxy 2.6 takes only IP addresses at runtime (`set server ... addr`), and
                // swarm colors are reached by DNS name (tasks.NAME).
                return Err("proxy.kind haproxy takes replica IP addresses, and swarm colors have DNS names: use nginx with target swarm".into());
            }
            let socket = proxy
                .socket
                .take()
                .ok_or("proxy.socket is required with proxy.kind haproxy: the stats socket (level admin)")?;
            let state_file = proxy.state_file.take().ok_or(
                "proxy.state_file is required with proxy.kind haproxy: where imgctl keeps the traffic state haproxy forgets when it restarts",
            )?;
            Some(HaproxySettings {
                socket: relative(socket),
                backend: proxy.backend.take().or_else(|| proxy.upstream.clone()).unwrap_or_else(|| service.to_owned()),
                state_file: relative(state_file),
            })
        }
    };
    if let Some(network) = &proxy.network {
        let plain = network.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && network.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !plain {
            return Err(format!("proxy.network: {network:?} is not a docker network name"));
        }
        if raw.target == Some(Target::Swarm) {
            return Err("proxy.network is for target engine: with swarm, nginx reaches colors on swarm.network".into());
        }
    }
    let proxy = ProxySettings {
        network: proxy.network,
        upstream_file: match proxy.upstream_file {
            Some(file) => Some(relative(file)),
            None if swarm_rolling || haproxy.is_some() => None,
            None => return Err("proxy.upstream_file is required: the file nginx includes for the upstream".into()),
        },
        upstream: proxy.upstream.unwrap_or_else(|| service.to_owned()),
        test: argv(proxy.test, &["nginx", "-t", "-q"], "proxy.test")?,
        reload: argv(proxy.reload, &["nginx", "-s", "reload"], "proxy.reload")?,
        verify_url: proxy.verify_url,
        verify_count: proxy.verify_count.unwrap_or(3).max(1),
        host: proxy.host.unwrap_or_else(|| "127.0.0.1".into()),
    };
    let canary_steps = match raw.canary {
        None => vec![
            CanaryStep { weight: 10, pause: Some(Duration::from_secs(30)) },
            CanaryStep { weight: 50, pause: Some(Duration::from_secs(30)) },
            CanaryStep { weight: 100, pause: None },
        ],
        Some(canary) => {
            let mut steps = Vec::new();
            for (i, step) in canary.steps.into_iter().enumerate() {
                if !(1..=100).contains(&step.weight)
                    || steps.last().is_some_and(|s: &CanaryStep| s.weight >= step.weight)
                {
                    return Err(format!("canary.steps[{i}].weight: weights rise from 1 to 100"));
                }
                let pause = match step.pause {
                    None => Some(Duration::ZERO),
                    Some(Value::String(s)) if s == "forever" || s == "manual" => None,
                    Some(v) => Some(parse_duration(&scalar(&v)).map_err(|e| format!("canary.steps[{i}].pause: {e}"))?),
                };
                steps.push(CanaryStep { weight: step.weight, pause });
            }
            if steps.last().map(|s| s.weight) != Some(100) {
                steps.push(CanaryStep { weight: 100, pause: None });
            }
            steps
        }
    };
    let target = raw.target.unwrap_or_default();
    let swarm = raw.swarm.unwrap_or_default();
    let swarm = SwarmSettings {
        network: swarm.network,
        converge_timeout: duration(swarm.converge_timeout, Duration::from_secs(300), "swarm.converge_timeout")?,
        stack,
    };
    let strategy = raw.strategy.unwrap_or_default();
    let pass_env = raw.pass_env.unwrap_or_default();
    if let Some((name, why)) = pass_env.iter().find_map(|n| child_env::refuse_pass_env(n).map(|why| (n, why))) {
        return Err(format!("pass_env: {name:?} {why}"));
    }
    if target == Target::Swarm && strategy != Strategy::Rolling && swarm.network.is_none() {
        return Err(format!(
            "target swarm with strategy {}: set swarm.network, the overlay network nginx reaches the services on",
            strategy.as_str()
        ));
    }
    let host_ports = raw.host_ports.map(|v| PortRange::parse(&scalar(&v))).transpose()?;
    if host_ports.is_some() && target == Target::Swarm {
        return Err("host_ports is for target engine: swarm reaches its tasks by name".into());
    }
    let settings = DeploySettings {
        host_ports,
        target,
        swarm,
        strategy,
        health,
        proxy,
        haproxy,
        hooks_dir: relative(raw.hooks.unwrap_or_else(|| PathBuf::from("hooks"))),
        hook_timeout: duration(raw.hook_timeout, Duration::from_secs(60), "hook_timeout")?,
        pass_env,
        keep_warm: duration(raw.keep_warm, Duration::from_secs(30), "keep_warm")?,
        // A deadline, not a sleep: a drain ends when the last connection does, so a long
        // default costs nothing unless a request is that long (haproxy's usual `timeout
        // server`).
        drain: duration(raw.drain, Duration::from_secs(30), "drain")?,
        canary_steps,
        auto_promote: raw.auto_promote.unwrap_or(true),
        verify: raw.verify.map(relative),
    };
    let stop_grace = optional(raw.stop_grace, "stop_grace")?;
    Ok(Extension { settings, port, stop_grace })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::{Strategy, SwarmSettings, Target};
    use crate::deploy::spec::parse;

    #[test]
    fn a_swarm_rolling_worker_needs_no_port() {
        let yaml = "services:\n  worker:\n    image: r/worker\n    healthcheck: {test: [CMD, /bin/true]}\n    x-imgctl: {target: swarm, strategy: rolling}\n";
        let spec = parse(yaml, Path::new("compose.yaml"), "worker").unwrap();
        assert_eq!((spec.workload.port, spec.settings.proxy.upstream_file), (None, None));
        let engine = "services:\n  worker:\n    image: r/worker\n    healthcheck: {test: [CMD, /bin/true]}\n    x-imgctl: {proxy: {upstream_file: u}}\n";
        assert!(parse(engine, Path::new("compose.yaml"), "worker").unwrap_err().to_string().contains("no port"));
    }

    #[test]
    fn proxy_network_is_a_docker_network_name_on_the_engine() {
        let yaml = |proxy: &str, target: &str| {
            format!(
                "services:\n  web:\n    image: r/web\n    expose: [8080]\n    healthcheck: {{test: [CMD, /bin/true]}}\n    x-imgctl: {{{target}proxy: {{upstream_file: u, {proxy}}}, swarm: {{network: o}}}}\n"
            )
        };
        let parsed = |proxy: &str, target: &str| parse(&yaml(proxy, target), Path::new("compose.yaml"), "web");
        assert_eq!(parsed("network: front_1.a-b", "").unwrap().settings.proxy.network.as_deref(), Some("front_1.a-b"));
        assert_eq!(parsed("host: 127.0.0.1", "").unwrap().settings.proxy.network, None);
        for bad in ["'-front'", "'a b'", "'a;b'", "''"] {
            let error = parsed(&format!("network: {bad}"), "").unwrap_err().to_string();
            assert!(error.contains("is not a docker network name"), "{bad}: {error}");
        }
        let error = parsed("network: front", "target: swarm, strategy: blue-green, ").unwrap_err().to_string();
        assert!(error.contains("proxy.network is for target engine"), "{error}");
    }

    #[test]
    fn a_swarm_rolling_service_needs_no_proxy() {
        let yaml = "services:\n  web:\n    image: r/web\n    expose: [8080]\n    healthcheck: {test: [CMD, /bin/true]}\n    x-imgctl: {target: swarm, strategy: rolling, swarm: {converge_timeout: 2m}}\n";
        let settings = parse(yaml, Path::new("compose.yaml"), "web").unwrap().settings;
        assert_eq!((settings.target, settings.strategy), (Target::Swarm, Strategy::Rolling));
        assert_eq!(
            settings.swarm,
            SwarmSettings { network: None, converge_timeout: Duration::from_secs(120), stack: None }
        );
        assert_eq!(settings.proxy.upstream_file, None, "no switch");
    }
}
