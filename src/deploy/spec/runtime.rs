//! compose's runtime keys of one service (resources, capabilities, ulimits, hosts, DNS, tmpfs,
//! logging, sysctls, ...), read from its merged and interpolated body into a [`Runtime`]. A
//! value of the wrong shape is refused by its key's name.
//!
//! Sizes and CPUs are read as compose reads them: `512m`, `1g`, `1.5g`, `64M`, `512mb`,
//! `1073741824` (binary units, as docker-py and go-units both count), and `1.5` CPUs is
//! exactly 1 500 000 000 nano-CPUs (decimal arithmetic, no floating point; more than nine
//! decimals is refused as docker refuses it). Values written as strings (what interpolation
//! gives: `read_only: ${RO:-true}`) are read like the typed ones, as compose does.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde_json::{Map, Value};

use crate::deploy::compose::scalar;
use crate::deploy::model::{EngineOnly, ExtraHost, Logging, Resources, Runtime, Tmpfs, Ulimit};
use crate::deploy::spec::Target;
use units::{cpus, size};

mod engine_only;
mod scheduling;
mod tuning;
mod units;
mod values;

use engine_only::{devices, namespace_mode, security_opt};
use values::{at, boolean, integer, list, name_like, plain_string, string_or_list};

/// The names `ulimits` may use (docker's go-units list).
const ULIMITS: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Reads the runtime keys of one compose service `body`; relative paths (a seccomp profile)
/// are taken from `base`, the compose file's folder.
pub(crate) fn runtime(body: &Value, base: &Path) -> Result<Runtime, String> {
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let strings = |name: &str| field(name).map(|v| string_or_list(v).map_err(|m| at(name, m))).transpose();
    let flag = |name: &str| field(name).map(|v| boolean(v).map_err(|m| at(name, m))).transpose();
    let text = |name: &str| field(name).map(|v| plain_string(v).map_err(|m| at(name, m))).transpose();

    let (cap_add, cap_drop) = capabilities(
        &field("cap_add").map(|v| list(v).map_err(|m| at("cap_add", m))).transpose()?.unwrap_or_default(),
        &field("cap_drop").map(|v| list(v).map_err(|m| at("cap_drop", m))).transpose()?.unwrap_or_default(),
    )?;
    let dns = strings("dns")?.unwrap_or_default();
    if let Some(bad) = dns.iter().find(|ip| ip.parse::<IpAddr>().is_err()) {
        return Err(at("dns", format!("{bad:?} is not an IP address")));
    }
    let dns_search = strings("dns_search")?.unwrap_or_default();
    if let Some(bad) = dns_search.iter().find(|d| d.is_empty() || d.contains(char::is_whitespace)) {
        return Err(at("dns_search", format!("{bad:?} is not a domain")));
    }
    let init = match field("init") {
        Some(Value::String(s)) if boolean(&Value::String(s.clone())).is_err() => {
            return Err(at(
                "init",
                "true or false (a path to an init binary is not supported: the Engine runs its own docker-init)",
            ));
        }
        _ => flag("init")?,
    };
    let pid = text("pid")?.map(|mode| namespace_mode("pid", mode, &["host"])).transpose()?;
    let ipc =
        text("ipc")?.map(|mode| namespace_mode("ipc", mode, &["host", "private", "shareable", "none"])).transpose()?;
    let hostname = text("hostname")?.map(|h| name_like("hostname", h)).transpose()?;
    let domainname = text("domainname")?.map(|h| name_like("domainname", h)).transpose()?;
    Ok(Runtime {
        resources: resources(body)?,
        cap_add,
        cap_drop,
        ulimits: field("ulimits").map(ulimits).transpose()?.unwrap_or_default(),
        extra_hosts: field("extra_hosts").map(extra_hosts).transpose()?.unwrap_or_default(),
        dns,
        dns_search,
        dns_opt: field("dns_opt").map(|v| list(v).map_err(|m| at("dns_opt", m))).transpose()?.unwrap_or_default(),
        tmpfs: strings("tmpfs")?.unwrap_or_default().iter().map(|t| tmpfs(t)).collect::<Result<_, _>>()?,
        read_only: flag("read_only")?.unwrap_or(false),
        init,
        logging: field("logging").map(logging).transpose()?,
        sysctls: field("sysctls").map(sysctls).transpose()?.unwrap_or_default(),
        hostname,
        engine_only: EngineOnly {
            privileged: flag("privileged")?.unwrap_or(false),
            devices: field("devices").map(devices).transpose()?.unwrap_or_default(),
            shm_size: field("shm_size").map(|v| size(v).map_err(|m| at("shm_size", m))).transpose()?,
            security_opt: field("security_opt").map(|v| security_opt(v, base)).transpose()?.unwrap_or_default(),
            pid,
            ipc,
            domainname,
            tuning: tuning::tuning(body)?,
        },
        session: tuning::session(body)?,
        scheduling: scheduling::scheduling(body)?,
    })
}

/// `runtime` as `target` can apply it: the keys it cannot are refused, each by name with its
/// reason, before anything changes.
pub(crate) fn for_target(runtime: Runtime, target: Target) -> Result<Runtime, String> {
    let refused = match target {
        Target::Engine => runtime.refused_on_engine(),
        Target::Swarm => runtime.refused_on_swarm(),
    };
    if refused.is_empty() {
        return Ok(runtime);
    }
    let place = match target {
        Target::Engine => "a single Docker Engine (x-imgctl.target: engine)",
        Target::Swarm => "swarm (x-imgctl.target: swarm)",
    };
    let refused: Vec<String> = refused.iter().map(ToString::to_string).collect();
    Err(format!("cannot be applied on {place}: {}", refused.join("; ")))
}

/// What `target` leaves of `runtime` unapplied, said rather than dropped (compose v2 drops it
/// without a word): on one Engine, swarm's placement and service labels, a restart policy's
/// timing, and `restart` when `deploy.restart_policy` is given (it wins, as in compose v2).
pub(crate) fn notes(body: &Value, runtime: &Runtime, target: Target) -> Vec<String> {
    if target == Target::Swarm {
        return Vec::new();
    }
    let mut notes = runtime.notes_on_engine();
    if runtime.scheduling.restart_policy.is_some() && body.get("restart").is_some_and(|v| !v.is_null()) {
        notes.push("restart: deploy.restart_policy is given too and wins on the Engine, as in compose v2".to_owned());
    }
    notes
}

/// `deploy.resources` and its service-level spellings. Both given with different values is
/// refused (compose v2's rule: docker-compose 1.29 let `deploy.resources` win silently).
fn resources(body: &Value) -> Result<Resources, String> {
    let resources = body.get("deploy").and_then(|d| d.get("resources")).filter(|v| !v.is_null());
    let section = |name: &str, allowed: &[&str]| -> Result<Option<&Map<String, Value>>, String> {
        let key = format!("deploy.resources.{name}");
        let Some(value) = resources.and_then(|r| r.get(name)).filter(|v| !v.is_null()) else { return Ok(None) };
        let map = value.as_object().ok_or_else(|| at(&key, "a map"))?;
        if let Some(other) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let why = match other.as_str() {
                "devices" | "generic_resources" => "device and generic resource reservations are not passed on",
                _ => "not a key of it",
            };
            return Err(at(&format!("{key}.{other}"), format!("{why} (it takes {})", allowed.join(", "))));
        }
        Ok(Some(map))
    };
    if let Some(map) = resources.map(|r| r.as_object().ok_or_else(|| at("deploy.resources", "a map"))).transpose()?
        && let Some(other) = map.keys().find(|k| !["limits", "reservations"].contains(&k.as_str()))
    {
        return Err(at(&format!("deploy.resources.{other}"), "not a key of it (it takes limits, reservations)"));
    }
    let limits = section("limits", &["cpus", "memory", "pids"])?;
    let reservations = section("reservations", &["cpus", "memory"])?;

    type Parse = fn(&Value) -> Result<i64, String>;
    let one = |nested: Option<&Map<String, Value>>, section: &str, key: &str, flat: Option<&str>, parse: Parse| {
        let deep_key = format!("deploy.resources.{section}.{key}");
        let deep_raw = nested.and_then(|m| m.get(key)).filter(|v| !v.is_null());
        let deep = deep_raw.map(|v| parse(v).map_err(|m| at(&deep_key, m))).transpose()?;
        let Some(flat) = flat else { return Ok(deep) };
        let flat_raw = body.get(flat).filter(|v| !v.is_null());
        let flat_value = flat_raw.map(|v| parse(v).map_err(|m| at(flat, m))).transpose()?;
        match (deep, flat_value, deep_raw, flat_raw) {
            (Some(a), Some(b), Some(a_raw), Some(b_raw)) if a != b => Err(format!(
                "{flat} and {deep_key} are the same setting and differ ({} and {}): set one",
                scalar(b_raw),
                scalar(a_raw)
            )),
            (a, b, ..) => Ok(a.or(b)),
        }
    };
    let pids: Parse = |v| integer(v).and_then(|n| if n >= -1 { Ok(n) } else { Err("-1 (unlimited) or more".into()) });
    Ok(Resources {
        cpus_limit: one(limits, "limits", "cpus", Some("cpus"), cpus)?,
        memory_limit: one(limits, "limits", "memory", Some("mem_limit"), size)?,
        pids_limit: one(limits, "limits", "pids", Some("pids_limit"), pids)?,
        cpus_reservation: one(reservations, "reservations", "cpus", None, cpus)?,
        memory_reservation: one(reservations, "reservations", "memory", Some("mem_reservation"), size)?,
    })
}

/// Normalized as docker's CLI does (upper case, `CAP_` prefix, `ALL` alone), and as it sends
/// them to swarm: a capability both added and dropped is added.
fn capabilities(add: &[String], drop: &[String]) -> Result<(Vec<String>, Vec<String>), String> {
    let normalize = |key: &str, caps: &[String]| -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for cap in caps {
            let cap = cap.trim().to_ascii_uppercase();
            if cap.is_empty() || !cap.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(at(key, format!("{cap:?} is not a capability (like NET_ADMIN or ALL)")));
            }
            out.push(if cap == "ALL" || cap.starts_with("CAP_") { cap } else { format!("CAP_{cap}") });
        }
        if out.iter().any(|c| c == "ALL") {
            out = vec!["ALL".into()];
        }
        out.sort();
        out.dedup();
        Ok(out)
    };
    let add = normalize("cap_add", add)?;
    let drop = normalize("cap_drop", drop)?.into_iter().filter(|c| !add.contains(c)).collect();
    Ok((add, drop))
}

/// `nofile: 1024` or `nofile: {soft: 1024, hard: 2048}`.
fn ulimits(value: &Value) -> Result<Vec<Ulimit>, String> {
    let Value::Object(map) = value else { return Err(at("ulimits", "a map of name to a number or {soft, hard}")) };
    let mut out = Vec::new();
    for (name, limit) in map {
        let key = format!("ulimits.{name}");
        if !ULIMITS.contains(&name.as_str()) {
            return Err(at(&key, format!("not a ulimit (one of {})", ULIMITS.join(", "))));
        }
        let limit_value =
            |v: &Value| integer(v).and_then(|n| if n >= -1 { Ok(n) } else { Err(format!("{n} is below -1")) });
        let (soft, hard) = match limit {
            Value::Object(pair) => {
                if let Some(other) = pair.keys().find(|k| !["soft", "hard"].contains(&k.as_str())) {
                    return Err(at(&key, format!("{other} is not soft or hard")));
                }
                let get = |k: &str| {
                    pair.get(k)
                        .ok_or_else(|| at(&key, "needs both soft and hard"))
                        .and_then(|v| limit_value(v).map_err(|m| at(&format!("{key}.{k}"), m)))
                };
                (get("soft")?, get("hard")?)
            }
            single => {
                let n = limit_value(single).map_err(|m| at(&key, format!("{m} (a number, or {{soft, hard}})")))?;
                (n, n)
            }
        };
        // -1 is unlimited, above any number.
        let above = |a: i64, b: i64| b != -1 && (a == -1 || a > b);
        if above(soft, hard) {
            return Err(at(&key, format!("soft {soft} is above hard {hard}")));
        }
        out.push(Ulimit { name: name.clone(), soft, hard });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `["host:ip"]` (or `host=ip`), or `{host: ip}`.
fn extra_hosts(value: &Value) -> Result<Vec<ExtraHost>, String> {
    let pairs: Vec<(String, String)> = match value {
        Value::Array(_) => list(value)
            .map_err(|_| at("extra_hosts", "a list of host:ip or a map"))?
            .into_iter()
            .map(|entry| {
                let split = entry.split_once('=').or_else(|| entry.split_once(':'));
                split
                    .map(|(h, ip)| (h.to_owned(), ip.to_owned()))
                    .ok_or_else(|| at("extra_hosts", format!("{entry:?} is not host:ip")))
            })
            .collect::<Result<_, _>>()?,
        Value::Object(map) => map
            .iter()
            .map(|(h, ip)| {
                Ok((h.clone(), plain_string(ip).map_err(|_| at(&format!("extra_hosts.{h}"), "an IP address"))?))
            })
            .collect::<Result<_, String>>()?,
        _ => return Err(at("extra_hosts", "a list of host:ip or a map")),
    };
    pairs
        .into_iter()
        .map(|(host, ip)| {
            let (host, ip) =
                (host.trim().to_owned(), ip.trim().trim_start_matches('[').trim_end_matches(']').to_owned());
            if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == ':') {
                return Err(at("extra_hosts", format!("{host:?} is not a host name")));
            }
            if ip != "host-gateway" && ip.parse::<IpAddr>().is_err() {
                return Err(at("extra_hosts", format!("{host}: {ip:?} is not an IP address (or host-gateway)")));
            }
            Ok(ExtraHost { host, ip })
        })
        .collect()
}

/// `/run` or `/run:size=64m,mode=1777,noexec`.
fn tmpfs(entry: &str) -> Result<Tmpfs, String> {
    let (path, options) = entry.split_once(':').unwrap_or((entry, ""));
    if !path.starts_with('/') {
        return Err(at("tmpfs", format!("{entry:?}: the path in the container must be absolute")));
    }
    let (mut size_bytes, mut mode, mut other) = (None, None, Vec::new());
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("size", v)) if size(&Value::String(v.into())).is_ok() => {
                size_bytes = size(&Value::String(v.into())).ok();
            }
            Some(("mode", v)) if u32::from_str_radix(v, 8).is_ok_and(|m| m <= 0o7777) => {
                mode = u32::from_str_radix(v, 8).ok();
            }
            _ => other.push(option.to_owned()),
        }
    }
    Ok(Tmpfs { path: path.to_owned(), options: options.to_owned(), size: size_bytes, mode, other })
}

/// `{driver, options}`.
fn logging(value: &Value) -> Result<Logging, String> {
    let Value::Object(map) = value else { return Err(at("logging", "a map with driver and options")) };
    if let Some(other) = map.keys().find(|k| !["driver", "options"].contains(&k.as_str())) {
        return Err(at(&format!("logging.{other}"), "not a key of it (it takes driver, options)"));
    }
    let driver = map
        .get("driver")
        .filter(|v| !v.is_null())
        .map(|v| plain_string(v).map_err(|m| at("logging.driver", m)))
        .transpose()?;
    let options = match map.get("options").filter(|v| !v.is_null()) {
        None => BTreeMap::new(),
        Some(Value::Object(options)) => options
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                v => plain_string(v).map(|s| (k.clone(), s)).map_err(|m| at(&format!("logging.options.{k}"), m)),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(at("logging.options", "a map of strings")),
    };
    Ok(Logging { driver, options })
}

/// `["net.core.somaxconn=1024"]` or `{net.core.somaxconn: 1024}`.
fn sysctls(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let pairs: Vec<(String, String)> = match value {
        Value::Array(_) => list(value)
            .map_err(|_| at("sysctls", "a list of name=value or a map"))?
            .into_iter()
            .map(|entry| match entry.split_once('=') {
                Some((k, v)) => Ok((k.trim().to_owned(), v.trim().to_owned())),
                None => Err(at("sysctls", format!("{entry:?} is not name=value"))),
            })
            .collect::<Result<_, _>>()?,
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), plain_string(v).map_err(|_| at(&format!("sysctls.{k}"), "a value"))?)))
            .collect::<Result<_, String>>()?,
        _ => return Err(at("sysctls", "a list of name=value or a map")),
    };
    let mut out = BTreeMap::new();
    for (name, value) in pairs {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b)) {
            return Err(at("sysctls", format!("{name:?} is not a sysctl name")));
        }
        out.insert(name, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
