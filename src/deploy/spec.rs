//! The service to deploy, read from a compose file: the compose service is the template of each
//! replica, and the `x-imgctl` block holds what compose has no word for.
//!
//! `x-imgctl` may stand at the top level (defaults for every service) and inside the service;
//! the service's block is merged over the top-level one, key by key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::child_env;
use super::compose::{
    healthcheck, key_values, parse_duration, port_from_service, relative_volume, scalar, update_config, volumes, words,
};
use super::model::{Healthcheck, UpdateConfig};
use super::names;

/// The file names tried, in order, when no compose file is given (as `docker compose` does).
pub const DEFAULT_FILES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

/// A compose file could not give a deployable service.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// No compose file was given and none of the default names exists.
    #[error("no compose file here (looked for {}); name one with -f", DEFAULT_FILES.join(", "))]
    NoComposeFile,
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not YAML, or a field has the wrong shape.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the field's name.
        message: String,
    },
    /// The service is not in the file.
    #[error("{path} has no service {service:?} (it has: {known})")]
    NoSuchService {
        /// The file.
        path: PathBuf,
        /// The service asked for.
        service: String,
        /// The services it has.
        known: String,
    },
    /// A value imgctl writes into nginx's configuration is not a plain name: written as it is,
    /// it could end the directive and add others.
    #[error("{path}: {key} is {value:?}; it goes into nginx's configuration, so it must be {rule}")]
    UnsafeValue {
        /// The file.
        path: PathBuf,
        /// The key (`x-imgctl.proxy.upstream`, ...).
        key: String,
        /// The value refused.
        value: String,
        /// What it may be.
        rule: &'static str,
    },
}

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
    /// The container port nginx talks to; `None` only where nothing reaches the replicas
    /// through imgctl (swarm's own rolling update: a queue worker listens on nothing).
    pub port: Option<u16>,
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
    /// The shortest wait between taking replicas out of traffic and stopping them.
    pub drain: Duration,
    /// SIGTERM to SIGKILL when stopping a replica.
    pub stop_grace: Duration,
    /// Canary steps (the last one is 100).
    pub canary_steps: Vec<CanaryStep>,
    /// false: stop before the switch and wait for `imgctl deploy --continue`.
    pub auto_promote: bool,
}

/// A service ready to deploy: the compose template and the deploy settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    /// The compose service name.
    pub name: String,
    /// The compose file it came from.
    pub compose_file: PathBuf,
    /// compose `image` (its repository is what `--digest` pins).
    pub image: Option<String>,
    /// `KEY=VALUE` pairs.
    pub environment: Vec<String>,
    /// compose `command`.
    pub command: Option<Vec<String>>,
    /// compose `entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// compose `working_dir`.
    pub working_dir: Option<String>,
    /// compose `user`.
    pub user: Option<String>,
    /// compose `healthcheck`, as docker runs it.
    pub healthcheck: Option<Healthcheck>,
    /// compose `volumes` (short syntax).
    pub volumes: Vec<String>,
    /// compose `networks`.
    pub networks: Vec<String>,
    /// compose `labels`.
    pub labels: BTreeMap<String, String>,
    /// compose `restart`.
    pub restart: Option<String>,
    /// compose `stop_signal`.
    pub stop_signal: Option<String>,
    /// compose `deploy.replicas` (default 1).
    pub replicas: u32,
    /// compose `deploy.update_config`.
    pub update_config: UpdateConfig,
    /// compose `deploy.rollback_config`.
    pub rollback_config: UpdateConfig,
    /// The `x-imgctl` settings.
    pub settings: DeploySettings,
}

/// Finds the compose file: `given`, else the first default name in `dir` that exists.
pub fn find_compose_file(given: Option<&Path>, dir: &Path) -> Result<PathBuf, SpecError> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    DEFAULT_FILES.iter().map(|name| dir.join(name)).find(|path| path.is_file()).ok_or(SpecError::NoComposeFile)
}

/// Reads `service` from the compose file at `path`.
pub fn load(path: &Path, service: &str) -> Result<ServiceSpec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.into(), source })?;
    parse(&text, path, service)
}

/// Reads `service` from compose YAML `text` (relative paths are taken from `path`'s folder).
pub fn parse(text: &str, path: &Path, service: &str) -> Result<ServiceSpec, SpecError> {
    let invalid = |message: String| SpecError::Invalid { path: path.into(), message };
    let unsafe_value = |key: &str, value: &str, rule| SpecError::UnsafeValue {
        path: path.into(),
        key: key.into(),
        value: value.into(),
        rule,
    };
    // Container, swarm service and upstream names are made of the service name.
    if !names::is_service_name(service) {
        return Err(unsafe_value("the service name", service, names::SERVICE_RULE));
    }
    let document: Value = serde_norway::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let services = document.get("services").and_then(Value::as_object).ok_or_else(|| invalid("no services".into()))?;
    let Some(body) = services.get(service) else {
        return Err(SpecError::NoSuchService {
            path: path.into(),
            service: service.into(),
            known: services.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let at = |name: &str| format!("services.{service}.{name}");

    let mut extension = document.get("x-imgctl").cloned().unwrap_or(Value::Null);
    merge(&mut extension, body.get("x-imgctl").cloned().unwrap_or(Value::Null));
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));

    let healthcheck = field("healthcheck")
        .map(|v| healthcheck(v).map_err(|m| invalid(format!("{}: {m}", at("healthcheck")))))
        .transpose()?
        .flatten();
    let ports = port_from_service(body).map_err(invalid)?;
    let deploy = field("deploy");
    let update = |key: &str| -> Result<UpdateConfig, SpecError> {
        deploy
            .and_then(|d| d.get(key))
            .map(|v| update_config(v).map_err(|m| invalid(format!("{}: {m}", at(&format!("deploy.{key}"))))))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let replicas = match deploy.and_then(|d| d.get("replicas")) {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| invalid(format!("{}: 1 to 64", at("deploy.replicas"))))? as u32,
    };
    let mut settings = settings(&extension, service, ports, base).map_err(|m| invalid(format!("x-imgctl: {m}")))?;
    if !names::is_upstream_name(&settings.proxy.upstream) {
        return Err(unsafe_value("x-imgctl.proxy.upstream", &settings.proxy.upstream, names::UPSTREAM_RULE));
    }
    if let Some(haproxy) = &settings.haproxy
        && !names::is_upstream_name(&haproxy.backend)
    {
        return Err(unsafe_value("x-imgctl.proxy.backend", &haproxy.backend, names::UPSTREAM_RULE));
    }
    if !names::is_host(&settings.proxy.host) {
        return Err(unsafe_value("x-imgctl.proxy.host", &settings.proxy.host, names::HOST_RULE));
    }
    let grace_set = extension.get("stop_grace").is_some();
    if let (Some(grace), false) = (field("stop_grace_period"), grace_set) {
        settings.stop_grace =
            parse_duration(&scalar(grace)).map_err(|m| invalid(format!("{}: {m}", at("stop_grace_period"))))?;
    }
    if settings.target == Target::Swarm && healthcheck.is_none() {
        // Swarm gates tasks on the container's healthcheck; nginx and imgctl cannot reach
        // swarm tasks from the host to probe a path.
        return Err(invalid(format!(
            "service {service} targets swarm and needs a compose healthcheck: swarm marks a task running only once it passes"
        )));
    }
    if settings.health.path.is_none() && healthcheck.is_none() {
        return Err(invalid(format!(
            "service {service} has no health check: set x-imgctl.health.path (an HTTP path on its port) or a compose healthcheck"
        )));
    }

    Ok(ServiceSpec {
        name: service.into(),
        compose_file: path.into(),
        image: field("image").and_then(Value::as_str).map(str::to_owned),
        environment: field("environment")
            .map(key_values)
            .transpose()
            .map_err(|m| invalid(format!("{}: {m}", at("environment"))))?
            .unwrap_or_default(),
        command: field("command").map(words).transpose().map_err(|m| invalid(format!("{}: {m}", at("command"))))?,
        entrypoint: field("entrypoint")
            .map(words)
            .transpose()
            .map_err(|m| invalid(format!("{}: {m}", at("entrypoint"))))?,
        working_dir: field("working_dir").and_then(Value::as_str).map(str::to_owned),
        user: field("user").map(scalar),
        healthcheck,
        volumes: field("volumes")
            .map(volumes)
            .transpose()
            .map_err(|m| invalid(format!("{}: {m}", at("volumes"))))?
            .unwrap_or_default()
            .into_iter()
            .map(|v| relative_volume(&v, base))
            .collect(),
        networks: match field("networks") {
            None => Vec::new(),
            Some(Value::Array(list)) => list.iter().map(scalar).collect(),
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            Some(_) => return Err(invalid(format!("{}: a list or a map", at("networks")))),
        },
        labels: field("labels")
            .map(key_values)
            .transpose()
            .map_err(|m| invalid(format!("{}: {m}", at("labels"))))?
            .unwrap_or_default()
            .into_iter()
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (pair, String::new()),
            })
            .collect(),
        restart: field("restart").map(scalar),
        stop_signal: field("stop_signal").map(scalar),
        replicas,
        update_config: update("update_config")?,
        rollback_config: update("rollback_config")?,
        settings,
    })
}

/// Merges `over` into `base`, maps key by key (recursively), anything else replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (_, Value::Null) => {}
        (base, over) => *base = over,
    }
}

fn settings(
    extension: &Value,
    service: &str,
    compose_port: Option<u16>,
    base: &Path,
) -> Result<DeploySettings, String> {
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

    let raw: Raw = if extension.is_null() {
        Raw::default()
    } else {
        serde_json::from_value(extension.clone()).map_err(|e| e.to_string())?
    };
    let duration = |v: Option<Value>, default: Duration, name: &str| -> Result<Duration, String> {
        v.map(|v| parse_duration(&scalar(&v)).map_err(|e| format!("{name}: {e}")))
            .transpose()
            .map(|d| d.unwrap_or(default))
    };
    let argv = |v: Option<Value>, default: &[&str], name: &str| -> Result<Vec<String>, String> {
        let list = v
            .map(|v| words(&v).map_err(|e| format!("{name}: {e}")))
            .transpose()?
            .unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect());
        if list.is_empty() { Err(format!("{name} is empty")) } else { Ok(list) }
    };
    let relative = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

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
    let proxy = ProxySettings {
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
    Ok(DeploySettings {
        target,
        swarm,
        strategy,
        port,
        health,
        proxy,
        haproxy,
        hooks_dir: relative(raw.hooks.unwrap_or_else(|| PathBuf::from("hooks"))),
        hook_timeout: duration(raw.hook_timeout, Duration::from_secs(60), "hook_timeout")?,
        pass_env,
        keep_warm: duration(raw.keep_warm, Duration::from_secs(30), "keep_warm")?,
        drain: duration(raw.drain, Duration::from_secs(2), "drain")?,
        stop_grace: duration(raw.stop_grace, Duration::from_secs(10), "stop_grace")?,
        canary_steps,
        auto_promote: raw.auto_promote.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::model::{FailureAction, Order};

    const COMPOSE: &str = r#"
x-imgctl:
  proxy:
    upstream_file: nginx/upstreams/web.conf
    reload: docker exec proxy nginx -s reload
  keep_warm: 1m
  pass_env: [SMOKE_PATHS]
services:
  web:
    image: registry.example.com/team/web:1.4
    command: httpd -f -p "8080" -h /www
    environment:
      MODE: prod
      EMPTY:
    expose: ["8080"]
    labels: ["team=web"]
    volumes:
      - data:/data
      - ./conf:/conf:ro
      - {type: bind, source: /etc/app, target: /etc/app, read_only: true}
    networks: [front]
    stop_signal: SIGQUIT
    stop_grace_period: 3s
    healthcheck:
      test: wget -q -O- http://127.0.0.1:8080/health
      interval: 2s
      retries: 3
    deploy:
      replicas: 4
      update_config: {parallelism: 2, delay: 1s, failure_action: rollback, order: start-first, max_failure_ratio: 0.25}
    x-imgctl:
      strategy: canary
      health: {path: health, deadline: 30s}
      keep_warm: 5s
      canary:
        steps: [{weight: 10, pause: 10s}, {weight: 50, pause: forever}]
  db:
    image: postgres
"#;

    #[test]
    fn reads_the_compose_service_and_its_extension() {
        let spec = parse(COMPOSE, Path::new("/srv/app/compose.yaml"), "web").unwrap();
        assert_eq!(spec.image.as_deref(), Some("registry.example.com/team/web:1.4"));
        assert_eq!(spec.command.unwrap(), ["httpd", "-f", "-p", "8080", "-h", "/www"]);
        assert_eq!(spec.environment, ["MODE=prod", "EMPTY"]);
        assert_eq!(spec.labels.get("team").map(String::as_str), Some("web"));
        assert_eq!(spec.volumes, ["data:/data", "/srv/app/./conf:/conf:ro", "/etc/app:/etc/app:ro"]);
        assert_eq!(spec.networks, ["front"]);
        assert_eq!(spec.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(spec.settings.stop_grace, Duration::from_secs(3));
        assert_eq!(spec.replicas, 4);
        let hc = spec.healthcheck.unwrap();
        assert_eq!(hc.test, ["CMD-SHELL", "wget -q -O- http://127.0.0.1:8080/health"]);
        assert_eq!((hc.interval, hc.retries), (Some(Duration::from_secs(2)), Some(3)));
        let update = spec.update_config;
        assert_eq!(
            (update.parallelism, update.delay, update.failure_action, update.order),
            (2, Duration::from_secs(1), FailureAction::Rollback, Order::StartFirst)
        );
        assert_eq!(update.max_failure_ratio, 0.25);
        assert_eq!(spec.rollback_config, UpdateConfig::default());
        let s = spec.settings;
        assert_eq!(s.strategy, Strategy::Canary);
        assert_eq!(s.port, Some(8080));
        assert_eq!(s.health.path.as_deref(), Some("/health"));
        assert_eq!(s.health.deadline, Duration::from_secs(30));
        assert_eq!(s.keep_warm, Duration::from_secs(5), "the service's block wins over the top level");
        assert_eq!(s.proxy.upstream_file.as_deref(), Some(Path::new("/srv/app/nginx/upstreams/web.conf")));
        assert_eq!(s.proxy.upstream, "web");
        assert_eq!(s.proxy.reload, ["docker", "exec", "proxy", "nginx", "-s", "reload"]);
        assert_eq!(s.proxy.test, ["nginx", "-t", "-q"]);
        assert_eq!(s.hooks_dir, Path::new("/srv/app/hooks"));
        assert_eq!(s.pass_env, ["SMOKE_PATHS"]);
        assert_eq!(
            s.canary_steps,
            [
                CanaryStep { weight: 10, pause: Some(Duration::from_secs(10)) },
                CanaryStep { weight: 50, pause: None },
                CanaryStep { weight: 100, pause: None }
            ]
        );
    }

    #[test]
    fn a_swarm_rolling_worker_needs_no_port() {
        let yaml = "services:\n  worker:\n    image: r/worker\n    healthcheck: {test: [CMD, /bin/true]}\n    x-imgctl: {target: swarm, strategy: rolling}\n";
        let settings = parse(yaml, Path::new("compose.yaml"), "worker").unwrap().settings;
        assert_eq!((settings.port, settings.proxy.upstream_file), (None, None));
        let engine = "services:\n  worker:\n    image: r/worker\n    healthcheck: {test: [CMD, /bin/true]}\n    x-imgctl: {proxy: {upstream_file: u}}\n";
        assert!(parse(engine, Path::new("compose.yaml"), "worker").unwrap_err().to_string().contains("no port"));
    }

    #[test]
    fn proxy_kind_haproxy_takes_a_socket_a_backend_and_a_state_file() {
        let yaml = |proxy: &str| {
            format!("services: {{web: {{image: x, expose: [80]}}}}\nx-imgctl: {{health: {{path: /h}}, proxy: {proxy}}}")
        };
        let at = Path::new("/srv/app/compose.yaml");
        let s = parse(&yaml("{kind: haproxy, socket: /run/haproxy/admin.sock, state_file: state/web.json}"), at, "web")
            .unwrap()
            .settings;
        let haproxy = s.haproxy.expect("haproxy settings");
        assert_eq!(
            haproxy,
            HaproxySettings {
                socket: "/run/haproxy/admin.sock".into(),
                backend: "web".into(),
                state_file: "/srv/app/state/web.json".into(),
            }
        );
        assert_eq!(s.proxy.upstream_file, None, "nginx's file is not needed");
        let named = parse(&yaml("{kind: haproxy, socket: s, state_file: f, upstream: web_up}"), at, "web").unwrap();
        assert_eq!(named.settings.haproxy.unwrap().backend, "web_up");
        let named = parse(&yaml("{kind: haproxy, socket: s, state_file: f, backend: be_web}"), at, "web").unwrap();
        assert_eq!(named.settings.haproxy.unwrap().backend, "be_web");
        // nginx stays the default, and keeps its keys to itself.
        let nginx = parse(&yaml("{upstream_file: u}"), at, "web").unwrap().settings;
        assert_eq!((nginx.haproxy, nginx.proxy.upstream_file.is_some()), (None, true));

        for (proxy, expected) in [
            ("{kind: haproxy, state_file: f}", "proxy.socket is required"),
            ("{kind: haproxy, socket: s}", "proxy.state_file is required"),
            ("{kind: haproxy, socket: s, state_file: f, upstream_file: u}", "proxy.upstream_file is for nginx"),
            ("{kind: haproxy, socket: s, state_file: f, reload: [true]}", "proxy.reload is for nginx"),
            ("{upstream_file: u, socket: s}", "proxy.socket is for proxy.kind haproxy"),
            ("{kind: traefik, upstream_file: u}", "unknown variant"),
            ("{kind: haproxy, socket: s, state_file: f, backend: 'web; shutdown sessions'}", "x-imgctl.proxy.backend"),
        ] {
            let error = parse(&yaml(proxy), at, "web").unwrap_err().to_string();
            assert!(error.contains(expected), "{proxy}: {error}");
        }
        let swarm = "services: {web: {image: x, expose: [80], healthcheck: {test: [CMD, 'true']}}}\nx-imgctl: {target: swarm, swarm: {network: n}, proxy: {kind: haproxy, socket: s, state_file: f}}";
        assert!(parse(swarm, at, "web").unwrap_err().to_string().contains("use nginx with target swarm"));
    }

    #[test]
    fn a_swarm_rolling_service_needs_no_proxy() {
        let yaml = "services:\n  web:\n    image: r/web\n    expose: [8080]\n    healthcheck: {test: [CMD, /bin/true]}\n    x-imgctl: {target: swarm, strategy: rolling, swarm: {converge_timeout: 2m}}\n";
        let settings = parse(yaml, Path::new("compose.yaml"), "web").unwrap().settings;
        assert_eq!((settings.target, settings.strategy), (Target::Swarm, Strategy::Rolling));
        assert_eq!(settings.swarm, SwarmSettings { network: None, converge_timeout: Duration::from_secs(120) });
        assert_eq!(settings.proxy.upstream_file, None, "no switch");
    }

    #[test]
    fn a_service_name_that_is_not_composes_is_refused_before_it_reaches_nginx() {
        for name in ["web;", "web\nupstream", "-web", "web {"] {
            let yaml = format!(
                "services: {{{name:?}: {{image: x, expose: [80]}}}}\nx-imgctl: {{proxy: {{upstream_file: u}}, health: {{path: /h}}}}"
            );
            let error = parse(&yaml, Path::new("compose.yaml"), name).unwrap_err();
            assert!(
                matches!(&error, SpecError::UnsafeValue { key, value, .. } if key == "the service name" && value == name),
                "{name:?}: {error}"
            );
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            ("services: {web: {image: x, expose: [80]}}", "upstream_file"),
            ("services: {web: {image: x}}\nx-imgctl: {proxy: {upstream_file: u}}", "no port"),
            ("services: {web: {image: x, expose: [80]}}\nx-imgctl: {proxy: {upstream_file: u}}", "no health check"),
            (
                "services: {web: {image: x, expose: [80]}}\nx-imgctl: {proxy: {upstream_file: u}, health: {path: /h}, strategy: bluegreen}",
                "expected one of `blue-green`, `rolling`, `canary`",
            ),
            (
                "services: {web: {image: x, expose: [80]}}\nx-imgctl: {proxy: {upstream_file: u}, health: {path: /h}, keep_warm: soon}",
                "keep_warm",
            ),
            (
                "services: {web: {image: x, expose: [80], deploy: {update_config: {order: random}}}}\nx-imgctl: {proxy: {upstream_file: u}, health: {path: /h}}",
                "update_config",
            ),
            (
                "services: {web: {image: x, expose: [80]}}\nx-imgctl: {proxy: {upstream_file: u}, health: {path: /h}, canary: {steps: [{weight: 50}, {weight: 20}]}}",
                "weights rise",
            ),
            ("services: {api: {image: x}}", "has no service \"web\" (it has: api)"),
            (
                "services: {web: {image: x, expose: [80]}}\nx-imgctl: {target: swarm, proxy: {upstream_file: u}, health: {path: /h}}",
                "set swarm.network",
            ),
            (
                "services: {web: {image: x, expose: [80]}}\nx-imgctl: {target: swarm, strategy: rolling, health: {path: /h}}",
                "needs a compose healthcheck",
            ),
            ("services: [", "compose.yaml: did not find expected node content at line 2"),
            (
                "services: {web: {image: x, expose: [80]}}\nx-imgctl: {proxy: {upstream_file: u}, health: {path: /h}, pass_env: [SMOKE_PATHS, IMGCTL_PASSPHRASE]}",
                "x-imgctl: pass_env: \"IMGCTL_PASSPHRASE\" is a secret of imgctl's own",
            ),
            (
                "services: {web: {image: x, expose: [80]}}\nx-imgctl: {proxy: {upstream_file: u, upstream: 'web; } server { listen 8081; location / { proxy_pass http://198.51.100.1; } } upstream x {'}, health: {path: /h}}",
                "x-imgctl.proxy.upstream is \"web; } server {",
            ),
            (
                "services: {web: {image: x, expose: [80]}}\nx-imgctl: {proxy: {upstream_file: u, host: \"127.0.0.1:1 down;\\n    server 198.51.100.1\"}, health: {path: /h}}",
                "x-imgctl.proxy.host is \"127.0.0.1:1 down;\\n    server 198.51.100.1\"",
            ),
        ];
        for (yaml, expected) in cases {
            let error = parse(yaml, Path::new("compose.yaml"), "web").unwrap_err().to_string();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }
}
