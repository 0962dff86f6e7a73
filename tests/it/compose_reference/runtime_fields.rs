//! The runtime keys beyond the common ones, compared field by field between docker-compose
//! 1.29's `config` and `imgctl config -o json` (its `runtime` object).

use serde_json::{Map, Value, json};

use super::ms;

/// A size as docker-compose 1.29 prints it (`128m`, or bytes), in bytes.
fn bytes(value: &Value) -> Option<i64> {
    let text = match value {
        Value::Number(n) => return n.as_i64(),
        Value::String(s) => s.to_ascii_lowercase(),
        _ => return None,
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        _ => return None,
    };
    number.parse::<i64>().ok().map(|n| n << shift)
}

/// The runtime keys both tools know beyond the common ones, where the corpus sets them:
/// 1.29 keeps `cpu_shares: "512"` and `memswap_limit: 128m` as written, imgctl shows numbers
/// and bytes; `false` and an absent key are the same (imgctl shows only what is set).
pub(super) fn differences(compose: &Map<String, Value>, runtime: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut expect = |field: &str, theirs: Value, ours: Value| {
        let unset = |v: &Value| v.is_null() || v == &json!(false);
        if theirs != ours && !(unset(&theirs) && unset(&ours)) {
            found.push(format!("{field}: docker-compose {theirs}, imgctl {ours}"));
        }
    };
    let number = |v: &Value| match v {
        Value::String(s) => s.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
        other => other.clone(),
    };
    for key in
        ["cpu_shares", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "mem_swappiness", "oom_score_adj"]
    {
        if let Some(theirs) = compose.get(key) {
            expect(key, number(theirs), runtime[key].clone());
        }
    }
    if let Some(theirs) = compose.get("memswap_limit") {
        expect("memswap_limit", json!(bytes(theirs)), runtime["memswap_limit"].clone());
    }
    for key in [
        "cpuset",
        "oom_kill_disable",
        "tty",
        "stdin_open",
        "group_add",
        "userns_mode",
        "cgroup_parent",
        "device_cgroup_rules",
        "runtime",
        "storage_opt",
        "blkio_config",
    ] {
        if let Some(theirs) = compose.get(key) {
            expect(key, theirs.clone(), runtime[key].clone());
        }
    }
    let deploy = compose.get("deploy").cloned().unwrap_or(json!({}));
    if let Some(labels) = deploy.get("labels") {
        let theirs: Map<String, Value> = match labels {
            Value::Array(list) => list
                .iter()
                .filter_map(Value::as_str)
                .map(|l| l.split_once('=').unwrap_or((l, "")))
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect(),
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        expect("deploy.labels", Value::Object(theirs), runtime["deploy_labels"].clone());
    }
    if let Some(placement) = deploy.get("placement") {
        expect("deploy.placement", placement.clone(), runtime["placement"].clone());
    }
    if let Some(Value::Object(policy)) = deploy.get("restart_policy") {
        for (key, theirs) in policy {
            let ours = &runtime["restart_policy"][key];
            let (theirs, ours) = match key.as_str() {
                "delay" | "window" => (json!(ms(theirs)), json!(ms(ours))),
                _ => (theirs.clone(), ours.clone()),
            };
            expect(&format!("deploy.restart_policy.{key}"), theirs, ours);
        }
    }
    found
}
