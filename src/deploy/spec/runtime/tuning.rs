//! The kernel knobs only a single Engine sets (`cpu_shares`, `cpu_period`, `cpu_quota`,
//! `cpuset`, `cpu_rt_*`, `memswap_limit`, `mem_swappiness`, `oom_kill_disable`,
//! `oom_score_adj`, `blkio_config`, `userns_mode`, `uts`, `cgroup_parent`,
//! `device_cgroup_rules`, `runtime`, `storage_opt`) and the session keys both targets run
//! (`tty`, `stdin_open`, `group_add`), read as compose reads them: numbers given as strings
//! (`cpu_shares: "512"`), sizes (`memswap_limit: 1g`, `device_read_bps: 10mb`), and
//! `cpu_period`, `cpu_quota`, `cpu_rt_period`, `cpu_rt_runtime` as microseconds or durations
//! (`cpu_quota: 50ms`, `cpu_rt_runtime: 400ms`), as both compose implementations read them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::units::size;
use super::values::{at, boolean, integer, list, name_like, plain_string};
use crate::deploy::compose::parse_duration;
use crate::deploy::model::{Blkio, Session, Throttle, Tuning};

/// The Engine-only knobs of a service `body`.
pub(super) fn tuning(body: &Value) -> Result<Tuning, String> {
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let number = |name: &str, low: i64, high: i64| -> Result<Option<i64>, String> {
        field(name)
            .map(|v| {
                integer(v)
                    .and_then(|n| if (low..=high).contains(&n) { Ok(n) } else { Err(format!("{n}: {low} to {high}")) })
                    .map_err(|m| at(name, m))
            })
            .transpose()
    };
    let text = |name: &str| field(name).map(|v| plain_string(v).map_err(|m| at(name, m))).transpose();
    let microseconds = |name: &str| field(name).map(|v| micros(v).map_err(|m| at(name, m))).transpose();
    let uts = text("uts")?;
    if let Some(bad) = uts.as_deref().filter(|u| *u != "host") {
        return Err(at("uts", format!("{bad:?}: the only UTS mode is host")));
    }
    let userns_mode = text("userns_mode")?;
    if let Some(bad) = userns_mode.as_deref().filter(|u| *u != "host") {
        return Err(at("userns_mode", format!("{bad:?}: the only user namespace mode is host")));
    }
    let cpuset = text("cpuset")?;
    if let Some(bad) =
        cpuset.as_deref().filter(|c| c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit() || b"-,".contains(&b)))
    {
        return Err(at("cpuset", format!("{bad:?} is not a CPU list (like 0-1 or 0,2)")));
    }
    Ok(Tuning {
        cpu_shares: number("cpu_shares", 2, 262_144)?,
        cpu_period: in_range("cpu_period", microseconds("cpu_period")?, 1000, 1_000_000)?,
        cpu_quota: match field("cpu_quota").map(integer) {
            Some(Ok(-1)) => Some(-1),
            _ => in_range("cpu_quota", microseconds("cpu_quota")?, 1000, i64::MAX)?,
        },
        cpuset,
        cpu_rt_period: microseconds("cpu_rt_period")?,
        cpu_rt_runtime: microseconds("cpu_rt_runtime")?,
        memswap_limit: field("memswap_limit")
            .map(|v| match integer(v) {
                Ok(-1) => Ok(-1),
                _ => size(v).map_err(|m| at("memswap_limit", format!("{m}, or -1 for unlimited swap"))),
            })
            .transpose()?,
        mem_swappiness: number("mem_swappiness", 0, 100)?,
        oom_kill_disable: field("oom_kill_disable")
            .map(|v| boolean(v).map_err(|m| at("oom_kill_disable", m)))
            .transpose()?,
        oom_score_adj: number("oom_score_adj", -1000, 1000)?,
        blkio: field("blkio_config").map(blkio).transpose()?.unwrap_or_default(),
        userns_mode,
        uts,
        cgroup_parent: text("cgroup_parent")?.map(|c| name_like("cgroup_parent", c)).transpose()?,
        device_cgroup_rules: field("device_cgroup_rules")
            .map(|v| list(v).map_err(|m| at("device_cgroup_rules", m)))
            .transpose()?
            .unwrap_or_default()
            .into_iter()
            .map(device_cgroup_rule)
            .collect::<Result<_, _>>()?,
        runtime: text("runtime")?.map(|r| name_like("runtime", r)).transpose()?,
        storage_opt: match field("storage_opt") {
            None => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| plain_string(v).map(|s| (k.clone(), s)).map_err(|m| at(&format!("storage_opt.{k}"), m)))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(at("storage_opt", "a map (like size: 1G)")),
        },
    })
}

/// `tty`, `stdin_open`, `group_add`.
pub(super) fn session(body: &Value) -> Result<Session, String> {
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let flag = |name: &str| field(name).map(|v| boolean(v).map_err(|m| at(name, m))).transpose();
    let group_add =
        field("group_add").map(|v| list(v).map_err(|m| at("group_add", m))).transpose()?.unwrap_or_default();
    if let Some(bad) = group_add.iter().find(|g| g.is_empty() || g.contains(|c: char| c.is_whitespace() || c == ':')) {
        return Err(at("group_add", format!("{bad:?} is not a group name or id")));
    }
    Ok(Session { tty: flag("tty")?.unwrap_or(false), stdin_open: flag("stdin_open")?.unwrap_or(false), group_add })
}

fn in_range(key: &str, value: Option<i64>, low: i64, high: i64) -> Result<Option<i64>, String> {
    match value {
        Some(n) if !(low..=high).contains(&n) => Err(at(key, format!("{n} microseconds: {low} to {high}"))),
        other => Ok(other),
    }
}

/// Microseconds: a whole number of them, or a duration (`400ms`, `1400us`).
fn micros(value: &Value) -> Result<i64, String> {
    if let Ok(n) = integer(value) {
        return if n >= 0 { Ok(n) } else { Err(format!("{n} is below 0")) };
    }
    let Value::String(text) = value else { return Err("microseconds, or a duration like 400ms".into()) };
    let duration = parse_duration(text)?;
    i64::try_from(duration.as_micros()).map_err(|_| format!("{text:?} is too long"))
}

/// `c 1:3 mr`, `b 8:* rwm`, `a`: docker's form (type, major:minor, access).
fn device_cgroup_rule(rule: String) -> Result<String, String> {
    let parts: Vec<&str> = rule.split_whitespace().collect();
    let number = |n: &str| n == "*" || n.parse::<u32>().is_ok();
    let ok = match parts.as_slice() {
        ["a"] => true,
        [kind, numbers, access] => {
            ["a", "b", "c"].contains(kind)
                && numbers.split_once(':').is_some_and(|(major, minor)| number(major) && number(minor))
                && !access.is_empty()
                && access.chars().all(|c| "rwm".contains(c))
        }
        _ => false,
    };
    if ok {
        Ok(rule)
    } else {
        Err(at("device_cgroup_rules", format!("{rule:?} is not TYPE MAJOR:MINOR ACCESS (like c 1:3 mr)")))
    }
}

/// `{weight, weight_device, device_read_bps, device_write_bps, device_read_iops, device_write_iops}`.
fn blkio(value: &Value) -> Result<Blkio, String> {
    const KEYS: [&str; 6] =
        ["weight", "weight_device", "device_read_bps", "device_write_bps", "device_read_iops", "device_write_iops"];
    let Value::Object(map) = value else { return Err(at("blkio_config", format!("a map of {}", KEYS.join(", ")))) };
    if let Some(other) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(at(&format!("blkio_config.{other}"), format!("not a key of it (it takes {})", KEYS.join(", "))));
    }
    let weight = |v: &Value, key: &str| {
        integer(v).ok().filter(|w| (10..=1000).contains(w)).ok_or_else(|| at(key, "a weight from 10 to 1000"))
    };
    type Rate<'a> = &'a dyn Fn(&Value, &str) -> Result<i64, String>;
    let by_size = |v: &Value, key: &str| size(v).map_err(|m| at(key, m));
    let by_count = |v: &Value, key: &str| {
        integer(v).ok().filter(|n| *n >= 0).ok_or_else(|| at(key, "a whole number of operations a second"))
    };
    let devices = |name: &str, rate_key: &str, rate: Rate| -> Result<Vec<Throttle>, String> {
        let key = format!("blkio_config.{name}");
        let Some(value) = map.get(name).filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
        let Value::Array(items) = value else { return Err(at(&key, format!("a list of {{path, {rate_key}}}"))) };
        items
            .iter()
            .map(|item| {
                let path = item.get("path").and_then(Value::as_str).filter(|p| p.starts_with('/'));
                let path = path.ok_or_else(|| at(&key, "each entry has an absolute path (like /dev/sda)"))?;
                let value = item.get(rate_key).ok_or_else(|| at(&key, format!("{path}: {rate_key} is missing")))?;
                Ok(Throttle { path: path.to_owned(), rate: rate(value, &format!("{key}.{rate_key}"))? })
            })
            .collect()
    };
    Ok(Blkio {
        weight: map
            .get("weight")
            .filter(|v| !v.is_null())
            .map(|v| weight(v, "blkio_config.weight").map(|w| u16::try_from(w).unwrap_or(1000)))
            .transpose()?,
        weight_device: devices("weight_device", "weight", &weight)?,
        device_read_bps: devices("device_read_bps", "rate", &by_size)?,
        device_write_bps: devices("device_write_bps", "rate", &by_size)?,
        device_read_iops: devices("device_read_iops", "rate", &by_count)?,
        device_write_iops: devices("device_write_iops", "rate", &by_count)?,
    })
}
