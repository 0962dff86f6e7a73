//! The keys only a single Engine applies that need more than a value read: `devices`,
//! `security_opt` (a seccomp profile read from its file), `pid`/`ipc` namespace modes.

use std::path::Path;

use serde_json::Value;

use super::values::{at, boolean, list};
use crate::deploy::model::Device;

/// `/dev/fuse`, `/dev/sda:/dev/xvda`, `/dev/sda:/dev/xvda:r`, or `{source, target, permissions}`.
pub(super) fn devices(value: &Value) -> Result<Vec<Device>, String> {
    let Value::Array(items) = value else { return Err(at("devices", "a list of host[:container[:permissions]]")) };
    items
        .iter()
        .map(|item| {
            let (host, container, permissions) = match item {
                Value::String(s) => {
                    let mut parts = s.splitn(3, ':');
                    let host = parts.next().unwrap_or_default().to_owned();
                    (host, parts.next().map(str::to_owned), parts.next().map(str::to_owned))
                }
                Value::Object(m) => {
                    let get = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
                    (get("source").unwrap_or_default(), get("target"), get("permissions"))
                }
                _ => return Err(at("devices", "each device is host[:container[:permissions]]")),
            };
            let container = container.unwrap_or_else(|| host.clone());
            let permissions = permissions.unwrap_or_else(|| "rwm".into());
            if !host.starts_with('/') || !container.starts_with('/') {
                return Err(at("devices", format!("{host:?}: device paths are absolute")));
            }
            if permissions.is_empty() || !permissions.chars().all(|c| "rwm".contains(c)) {
                return Err(at("devices", format!("{host}: permissions {permissions:?} are made of r, w and m")));
            }
            Ok(Device { host, container, permissions })
        })
        .collect()
}

/// compose's `security_opt`, as docker's CLI sends it: `key=value` (the old `key:value` form
/// rewritten), and `seccomp=PATH` replaced by the profile itself (the Engine takes the JSON, not
/// a path), read relative to `base`.
pub(super) fn security_opt(value: &Value, base: &Path) -> Result<Vec<String>, String> {
    let options = list(value).map_err(|m| at("security_opt", m))?;
    options
        .into_iter()
        .map(|option| {
            let (key, val) = match option.split_once('=') {
                Some(pair) => pair,
                None => option.split_once(':').unwrap_or((option.as_str(), "")),
            };
            match (key, val) {
                ("no-new-privileges", "") => Ok(option.clone()),
                ("no-new-privileges", v) => boolean(&Value::String(v.into()))
                    .map(|b| format!("no-new-privileges={b}"))
                    .map_err(|m| at("security_opt", m)),
                ("seccomp", "unconfined") => Ok("seccomp=unconfined".into()),
                ("seccomp", path) if !path.is_empty() => {
                    let file = base.join(path);
                    let text = std::fs::read_to_string(&file)
                        .map_err(|e| at("security_opt", format!("seccomp profile {}: {e}", file.display())))?;
                    let profile: Value = serde_json::from_str(&text)
                        .map_err(|e| at("security_opt", format!("seccomp profile {} is not JSON: {e}", file.display())))?;
                    Ok(format!("seccomp={profile}"))
                }
                ("apparmor" | "label" | "systempaths" | "mask" | "unmask", v) if !v.is_empty() => Ok(format!("{key}={v}")),
                _ => Err(at(
                    "security_opt",
                    format!(
                        "{option:?} is not one of no-new-privileges, seccomp=PROFILE, apparmor=PROFILE, label=..., systempaths=unconfined"
                    ),
                )),
            }
        })
        .collect()
}

/// `pid`/`ipc`: one of `modes`, or `container:NAME`. `service:NAME` names a compose service's
/// container, which imgctl, deploying one service, does not know.
pub(super) fn namespace_mode(key: &str, mode: String, modes: &[&str]) -> Result<String, String> {
    if modes.contains(&mode.as_str()) || mode.strip_prefix("container:").is_some_and(|n| !n.is_empty()) {
        return Ok(mode);
    }
    if mode.starts_with("service:") {
        return Err(at(
            key,
            format!(
                "{mode:?}: imgctl deploys one service and cannot tell which container of another service to join; name it: container:NAME"
            ),
        ));
    }
    Err(at(key, format!("{mode:?} is not one of {}, container:NAME", modes.join(", "))))
}
