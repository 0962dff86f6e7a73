//! The service to deploy: the compose service, loaded by [`config`] as compose loads it, is
//! the template of each replica, and the `x-imgctl` block holds what compose has no word for.
//!
//! `x-imgctl` may stand at the top level (defaults for every service) and inside the service;
//! the service's block is merged over the top-level one, key by key, and read by `settings`.
//! The compose service's own fields become the [`Workload`].
//!
//! This module stays the public entry ([`resolve`], [`load`], [`ServiceSpec`]) that the
//! targets, switches and the binary use; [`config`] does the loading (files, environment,
//! interpolation, merging, extends, env_file, the table of keys) and knows nothing of
//! workloads.

mod mode;
mod runtime;
mod secrets;
mod settings;
mod stack;
mod view;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::compose::{
    healthcheck, key_values, parse_duration, port_from_service, relative_volume, scalar, update_config, volumes, words,
};
use super::config::{self, ConfigError, Loaded, Request};
use super::model::{UpdateConfig, Workload};
use super::names;

pub use super::config::DEFAULT_FILES;
pub use settings::{
    CanaryStep, DeploySettings, HaproxySettings, HealthGate, PortRange, ProxySettings, Strategy, SwarmSettings, Target,
};
pub use view::view;

/// A compose file could not give a deployable service.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The compose files could not be loaded: not found, not YAML, a variable required and
    /// unset, a key refused...
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A field has the wrong shape.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the field's name.
        message: String,
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

/// A service ready to deploy: the compose template and the deploy settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    /// The compose service name.
    pub name: String,
    /// The compose project it belongs to (what `docker-compose up -d` labels its containers
    /// with): imgctl takes over that project's running containers of the service.
    pub project: config::Project,
    /// The first compose file (the project's; hooks get it as `IMGCTL_COMPOSE_FILE`).
    pub compose_file: PathBuf,
    /// Every compose file, in the order merged.
    pub compose_files: Vec<PathBuf>,
    /// The env files read for interpolation (`--env-file`s, else the `.env` files found).
    pub env_files: Vec<PathBuf>,
    /// compose `image` (its repository is what `--digest` pins).
    pub image: Option<String>,
    /// What each replica runs: the compose service's fields, with `x-imgctl`'s port and
    /// stop grace.
    pub workload: Workload,
    /// compose `deploy.replicas` (default 1).
    pub replicas: u32,
    /// compose `deploy.mode: global`: one task on every swarm node (target swarm, strategy
    /// rolling) instead of `replicas`.
    pub global: bool,
    /// compose `deploy.update_config`.
    pub update_config: UpdateConfig,
    /// compose `deploy.rollback_config`.
    pub rollback_config: UpdateConfig,
    /// The `x-imgctl` settings.
    pub settings: DeploySettings,
    /// What the loader noted: unset variables, keys accepted without effect.
    pub notes: Vec<String>,
}

/// Loads `service` as `request` says (the binary passes the command line's `-f` and
/// `--env-file`, the process environment and the working directory).
///
/// No secret is read here (`imgctl status`, `history` and `config` need none): a run that
/// starts replicas reads them with [`ServiceSpec::read_files`] first.
pub fn resolve(request: &Request, service: &str) -> Result<ServiceSpec, SpecError> {
    from_loaded(config::load(request, &config::Disk, service)?)
}

impl ServiceSpec {
    /// Reads what each secret and config holds, from its file or from `environment`
    /// (imgctl's), so a missing one stops a deploy or a rollback before anything changes. On
    /// one Engine a file is bind-mounted: it is checked (a regular file imgctl can open), not
    /// read.
    pub fn read_files(&mut self, environment: &BTreeMap<String, String>) -> Result<(), SpecError> {
        secrets::read_contents(&mut self.workload.files, environment, self.settings.target)
            .map_err(|m| SpecError::Invalid { path: self.compose_file.clone(), message: m })
    }
}

/// Reads `service` from the one compose file at `path` (and the `.env` beside it), with an
/// empty process environment.
pub fn load(path: &Path, service: &str) -> Result<ServiceSpec, SpecError> {
    resolve(&Request { files: vec![path.to_path_buf()], ..Request::default() }, service)
}

/// Reads `service` from compose YAML `text`, as if it were the file at `path` (relative
/// paths are taken from its folder), with no environment.
pub fn parse(text: &str, path: &Path, service: &str) -> Result<ServiceSpec, SpecError> {
    let files: BTreeMap<PathBuf, String> = [(path.to_path_buf(), text.to_owned())].into();
    let request = Request { files: vec![path.to_path_buf()], ..Request::default() };
    from_loaded(config::load(&request, &files, service)?)
}

/// The workload and the deploy settings of a loaded service.
pub fn from_loaded(loaded: Loaded) -> Result<ServiceSpec, SpecError> {
    let path = loaded.files.first().cloned().unwrap_or_default();
    let path = path.as_path();
    let service = loaded.service.as_str();
    let invalid = |message: String| SpecError::Invalid { path: path.into(), message };
    let unsafe_value = |key: &str, value: &str, rule| SpecError::UnsafeValue {
        path: path.into(),
        key: key.into(),
        value: value.into(),
        rule,
    };
    let body = Value::Object(loaded.body.clone());
    let body = &body;
    let extension = loaded.extension.clone();
    let base = if loaded.dir.as_os_str().is_empty() { Path::new(".") } else { loaded.dir.as_path() };
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let at = |name: &str| format!("services.{service}.{name}");

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
    let settings::Extension { settings, port, stop_grace } =
        settings::parse(&extension, service, ports, base).map_err(|m| invalid(format!("x-imgctl: {m}")))?;
    let global = mode::global(deploy, &settings).map_err(|m| invalid(format!("{}: {m}", at("deploy.mode"))))?;
    settings.check_host_ports(replicas).map_err(|m| invalid(format!("x-imgctl: {m}")))?;
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
    let stop_grace = match (stop_grace, field("stop_grace_period")) {
        (Some(grace), _) => grace,
        (None, Some(grace)) => {
            parse_duration(&scalar(grace)).map_err(|m| invalid(format!("{}: {m}", at("stop_grace_period"))))?
        }
        (None, None) => Workload::DEFAULT_STOP_GRACE,
    };
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

    // A stack's service keeps the secrets and configs `docker stack deploy` gave it, as it keeps
    // the rest of its spec: the stack file stays the one truth of everything but the digest.
    let files = if settings.swarm.stack.is_some() {
        Vec::new()
    } else {
        secrets::secrets(body, &loaded.definitions, base).map_err(|m| invalid(at(&m))).and_then(|files| {
            secrets::for_target(&files, settings.target).map_err(|m| invalid(format!("services.{service}.{m}")))?;
            secrets::check_pass_env(&files, &settings.pass_env).map_err(invalid)?;
            Ok(files)
        })?
    };
    // The one place the workload is built. The runtime keys (cap_add, ulimits, resources...)
    // are read by `runtime::runtime`, and what the target cannot apply is refused here.
    let workload = Workload {
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
        stop_grace,
        port,
        runtime: runtime::runtime(body, base).map_err(|m| invalid(format!("services.{service}.{m}"))).and_then(
            |r| runtime::for_target(r, settings.target).map_err(|m| invalid(format!("services.{service}: {m}"))),
        )?,
        files,
    };
    // On one Engine a secret from the environment, or a config's inline content, is copied
    // into the created container: a read-only root cannot take it.
    if settings.target == Target::Engine
        && workload.runtime.read_only
        && let Some(copied) = workload.files.iter().find(|f| f.is_copied_on_engine())
    {
        return Err(invalid(format!(
            "services.{service}.{}: it is copied into the container before it starts, and read_only forbids that: give it as a file",
            copied.at()
        )));
    }
    let notes = [loaded.notes.clone(), runtime::notes(body, &workload.runtime, settings.target)].concat();
    Ok(ServiceSpec {
        name: service.into(),
        project: loaded.project.clone(),
        compose_file: path.into(),
        compose_files: loaded.files.clone(),
        env_files: loaded.env_files.clone(),
        image: field("image").and_then(Value::as_str).map(str::to_owned),
        workload,
        replicas,
        global,
        update_config: update("update_config")?,
        rollback_config: update("rollback_config")?,
        settings,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
    fn reads_the_compose_service_and_its_extension() {
        let spec = parse(COMPOSE, Path::new("/srv/app/compose.yaml"), "web").unwrap();
        assert_eq!(spec.image.as_deref(), Some("registry.example.com/team/web:1.4"));
        assert_eq!(spec.workload.command.unwrap(), ["httpd", "-f", "-p", "8080", "-h", "/www"]);
        assert_eq!(spec.workload.environment, ["MODE=prod", "EMPTY"], "EMPTY is set nowhere");
        assert_eq!(spec.workload.labels.get("team").map(String::as_str), Some("web"));
        assert_eq!(spec.workload.volumes, ["data:/data", "/srv/app/conf:/conf:ro", "/etc/app:/etc/app:ro"]);
        assert_eq!(spec.workload.networks, ["front"]);
        assert_eq!(spec.workload.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(spec.workload.stop_grace, Duration::from_secs(3));
        assert_eq!(spec.replicas, 4);
        let hc = spec.workload.healthcheck.unwrap();
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
        assert_eq!(spec.workload.port, Some(8080));
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
    fn the_stop_grace_is_x_imgctls_else_composes_else_dockers() {
        let grace = |service: &str, extension: &str| {
            let yaml = format!(
                "services: {{web: {{image: x, expose: [80]{service}}}}}\nx-imgctl: {{proxy: {{upstream_file: u}}, health: {{path: /h}}{extension}}}"
            );
            parse(&yaml, Path::new("compose.yaml"), "web").unwrap().workload.stop_grace
        };
        assert_eq!(grace(", stop_grace_period: 3s", ", stop_grace: 1m"), Duration::from_secs(60));
        assert_eq!(grace(", stop_grace_period: 3s", ""), Duration::from_secs(3));
        assert_eq!(grace("", ""), Duration::from_secs(10));
    }

    #[test]
    fn a_service_name_that_is_not_composes_is_refused_before_it_reaches_nginx() {
        for name in ["web;", "web\nupstream", "-web", "web {"] {
            let yaml = format!(
                "services: {{{name:?}: {{image: x, expose: [80]}}}}\nx-imgctl: {{proxy: {{upstream_file: u}}, health: {{path: /h}}}}"
            );
            let error = parse(&yaml, Path::new("compose.yaml"), name).unwrap_err();
            assert!(
                matches!(&error, SpecError::Config(ConfigError::ServiceName { service, .. }) if service == name),
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
