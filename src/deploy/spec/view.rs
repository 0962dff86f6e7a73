//! A resolved service as `imgctl config` shows it: what imgctl will deploy, in compose's
//! vocabulary (`environment` as a mapping, durations as `1m30s`), like `docker compose config`
//! shows a whole project.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::ServiceSpec;
use crate::deploy::model::{FileKind, FileMount, FileSource, Healthcheck, Runtime, UpdateConfig};

/// The service as one JSON document.
pub fn view(spec: &ServiceSpec) -> Value {
    let w = &spec.workload;
    let environment: Map<String, Value> = w
        .environment
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k.to_owned(), Value::String(v.to_owned())),
            None => (pair.clone(), Value::Null),
        })
        .collect();
    let mut settings = serde_json::to_value(&spec.settings).unwrap_or(Value::Null);
    durations_as_text(&mut settings);
    json!({
        "service": spec.name,
        "project": {"name": spec.project.name, "from": spec.project.from.to_string()},
        "files": spec.compose_files,
        "image": spec.image,
        "command": w.command,
        "entrypoint": w.entrypoint,
        "environment": environment,
        "working_dir": w.working_dir,
        "user": w.user,
        "port": w.port,
        "healthcheck": w.healthcheck.as_ref().map(healthcheck),
        "labels": w.labels,
        "volumes": w.volumes,
        "networks": w.networks,
        "restart": w.restart,
        "stop_signal": w.stop_signal,
        "stop_grace_period": duration(w.stop_grace),
        "replicas": spec.replicas,
        "mode": if spec.global { "global" } else { "replicated" },
        "update_config": update(&spec.update_config),
        "rollback_config": update(&spec.rollback_config),
        "runtime": runtime(&w.runtime),
        "secrets": files(&w.files, FileKind::Secret),
        "configs": files(&w.files, FileKind::Config),
        "x-imgctl": settings,
        "notes": spec.notes,
    })
}

/// Each secret or config: where it comes from and where it lands, never its content.
fn files(files: &[FileMount], kind: FileKind) -> Value {
    let shown = files.iter().filter(|f| f.kind == kind).map(|f| {
        let mut from = Map::new();
        match &f.source {
            FileSource::File(path) => from.insert("file".into(), json!(path)),
            FileSource::External(name) => from.insert("external".into(), json!(name)),
            FileSource::Environment(variable) => from.insert("environment".into(), json!(variable)),
            FileSource::Inline => from.insert("content".into(), json!(format!("({} bytes)", content_len(f)))),
        };
        json!({
            "source": f.key,
            "from": from,
            "target": f.target,
            "uid": f.uid,
            "gid": f.gid,
            "mode": format!("{:04o}", f.file_mode()),
        })
    });
    Value::Array(shown.collect())
}

fn content_len(file: &FileMount) -> usize {
    file.content.as_ref().map_or(0, |c| c.len())
}

fn healthcheck(h: &Healthcheck) -> Value {
    json!({
        "test": h.test,
        "interval": h.interval.map(duration),
        "timeout": h.timeout.map(duration),
        "retries": h.retries,
        "start_period": h.start_period.map(duration),
    })
}

/// The runtime keys that are set, under compose's names, in the Engine API's units (bytes,
/// billionths of a CPU): what each replica's container gets.
fn runtime(r: &Runtime) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        let empty = match &value {
            Value::Null | Value::Bool(false) => true,
            Value::Array(list) => list.is_empty(),
            Value::Object(map) => map.is_empty(),
            _ => false,
        };
        if !empty {
            out.insert(key.into(), value);
        }
    };
    let res = &r.resources;
    let set = |pairs: [(&str, Option<i64>); 3]| -> Map<String, Value> {
        pairs.into_iter().filter_map(|(key, value)| Some((key.to_owned(), value?.into()))).collect()
    };
    let limits = set([("nano_cpus", res.cpus_limit), ("memory_bytes", res.memory_limit), ("pids", res.pids_limit)]);
    let reservations =
        set([("nano_cpus", res.cpus_reservation), ("memory_bytes", res.memory_reservation), ("pids", None)]);
    let mut resources = Map::new();
    if !limits.is_empty() {
        resources.insert("limits".into(), limits.into());
    }
    if !reservations.is_empty() {
        resources.insert("reservations".into(), reservations.into());
    }
    put("resources", resources.into());
    put("cap_add", json!(r.cap_add));
    put("cap_drop", json!(r.cap_drop));
    put("ulimits", r.ulimits.iter().map(|u| (u.name.clone(), json!({"soft": u.soft, "hard": u.hard}))).collect());
    put("extra_hosts", r.extra_hosts.iter().map(|h| Value::String(format!("{}:{}", h.host, h.ip))).collect());
    put("dns", json!(r.dns));
    put("dns_search", json!(r.dns_search));
    put("dns_opt", json!(r.dns_opt));
    put(
        "tmpfs",
        r.tmpfs
            .iter()
            .map(|t| {
                Value::String(if t.options.is_empty() { t.path.clone() } else { format!("{}:{}", t.path, t.options) })
            })
            .collect(),
    );
    put("read_only", r.read_only.into());
    put("init", json!(r.init));
    put("logging", r.logging.as_ref().map_or(Value::Null, |l| json!({"driver": l.driver, "options": l.options})));
    put("sysctls", json!(r.sysctls));
    put("hostname", json!(r.hostname));
    let e = &r.engine_only;
    put("privileged", e.privileged.into());
    put(
        "devices",
        e.devices.iter().map(|d| Value::String(format!("{}:{}:{}", d.host, d.container, d.permissions))).collect(),
    );
    put("shm_size", json!(e.shm_size));
    put("security_opt", json!(e.security_opt));
    put("pid", json!(e.pid));
    put("ipc", json!(e.ipc));
    put("domainname", json!(e.domainname));
    let t = &e.tuning;
    for (key, value) in [
        ("cpu_shares", t.cpu_shares),
        ("cpu_period", t.cpu_period),
        ("cpu_quota", t.cpu_quota),
        ("cpu_rt_period", t.cpu_rt_period),
        ("cpu_rt_runtime", t.cpu_rt_runtime),
        ("memswap_limit", t.memswap_limit),
        ("mem_swappiness", t.mem_swappiness),
        ("oom_score_adj", t.oom_score_adj),
    ] {
        put(key, json!(value));
    }
    put("cpuset", json!(t.cpuset));
    put("oom_kill_disable", json!(t.oom_kill_disable));
    let throttles = |list: &[crate::deploy::model::Throttle], rate: &str| -> Value {
        list.iter().map(|d| json!({"path": d.path, rate: d.rate})).collect()
    };
    let b = &t.blkio;
    let mut blkio = Map::new();
    for (key, value) in [
        ("weight", json!(b.weight)),
        ("weight_device", throttles(&b.weight_device, "weight")),
        ("device_read_bps", throttles(&b.device_read_bps, "rate")),
        ("device_write_bps", throttles(&b.device_write_bps, "rate")),
        ("device_read_iops", throttles(&b.device_read_iops, "rate")),
        ("device_write_iops", throttles(&b.device_write_iops, "rate")),
    ] {
        if !(value.is_null() || value.as_array().is_some_and(Vec::is_empty)) {
            blkio.insert(key.into(), value);
        }
    }
    put("blkio_config", blkio.into());
    put("userns_mode", json!(t.userns_mode));
    put("uts", json!(t.uts));
    put("cgroup_parent", json!(t.cgroup_parent));
    put("device_cgroup_rules", json!(t.device_cgroup_rules));
    put("runtime", json!(t.runtime));
    put("storage_opt", json!(t.storage_opt));
    put("tty", r.session.tty.into());
    put("stdin_open", r.session.stdin_open.into());
    put("group_add", json!(r.session.group_add));
    let sch = &r.scheduling;
    let mut placement = Map::new();
    if !sch.constraints.is_empty() {
        placement.insert("constraints".into(), json!(sch.constraints));
    }
    if !sch.preferences.is_empty() {
        placement.insert("preferences".into(), sch.preferences.iter().map(|p| json!({"spread": p})).collect());
    }
    if let Some(max) = sch.max_replicas_per_node {
        placement.insert("max_replicas_per_node".into(), max.into());
    }
    put("placement", placement.into());
    put("deploy_labels", json!(sch.labels));
    put(
        "restart_policy",
        sch.restart_policy.as_ref().map_or(Value::Null, |p| {
            json!({
                "condition": match p.condition {
                    crate::deploy::model::RestartCondition::Never => "none",
                    crate::deploy::model::RestartCondition::OnFailure => "on-failure",
                    crate::deploy::model::RestartCondition::Any => "any",
                },
                "delay": p.delay.map(duration),
                "max_attempts": p.max_attempts,
                "window": p.window.map(duration),
            })
        }),
    );
    Value::Object(out)
}

fn update(u: &UpdateConfig) -> Value {
    json!({
        "parallelism": u.parallelism,
        "delay": duration(u.delay),
        "monitor": duration(u.monitor),
        "failure_action": u.failure_action,
        "order": u.order,
        "max_failure_ratio": u.max_failure_ratio,
    })
}

/// `1h2m3s`, `1.5s`, `250ms`, `0s`: a duration compose reads back.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, rest) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    match (s, rest) {
        (0, 0) => {}
        (s, 0) => out.push_str(&format!("{s}s")),
        (s, rest) => out.push_str(&format!("{s}.{}s", format!("{rest:03}").trim_end_matches('0'))),
    }
    out
}

/// serde writes a `Duration` as `{secs, nanos}`; people and compose read `1m30s`.
fn durations_as_text(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let is_duration = map.len() == 2 && map.contains_key("secs") && map.contains_key("nanos");
            if is_duration {
                let secs = map["secs"].as_u64().unwrap_or(0);
                let nanos = map["nanos"].as_u64().unwrap_or(0) as u32;
                *value = Value::String(duration(Duration::new(secs, nanos)));
            } else {
                map.values_mut().for_each(durations_as_text);
            }
        }
        Value::Array(list) => list.iter_mut().for_each(durations_as_text),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::deploy::compose::parse_duration;
    use crate::deploy::spec::parse;

    #[test]
    fn durations_read_back_as_they_were_written() {
        for (d, text) in
            [(0, "0s"), (250, "250ms"), (1500, "1.5s"), (90_000, "1m30s"), (3_600_000, "1h"), (3_723_000, "1h2m3s")]
        {
            assert_eq!(duration(Duration::from_millis(d)), text);
            assert_eq!(parse_duration(text).unwrap(), Duration::from_millis(d));
        }
    }

    #[test]
    fn the_view_speaks_compose() {
        let yaml = "services:\n  web:\n    image: r/web:1\n    command: httpd -f\n    environment: [A=1, B]\n    expose: [8080]\n    healthcheck: {test: 'true', interval: 90s}\n    x-imgctl: {health: {path: /h}, keep_warm: 1m, proxy: {upstream_file: /u}}\n";
        let v = view(&parse(yaml, Path::new("/srv/compose.yaml"), "web").unwrap());
        assert_eq!(v["files"], json!(["/srv/compose.yaml"]));
        assert_eq!(v["command"], json!(["httpd", "-f"]));
        assert_eq!(v["environment"], json!({"A": "1", "B": null}));
        assert_eq!(v["healthcheck"]["test"], json!(["CMD-SHELL", "true"]));
        assert_eq!(v["healthcheck"]["interval"], "1m30s");
        assert_eq!(v["x-imgctl"]["keep_warm"], "1m");
        assert_eq!(v["x-imgctl"]["health"]["deadline"], "1m");
        assert_eq!(v["update_config"]["monitor"], "5s");
        assert_eq!(v["port"], 8080);
    }

    #[test]
    fn the_view_shows_the_runtime_keys_that_are_set() {
        let yaml = "services:\n  web:\n    image: r/web:1\n    expose: [8080]\n    cpus: 1.5\n    mem_limit: 512m\n    cap_add: [net_admin]\n    ulimits: {nofile: {soft: 1024, hard: 2048}}\n    extra_hosts: ['db:10.0.0.2']\n    tmpfs: ['/run:size=64m']\n    read_only: true\n    x-imgctl: {health: {path: /h}, proxy: {upstream_file: /u}}\n";
        let v = view(&parse(yaml, Path::new("/srv/compose.yaml"), "web").unwrap());
        assert_eq!(
            v["runtime"],
            json!({
                "resources": {"limits": {"nano_cpus": 1_500_000_000_i64, "memory_bytes": 536_870_912_i64}},
                "cap_add": ["CAP_NET_ADMIN"],
                "ulimits": {"nofile": {"soft": 1024, "hard": 2048}},
                "extra_hosts": ["db:10.0.0.2"],
                "tmpfs": ["/run:size=64m"],
                "read_only": true,
            })
        );
        let bare = "services:\n  web:\n    image: r/web:1\n    expose: [8080]\n    x-imgctl: {health: {path: /h}, proxy: {upstream_file: /u}}\n";
        assert_eq!(view(&parse(bare, Path::new("/srv/compose.yaml"), "web").unwrap())["runtime"], json!({}));
    }

    #[test]
    fn the_view_shows_where_secrets_and_configs_come_from_and_land_never_their_content() {
        let yaml = "services:\n  web:\n    image: r/web:1\n    expose: [8080]\n    secrets: [{source: token, mode: 0400}, api]\n    configs: [app]\n    x-imgctl: {health: {path: /h}, target: swarm, strategy: rolling}\n    healthcheck: {test: [CMD, 'true']}\nsecrets:\n  token: {file: ./token.txt}\n  api: {environment: API_TOKEN}\nconfigs:\n  app: {content: 'not shown'}\n";
        let v = view(&parse(yaml, Path::new("/srv/compose.yaml"), "web").unwrap());
        assert_eq!(
            v["secrets"],
            json!([
                {"source": "token", "from": {"file": "/srv/token.txt"}, "target": "/run/secrets/token", "uid": null, "gid": null, "mode": "0400"},
                {"source": "api", "from": {"environment": "API_TOKEN"}, "target": "/run/secrets/api", "uid": null, "gid": null, "mode": "0444"},
            ])
        );
        assert_eq!(v["configs"][0]["from"], json!({"content": "(9 bytes)"}));
        assert_eq!(v["configs"][0]["target"], "/app");
        assert!(!v.to_string().contains("not shown"), "{v}");
    }
}
