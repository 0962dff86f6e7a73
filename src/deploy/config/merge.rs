//! Compose's merge of a service over another: each `-f` file over the ones before it, and a
//! service over the one it `extends`. The rules are the compose specification's (and
//! docker-compose 1.29's, but for order: 1.29 sorts merged lists, v2 keeps them in the order
//! written, which is the order kept here, since imgctl reads the first `expose` as the port):
//!
//! - mappings merge key by key: `environment`, `labels`, `extra_hosts`, `sysctls` (each also
//!   written as a `KEY=VALUE` list), `ulimits`, `deploy` (and its `update_config`,
//!   `resources.limits`...), `healthcheck`, `logging`, `networks` (a list is a mapping of
//!   names), `x-*` blocks;
//! - `volumes` and `devices` merge by the path in the container: an override of `/data`
//!   replaces the base's mount of `/data`;
//! - `ports`, `expose`, `cap_add`, `cap_drop`, `dns`, `dns_search`, `tmpfs`, `env_file`,
//!   `security_opt`, `profiles`... are appended, each value once;
//! - anything else (`image`, `command`, `entrypoint`, `healthcheck.test`, `user`...) is
//!   replaced.

use serde_json::{Map, Value};

use crate::deploy::compose::scalar;

/// Merges service `over` into service `base`.
pub(super) fn service(base: &mut Map<String, Value>, over: Map<String, Value>) {
    for (key, value) in over {
        let slot = base.entry(key.clone()).or_insert(Value::Null);
        match key.as_str() {
            "environment" => by_key(slot, value, '='),
            "labels" | "sysctls" | "annotations" => by_key(slot, value, '='),
            "extra_hosts" => by_key(slot, value, ':'),
            "networks" => {
                let names = |v: Value| match v {
                    Value::Array(list) => Value::Object(list.iter().map(|n| (scalar(n), Value::Null)).collect()),
                    other => other,
                };
                let value = names(value);
                *slot = names(std::mem::take(slot));
                deep(slot, value);
            }
            "volumes" | "devices" => by_target(slot, value),
            // compose-go merges them by where they land (its `mountIndexer`): a later file's
            // mount at the same target replaces the earlier one.
            "secrets" => by_mount(slot, value, "/run/secrets"),
            "configs" => by_mount(slot, value, ""),
            "ports"
            | "expose"
            | "cap_add"
            | "cap_drop"
            | "dns"
            | "dns_search"
            | "dns_opt"
            | "tmpfs"
            | "env_file"
            | "security_opt"
            | "profiles"
            | "external_links"
            | "volumes_from"
            | "links"
            | "group_add"
            | "device_cgroup_rules" => unique(slot, value),
            "logging" => logging(slot, value),
            "deploy" | "healthcheck" | "ulimits" | "build" | "depends_on" | "blkio_config" | "storage_opt" => {
                deep(slot, value)
            }
            key if key.starts_with("x-") => deep(slot, value),
            _ => *slot = value,
        }
    }
}

/// Mappings key by key (recursively), anything else replaced.
pub(super) fn deep(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(slot) => deep(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// A mapping, or a list of `KEY<sep>VALUE` (a bare `KEY`: null), as a mapping.
pub(super) fn as_mapping(value: Value, sep: char) -> Value {
    match value {
        Value::Array(list) => Value::Object(
            list.iter()
                .map(|item| {
                    let text = scalar(item);
                    match text.split_once(sep) {
                        Some((k, v)) => (k.to_owned(), Value::String(v.to_owned())),
                        None => (text, Value::Null),
                    }
                })
                .collect(),
        ),
        other => other,
    }
}

fn by_key(slot: &mut Value, over: Value, sep: char) {
    let base = as_mapping(std::mem::take(slot), sep);
    let over = as_mapping(over, sep);
    *slot = match (base, over) {
        (Value::Object(mut base), Value::Object(over)) => {
            base.extend(over);
            Value::Object(base)
        }
        (Value::Null, over) => over,
        (_, over) => over,
    };
}

/// The container path of a volume or device: `src:dst[:mode]` (or `dst` alone) or the long
/// form's `target`.
fn target(item: &Value) -> String {
    match item {
        Value::Object(map) => map.get("target").map(scalar).unwrap_or_default(),
        other => {
            let text = scalar(other);
            let mut parts = text.split(':');
            match (parts.next(), parts.next()) {
                (Some(_), Some(container)) => container.to_owned(),
                (Some(only), None) => only.to_owned(),
                _ => text.clone(),
            }
        }
    }
}

fn by_target(slot: &mut Value, over: Value) {
    let (Value::Array(base), Value::Array(over)) = (&mut *slot, &over) else {
        *slot = over;
        return;
    };
    for item in over {
        let at = target(item);
        match base.iter_mut().find(|b| target(b) == at) {
            Some(existing) => *existing = item.clone(),
            None => base.push(item.clone()),
        }
    }
}

/// Where a secret or config lands, as compose-go indexes it: the long form's `target` as
/// written, else `DEFAULT/source` (the short form is the source).
fn mount_target(item: &Value, default: &str) -> String {
    match item {
        Value::Object(map) => match map.get("target") {
            Some(target) => scalar(target),
            None => format!("{default}/{}", map.get("source").map(scalar).unwrap_or_default()),
        },
        other => format!("{default}/{}", scalar(other)),
    }
}

/// A list as compose writes one: a single value counts as a list of one, null as none.
fn list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(list) => list,
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

fn by_mount(slot: &mut Value, over: Value, default: &str) {
    let mut merged = list(std::mem::take(slot));
    for item in list(over) {
        let at = mount_target(&item, default);
        match merged.iter_mut().find(|m| mount_target(m, default) == at) {
            Some(existing) => *existing = item,
            None => merged.push(item),
        }
    }
    *slot = Value::Array(merged);
}

/// A list (a single string counts as a list of one), each value once, in order.
fn unique(slot: &mut Value, over: Value) {
    let mut merged = list(std::mem::take(slot));
    for item in list(over) {
        if !merged.contains(&item) {
            merged.push(item);
        }
    }
    *slot = Value::Array(merged);
}

/// `logging`: another driver replaces the options; the same driver merges them.
fn logging(slot: &mut Value, over: Value) {
    let driver = |v: &Value| v.get("driver").cloned();
    let same = driver(&over).is_none() || driver(slot).is_none() || driver(&over) == driver(slot);
    if same {
        deep(slot, over);
    } else {
        *slot = over;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::service;

    fn merged(base: Value, over: Value) -> Value {
        let (Value::Object(mut base), Value::Object(over)) = (base, over) else { panic!() };
        service(&mut base, over);
        Value::Object(base)
    }

    #[test]
    fn composes_rules_key_by_key() {
        let base = json!({
            "image": "web:1", "command": ["a", "b"], "entrypoint": "sh -c",
            "environment": {"A": "1", "B": null}, "labels": ["team=web", "tier"],
            "extra_hosts": ["db:10.0.0.1"], "expose": ["8080"], "ports": ["8080:80"],
            "volumes": ["./data:/data", "logs:/logs", {"type": "bind", "source": "/etc/a", "target": "/a"}],
            "dns": "1.1.1.1", "cap_add": ["NET_ADMIN"],
            "healthcheck": {"test": ["CMD", "true"], "interval": "2s"},
            "deploy": {"replicas": 2, "update_config": {"parallelism": 2}, "resources": {"limits": {"cpus": "1"}}},
            "networks": ["front"], "logging": {"driver": "json-file", "options": {"max-size": "1m"}},
            "x-imgctl": {"health": {"path": "/h", "interval": "1s"}}
        });
        let over = json!({
            "image": "web:2", "command": "c", "environment": ["A=override", "C=3"], "labels": {"tier": "front"},
            "extra_hosts": {"cache": "10.0.0.2"}, "expose": ["80", "8080"], "ports": ["8080:80", "9090:90"],
            "volumes": ["/srv/data:/data:ro", {"type": "volume", "source": "x", "target": "/a"}],
            "dns": ["8.8.8.8"], "cap_add": ["SYS_TIME"],
            "healthcheck": {"test": "wget -q -O- localhost", "retries": 3},
            "deploy": {"update_config": {"delay": "1s"}, "resources": {"limits": {"memory": "64M"}}},
            "networks": {"back": {"aliases": ["api"]}}, "logging": {"options": {"max-file": "2"}},
            "x-imgctl": {"health": {"interval": "2s"}}
        });
        let m = merged(base, over);
        assert_eq!(m["image"], "web:2");
        assert_eq!(m["command"], "c", "command is replaced, not appended");
        assert_eq!(m["entrypoint"], "sh -c");
        assert_eq!(m["environment"], json!({"A": "override", "B": null, "C": "3"}));
        assert_eq!(m["labels"], json!({"team": "web", "tier": "front"}));
        assert_eq!(m["extra_hosts"], json!({"db": "10.0.0.1", "cache": "10.0.0.2"}));
        assert_eq!(m["expose"], json!(["8080", "80"]));
        assert_eq!(m["ports"], json!(["8080:80", "9090:90"]));
        assert_eq!(
            m["volumes"],
            json!(["/srv/data:/data:ro", "logs:/logs", {"type": "volume", "source": "x", "target": "/a"}]),
            "by the path in the container"
        );
        assert_eq!(m["dns"], json!(["1.1.1.1", "8.8.8.8"]));
        assert_eq!(m["cap_add"], json!(["NET_ADMIN", "SYS_TIME"]));
        assert_eq!(m["healthcheck"], json!({"test": "wget -q -O- localhost", "interval": "2s", "retries": 3}));
        assert_eq!(
            m["deploy"],
            json!({"replicas": 2, "update_config": {"parallelism": 2, "delay": "1s"}, "resources": {"limits": {"cpus": "1", "memory": "64M"}}})
        );
        assert_eq!(m["networks"], json!({"front": null, "back": {"aliases": ["api"]}}));
        assert_eq!(m["logging"], json!({"driver": "json-file", "options": {"max-size": "1m", "max-file": "2"}}));
        assert_eq!(m["x-imgctl"], json!({"health": {"path": "/h", "interval": "2s"}}));
    }

    #[test]
    fn another_logging_driver_replaces_the_options() {
        let m = merged(
            json!({"logging": {"driver": "json-file", "options": {"max-size": "1m"}}}),
            json!({"logging": {"driver": "syslog"}}),
        );
        assert_eq!(m["logging"], json!({"driver": "syslog"}));
    }

    // compose-go's mountIndexer: a later file's secret or config at the same target replaces
    // the earlier one; the short form lands at /run/secrets/SOURCE (configs: /SOURCE).
    #[test]
    fn secrets_and_configs_merge_by_where_they_land() {
        let m = merged(
            json!({"secrets": ["token", {"source": "a", "target": "x"}], "configs": ["app"]}),
            json!({
                "secrets": [{"source": "token", "mode": 256}, {"source": "b", "target": "x"}, "other"],
                "configs": [{"source": "app", "target": "/etc/app.conf"}, "app"]
            }),
        );
        assert_eq!(m["secrets"], json!([{"source": "token", "mode": 256}, {"source": "b", "target": "x"}, "other"]));
        assert_eq!(m["configs"], json!(["app", {"source": "app", "target": "/etc/app.conf"}]));
    }
}
