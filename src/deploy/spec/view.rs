//! A resolved service as `imgctl config` shows it: what imgctl will deploy, in compose's
//! vocabulary (`environment` as a mapping, durations as `1m30s`), like `docker compose config`
//! shows a whole project.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::ServiceSpec;
use crate::deploy::model::{Healthcheck, UpdateConfig};

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
        "update_config": update(&spec.update_config),
        "rollback_config": update(&spec.rollback_config),
        "x-imgctl": settings,
        "notes": spec.notes,
    })
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
}
