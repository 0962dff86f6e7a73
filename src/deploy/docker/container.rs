//! What to run for one replica, and the Engine API's view of it: the container body, its
//! restart policy and healthcheck, and the replica an inspected container is. Pure, so the
//! mapping is tested without an engine.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, HealthConfig, HealthStatusEnum,
    HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use super::EngineError;
use crate::deploy::color::{Color, label};
use crate::deploy::model::{ContainerState, Health, Healthcheck, Replica, Workload};

pub(super) mod mounts;
pub(super) mod runtime;

/// One replica as a container: its workload, under its own name and image, with imgctl's
/// labels.
///
/// On the Engine, the workload's port is published on 127.0.0.1 with a host port the engine
/// picks; other published ports are not supported on purpose: both colors run at once and
/// would clash on fixed host ports. The first network is the container's network mode, the
/// others are connected before it starts; none means the engine's default bridge.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerSpec {
    /// The container name, e.g. `web-green-1`.
    pub name: String,
    /// The image, `repo@sha256:...`.
    pub image: String,
    /// imgctl's own labels (see [`label`]), set over the workload's.
    pub labels: BTreeMap<String, String>,
    /// What the container runs.
    pub workload: Workload,
    /// The host port its port is published on (`None`: one the engine picks).
    pub host_port: Option<u16>,
}

/// The engine's view of SPEC. Pure, so the mapping is tested without an engine.
pub(super) fn create_body(spec: &ContainerSpec) -> Result<ContainerCreateBody, EngineError> {
    let invalid = |reason: String| EngineError::InvalidSpec { container: spec.name.clone(), reason };
    let workload = &spec.workload;
    let (mut binds, mut anonymous) = (Vec::new(), Vec::new());
    for volume in &workload.volumes {
        match volume.split_once(':') {
            Some((source, _)) if source.starts_with('.') || source.starts_with('~') => {
                return Err(invalid(format!(
                    "volume {volume:?}: resolve the relative host path against the compose file's directory first"
                )));
            }
            Some(_) => binds.push(volume.clone()),
            None => anonymous.push(volume.clone()),
        }
    }
    let restart_policy = workload.restart.as_deref().map(restart_policy).transpose().map_err(invalid)?;
    let port_key = workload.port.map(|port| format!("{port}/tcp"));
    let port_bindings = port_key.as_ref().map(|key| {
        // HostPort "" lets the engine pick a free ephemeral port: two colors never clash. An
        // explicit one (x-imgctl.host_ports) is kept by docker across restarts.
        let host_port = spec.host_port.map(|p| p.to_string()).unwrap_or_default();
        let binding = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(host_port) };
        HashMap::from([(key.clone(), Some(vec![binding]))])
    });
    // imgctl's labels win: they are how the deploy finds its replicas again.
    let labels: HashMap<String, String> =
        workload.labels.iter().chain(&spec.labels).map(|(k, v)| (k.clone(), v.clone())).collect();
    let refused = workload.runtime.refused_on_engine();
    if let Some(first) = refused.first() {
        return Err(invalid(first.to_string()));
    }
    if workload.runtime.read_only
        && let Some(copied) = mounts::copied(workload).next()
    {
        return Err(invalid(format!(
            "{} is copied into the container before it starts, and read_only forbids that: give it as a file",
            copied.at()
        )));
    }
    let host_config = HostConfig {
        binds: Some(binds).filter(|b| !b.is_empty()),
        mounts: Some(mounts::binds(workload)).filter(|m| !m.is_empty()),
        port_bindings,
        network_mode: workload.networks.first().cloned(),
        restart_policy,
        ..runtime::host_config(&workload.runtime)
    };
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        labels: Some(labels),
        env: Some(workload.environment.clone()).filter(|e| !e.is_empty()),
        cmd: workload.command.clone(),
        entrypoint: workload.entrypoint.clone(),
        working_dir: workload.working_dir.clone(),
        user: workload.user.clone(),
        exposed_ports: port_key.map(|key| vec![key]),
        healthcheck: workload.healthcheck.as_ref().map(health_config),
        volumes: Some(anonymous).filter(|v| !v.is_empty()),
        stop_signal: workload.stop_signal.clone(),
        hostname: workload.runtime.hostname.clone(),
        domainname: workload.runtime.engine_only.domainname.clone(),
        host_config: Some(host_config),
        ..Default::default()
    })
}

fn restart_policy(text: &str) -> Result<RestartPolicy, String> {
    let (name, retries) = match text.split_once(':') {
        Some(("on-failure", count)) => {
            let count: i64 = count.parse().map_err(|_| format!("restart {text:?}: the retry count is not a number"))?;
            (RestartPolicyNameEnum::ON_FAILURE, Some(count))
        }
        _ => match text {
            "no" => (RestartPolicyNameEnum::NO, None),
            "always" => (RestartPolicyNameEnum::ALWAYS, None),
            "unless-stopped" => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
            "on-failure" => (RestartPolicyNameEnum::ON_FAILURE, None),
            _ => {
                return Err(format!(
                    "restart {text:?}: expected no, always, unless-stopped, on-failure or on-failure:N"
                ));
            }
        },
    };
    Ok(RestartPolicy { name: Some(name), maximum_retry_count: retries })
}

pub(in crate::deploy) fn health_config(check: &Healthcheck) -> HealthConfig {
    // The API counts in nanoseconds.
    let nanos = |d: Option<Duration>| d.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    HealthConfig {
        test: Some(check.test.clone()),
        interval: nanos(check.interval),
        timeout: nanos(check.timeout),
        retries: check.retries.map(i64::from),
        start_period: nanos(check.start_period),
        start_interval: None,
    }
}

/// The replica an inspected container is, or why it is not one.
pub(super) fn replica_from_inspect(info: ContainerInspectResponse) -> Result<Replica, String> {
    let labels = info.config.as_ref().and_then(|c| c.labels.as_ref());
    let get = |key: &str| labels.and_then(|l| l.get(key)).ok_or_else(|| format!("label {key} is missing"));
    let color_text = get(label::COLOR)?;
    let color = Color::parse(color_text).ok_or_else(|| format!("label {} is {color_text:?}", label::COLOR))?;
    let index_text = get(label::REPLICA)?;
    let index = index_text.parse().map_err(|_| format!("label {} is {index_text:?}", label::REPLICA))?;
    let (digest, deploy_id) = (get(label::DIGEST)?.clone(), get(label::DEPLOY_ID)?.clone());
    let status = info.state.as_ref().and_then(|s| s.status);
    let state = match status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        // "stopping" (API 1.52+) still has a live process.
        Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::STOPPING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
        Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
        Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removing,
        Some(ContainerStateStatusEnum::EMPTY) | None => return Err("the engine reports no state".into()),
    };
    let health = match info.state.as_ref().and_then(|s| s.health.as_ref()).and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => Health::Starting,
        Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) | None => Health::None,
    };
    let addr = if state == ContainerState::Running { published_addr(&info) } else { None };
    Ok(Replica {
        id: info.id.unwrap_or_default(),
        name: info.name.as_deref().unwrap_or_default().trim_start_matches('/').to_owned(),
        color,
        digest,
        deploy_id,
        index,
        state,
        health,
        addr,
        created: info.created.unwrap_or_default(),
        source: crate::deploy::model::Source::Imgctl,
    })
}

/// Where the engine published the container's one bound port. `HostConfig.PortBindings` says
/// which container port was asked for (with HostPort ""); `NetworkSettings.Ports` holds the
/// host port the engine actually picked, while the container runs.
fn published_addr(info: &ContainerInspectResponse) -> Option<SocketAddr> {
    let asked = info.host_config.as_ref()?.port_bindings.as_ref()?;
    let actual = info.network_settings.as_ref()?.ports.as_ref()?;
    let mut keys: Vec<&String> = asked.keys().filter(|k| k.ends_with("/tcp")).collect();
    keys.sort();
    let bindings = keys.into_iter().find_map(|key| actual.get(key)?.as_ref())?;
    let addrs = bindings.iter().filter_map(|binding| {
        let port: u16 = binding.host_port.as_deref()?.parse().ok().filter(|&p| p != 0)?;
        let ip = match binding.host_ip.as_deref() {
            None | Some("") => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(text) => match text.parse().ok()? {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            },
        };
        Some(SocketAddr::new(ip, port))
    });
    // Prefer IPv4 loopback: that is what the proxy is configured with.
    let addrs: Vec<SocketAddr> = addrs.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, NetworkSettings};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web-green-1".into(),
            image: "127.0.0.1:5000/web@sha256:aa".into(),
            labels: [(label::COLOR.to_owned(), "green".to_owned())].into(),
            host_port: None,
            workload: Workload {
                environment: vec!["A=1".into()],
                command: Some(vec!["serve".into()]),
                port: Some(8080),
                healthcheck: Some(Healthcheck {
                    test: vec!["CMD".into(), "true".into()],
                    interval: Some(Duration::from_secs(1)),
                    timeout: Some(Duration::from_millis(500)),
                    retries: Some(3),
                    start_period: None,
                }),
                volumes: vec!["data:/data".into(), "/srv/conf:/conf:ro".into(), "/cache".into()],
                networks: vec!["front".into(), "back".into()],
                restart: Some("on-failure:5".into()),
                ..Default::default()
            },
        }
    }

    #[test]
    fn spec_becomes_the_engine_body() {
        let body = create_body(&spec()).unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["Image"], "127.0.0.1:5000/web@sha256:aa");
        assert_eq!(json["Labels"]["imgctl.color"], "green");
        assert_eq!(json["Env"], serde_json::json!(["A=1"]));
        assert_eq!(json["Cmd"], serde_json::json!(["serve"]));
        assert!(json.get("Entrypoint").is_none(), "the image's entrypoint is kept");
        assert_eq!(json["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
        assert_eq!(
            json["HostConfig"]["PortBindings"],
            serde_json::json!({"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})
        );
        assert_eq!(
            json["Healthcheck"],
            serde_json::json!({"Test": ["CMD", "true"], "Interval": 1_000_000_000i64, "Timeout": 500_000_000, "Retries": 3})
        );
        assert_eq!(json["HostConfig"]["Binds"], serde_json::json!(["data:/data", "/srv/conf:/conf:ro"]));
        assert_eq!(json["Volumes"], serde_json::json!({"/cache": {}}));
        assert_eq!(json["HostConfig"]["NetworkMode"], "front");
        assert_eq!(
            json["HostConfig"]["RestartPolicy"],
            serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 5})
        );
    }

    #[test]
    fn the_workloads_labels_are_kept_and_imgctls_own_win() {
        let mut spec = spec();
        spec.workload.labels =
            [("team".to_owned(), "web".to_owned()), (label::COLOR.to_owned(), "purple".to_owned())].into();
        let json = serde_json::to_value(create_body(&spec).unwrap()).unwrap();
        assert_eq!(json["Labels"], serde_json::json!({"team": "web", "imgctl.color": "green"}));
    }

    #[test]
    fn a_minimal_spec_leaves_the_image_defaults_alone() {
        let body = create_body(&ContainerSpec { name: "a".into(), image: "i".into(), ..Default::default() }).unwrap();
        let json = serde_json::to_value(&body).unwrap();
        for key in ["Cmd", "Entrypoint", "Env", "ExposedPorts", "Healthcheck", "Volumes", "User", "WorkingDir"] {
            assert!(json.get(key).is_none(), "{key} set: {json}");
        }
        assert_eq!(json["HostConfig"], serde_json::json!({}));
    }

    #[test]
    fn restart_policies_follow_compose() {
        assert_eq!(restart_policy("always").unwrap().name, Some(RestartPolicyNameEnum::ALWAYS));
        assert_eq!(restart_policy("unless-stopped").unwrap().name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
        assert_eq!(restart_policy("no").unwrap().name, Some(RestartPolicyNameEnum::NO));
        assert_eq!(restart_policy("on-failure").unwrap().maximum_retry_count, None);
        assert!(restart_policy("sometimes").unwrap_err().contains("expected no, always"));
        assert!(restart_policy("on-failure:x").is_err());
    }

    #[test]
    fn relative_volume_sources_are_refused_not_turned_into_volume_names() {
        let workload = Workload { volumes: vec!["./data:/data".into()], ..Default::default() };
        let spec = ContainerSpec { name: "w".into(), workload, ..Default::default() };
        let error = create_body(&spec).unwrap_err();
        assert!(matches!(error, EngineError::InvalidSpec { .. }), "{error:?}");
        assert!(error.to_string().contains("./data:/data"), "{error}");
    }

    fn inspected(labels: &[(&str, &str)], status: &str, health: Option<&str>) -> ContainerInspectResponse {
        let mut json = serde_json::json!({
            "Id": "abc123",
            "Name": "/web-green-1",
            "Created": "2024-05-01T10:00:00.123Z",
            "State": {"Status": status},
            "Config": {"Labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>()},
            "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
            "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]}},
        });
        if let Some(health) = health {
            json["State"]["Health"] = serde_json::json!({"Status": health, "FailingStreak": 0});
        }
        serde_json::from_value(json).unwrap()
    }

    const OURS: [(&str, &str); 5] = [
        (label::SERVICE, "web"),
        (label::COLOR, "green"),
        (label::DIGEST, "sha256:aa"),
        (label::DEPLOY_ID, "d1"),
        (label::REPLICA, "2"),
    ];

    #[test]
    fn an_inspected_container_becomes_a_replica() {
        let replica = replica_from_inspect(inspected(&OURS, "running", Some("healthy"))).unwrap();
        assert_eq!(
            replica,
            Replica {
                id: "abc123".into(),
                name: "web-green-1".into(),
                color: Color::Green,
                digest: "sha256:aa".into(),
                deploy_id: "d1".into(),
                index: 2,
                state: ContainerState::Running,
                health: Health::Healthy,
                addr: Some("127.0.0.1:49153".parse().unwrap()),
                created: "2024-05-01T10:00:00.123Z".into(),
                source: crate::deploy::model::Source::Imgctl,
            }
        );
        let json = serde_json::to_value(&replica).unwrap();
        assert_eq!((json["state"].as_str(), json["health"].as_str()), (Some("running"), Some("healthy")));
        assert_eq!(json["addr"], "127.0.0.1:49153");
    }

    #[test]
    fn a_stopped_replica_has_no_address_and_no_healthcheck_means_none() {
        let replica = replica_from_inspect(inspected(&OURS, "exited", None)).unwrap();
        assert_eq!((replica.state, replica.health, replica.addr), (ContainerState::Exited, Health::None, None));
    }

    #[test]
    fn containers_without_our_labels_are_not_replicas() {
        let no_color: Vec<_> = OURS.iter().copied().filter(|(k, _)| *k != label::COLOR).collect();
        assert!(replica_from_inspect(inspected(&no_color, "running", None)).unwrap_err().contains("imgctl.color"));
        let mut purple = OURS;
        purple[1] = (label::COLOR, "purple");
        assert!(replica_from_inspect(inspected(&purple, "running", None)).unwrap_err().contains("purple"));
        let mut bad_index = OURS;
        bad_index[4] = (label::REPLICA, "first");
        assert!(replica_from_inspect(inspected(&bad_index, "running", None)).is_err());
    }

    #[test]
    fn an_unspecified_host_ip_is_reached_on_loopback() {
        let mut info = inspected(&OURS, "running", None);
        info.network_settings = Some(NetworkSettings {
            ports: Some(HashMap::from([(
                "8080/tcp".to_owned(),
                Some(vec![
                    PortBinding { host_ip: Some("::".into()), host_port: Some("32768".into()) },
                    PortBinding { host_ip: Some("0.0.0.0".into()), host_port: Some("32768".into()) },
                ]),
            )])),
            ..Default::default()
        });
        assert_eq!(published_addr(&info), Some("127.0.0.1:32768".parse().unwrap()));
        info.config = Some(ContainerConfig::default());
        assert!(replica_from_inspect(info).is_err());
    }
}
