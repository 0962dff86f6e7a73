//! `deploy.placement`, `deploy.labels` and `deploy.restart_policy`, read as compose reads them
//! (`docker stack deploy` converts them into the swarm service's spec the same way).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::values::{at, integer, list, plain_string};
use crate::deploy::compose::{parse_duration, scalar};
use crate::deploy::model::{RestartCondition, RestartPolicy, Scheduling};

/// The `deploy` keys swarm schedules by, from a service `body`.
pub(super) fn scheduling(body: &Value) -> Result<Scheduling, String> {
    let deploy = |key: &str| body.get("deploy").and_then(|d| d.get(key)).filter(|v| !v.is_null());
    let mut out = Scheduling::default();
    if let Some(placement) = deploy("placement") {
        let map = section(placement, "deploy.placement", &["constraints", "preferences", "max_replicas_per_node"])?;
        let get = |k: &str| map.get(k).filter(|v| !v.is_null());
        if let Some(constraints) = get("constraints") {
            out.constraints = list(constraints).map_err(|m| at("deploy.placement.constraints", m))?;
            if let Some(bad) = out.constraints.iter().find(|c| !["==", "!="].iter().any(|op| c.contains(op))) {
                return Err(at(
                    "deploy.placement.constraints",
                    format!("{bad:?} is not a constraint (like node.role == manager, or node.labels.zone != b)"),
                ));
            }
        }
        if let Some(preferences) = get("preferences") {
            let Value::Array(items) = preferences else {
                return Err(at("deploy.placement.preferences", "a list of {spread: node.labels.NAME}"));
            };
            for item in items {
                let spread = item
                    .as_object()
                    .filter(|m| m.len() == 1)
                    .and_then(|m| m.get("spread"))
                    .and_then(|v| plain_string(v).ok())
                    .filter(|s| !s.trim().is_empty());
                out.preferences.push(spread.ok_or_else(|| {
                    at("deploy.placement.preferences", "each preference is {spread: node.labels.NAME}")
                })?);
            }
        }
        if let Some(max) = get("max_replicas_per_node") {
            let n = integer(max).map_err(|m| at("deploy.placement.max_replicas_per_node", m))?;
            out.max_replicas_per_node = Some(u64::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                at("deploy.placement.max_replicas_per_node", format!("{n}: 1 or more (leave it out for no limit)"))
            })?);
        }
    }
    if let Some(labels) = deploy("labels") {
        out.labels = key_values(labels).map_err(|m| at("deploy.labels", m))?;
    }
    if let Some(policy) = deploy("restart_policy") {
        out.restart_policy = Some(restart_policy(policy)?);
    }
    Ok(out)
}

fn section<'a>(value: &'a Value, key: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>, String> {
    let map = value.as_object().ok_or_else(|| at(key, format!("a map (of {})", allowed.join(", "))))?;
    if let Some(other) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(at(&format!("{key}.{other}"), format!("not a key of it (it takes {})", allowed.join(", "))));
    }
    Ok(map)
}

/// `["a=b"]` or `{a: b}` (a label without a value is empty, as compose has it).
fn key_values(value: &Value) -> Result<BTreeMap<String, String>, String> {
    match value {
        Value::Array(_) => Ok(list(value)
            .map_err(|_| "a list of name=value or a map".to_owned())?
            .into_iter()
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (pair, String::new()),
            })
            .collect()),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::Null => Ok((k.clone(), String::new())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                v => plain_string(v).map(|s| (k.clone(), s)).map_err(|m| format!("{k}: {m}")),
            })
            .collect(),
        _ => Err("a list of name=value or a map".into()),
    }
}

/// `{condition, delay, max_attempts, window}`.
fn restart_policy(value: &Value) -> Result<RestartPolicy, String> {
    const KEY: &str = "deploy.restart_policy";
    let map = section(value, KEY, &["condition", "delay", "max_attempts", "window"])?;
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    let condition = match get("condition").map(scalar).as_deref() {
        None | Some("any") => RestartCondition::Any,
        Some("on-failure") => RestartCondition::OnFailure,
        Some("none") => RestartCondition::Never,
        Some(other) => {
            return Err(at(&format!("{KEY}.condition"), format!("{other:?} is not none, on-failure or any")));
        }
    };
    let duration = |k: &str| -> Result<Option<Duration>, String> {
        get(k).map(|v| parse_duration(&scalar(v)).map_err(|m| at(&format!("{KEY}.{k}"), m))).transpose()
    };
    let max_attempts = get("max_attempts")
        .map(|v| {
            integer(v)
                .and_then(|n| u64::try_from(n).map_err(|_| format!("{n} is below 0")))
                .map_err(|m| at(&format!("{KEY}.max_attempts"), m))
        })
        .transpose()?;
    Ok(RestartPolicy { condition, delay: duration("delay")?, max_attempts, window: duration("window")? })
}
