//! Reading compose's field shapes: lists or maps, strings split as a shell would, ports,
//! volumes, healthchecks, `update_config` and durations, as `docker compose` reads them.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::model::{FailureAction, Healthcheck, Order, UpdateConfig};

pub(super) fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// compose's list (`["A=1"]`) or map (`{A: 1}`) form, as `KEY=VALUE` strings.
pub(super) fn key_values(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(list) => Ok(list.iter().map(scalar).collect()),
        Value::Object(map) => {
            Ok(map.iter().map(|(k, v)| if v.is_null() { k.clone() } else { format!("{k}={}", scalar(v)) }).collect())
        }
        _ => Err("a list of KEY=VALUE or a map".into()),
    }
}

/// compose's list form, or a string split as a shell would (quotes, no expansion).
pub(super) fn words(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(list) => Ok(list.iter().map(scalar).collect()),
        Value::String(s) => split_shell_words(s),
        _ => Err("a list or a string".into()),
    }
}

pub(super) fn split_shell_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_default();
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unclosed '".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_default();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => w.extend(chars.next()),
                        Some(c) => w.push(c),
                        None => return Err("unclosed \"".into()),
                    }
                }
            }
            '\\' => word.get_or_insert_default().extend(chars.next()),
            c => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

pub(super) fn volumes(value: &Value) -> Result<Vec<String>, String> {
    let Value::Array(list) = value else { return Err("a list".into()) };
    list.iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Object(m) => {
                let source = m.get("source").map(scalar).ok_or("a long-syntax volume needs source")?;
                let target = m.get("target").map(scalar).ok_or("a long-syntax volume needs target")?;
                let ro = m.get("read_only").and_then(Value::as_bool).unwrap_or(false);
                Ok(format!("{source}:{target}{}", if ro { ":ro" } else { "" }))
            }
            _ => Err("each volume is a string or a map".into()),
        })
        .collect()
}

/// A bind source relative to the compose file (`./data:/data`) made absolute, as compose does.
pub(super) fn relative_volume(volume: &str, base: &Path) -> String {
    match volume.split_once(':') {
        Some((source, rest)) if source.starts_with("./") || source.starts_with("../") || source == "." => {
            let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
            format!("{}:{rest}", base.join(source).display())
        }
        _ => volume.to_owned(),
    }
}

/// The container port from compose `expose`, else the container side of `ports`.
pub(super) fn port_from_service(body: &Value) -> Result<Option<u16>, String> {
    let first = |name: &str| body.get(name).and_then(Value::as_array).and_then(|l| l.first()).cloned();
    let parse_port = |text: &str| -> Result<u16, String> {
        let text = text.split('/').next().unwrap_or(text);
        let container = text.rsplit(':').next().unwrap_or(text);
        let container = container.split('-').next().unwrap_or(container);
        container.parse().map_err(|_| format!("cannot read a container port from {text:?}"))
    };
    if let Some(expose) = first("expose") {
        return parse_port(&scalar(&expose)).map(Some);
    }
    match first("ports") {
        None => Ok(None),
        Some(Value::Object(m)) => m
            .get("target")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .map(Some)
            .ok_or_else(|| "ports[0].target is not a port".into()),
        Some(v) => parse_port(&scalar(&v)).map(Some),
    }
}

pub(super) fn healthcheck(value: &Value) -> Result<Option<Healthcheck>, String> {
    if value.get("disable").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let test = match value.get("test") {
        Some(Value::String(s)) => vec!["CMD-SHELL".to_owned(), s.clone()],
        Some(Value::Array(list)) => list.iter().map(scalar).collect(),
        None => return Err("needs test".into()),
        Some(_) => return Err("test is a list or a string".into()),
    };
    if test.first().map(String::as_str) == Some("NONE") {
        return Ok(None);
    }
    let duration =
        |key: &str| value.get(key).map(|v| parse_duration(&scalar(v)).map_err(|e| format!("{key}: {e}"))).transpose();
    Ok(Some(Healthcheck {
        test,
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        retries: value.get("retries").and_then(Value::as_u64).map(|n| n as u32),
        start_period: duration("start_period")?,
    }))
}

pub(super) fn update_config(value: &Value) -> Result<UpdateConfig, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        parallelism: Option<u32>,
        delay: Option<Value>,
        monitor: Option<Value>,
        failure_action: Option<FailureAction>,
        order: Option<Order>,
        max_failure_ratio: Option<f64>,
    }
    let raw: Raw = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let defaults = UpdateConfig::default();
    let duration =
        |v: Option<Value>, default| v.map(|v| parse_duration(&scalar(&v))).transpose().map(|d| d.unwrap_or(default));
    let ratio = raw.max_failure_ratio.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&ratio) {
        return Err("max_failure_ratio is between 0 and 1".into());
    }
    Ok(UpdateConfig {
        parallelism: raw.parallelism.unwrap_or(defaults.parallelism),
        delay: duration(raw.delay, defaults.delay).map_err(|e| format!("delay: {e}"))?,
        monitor: duration(raw.monitor, defaults.monitor).map_err(|e| format!("monitor: {e}"))?,
        failure_action: raw.failure_action.unwrap_or_default(),
        order: raw.order.unwrap_or_default(),
        max_failure_ratio: ratio,
    })
}

/// Parses a compose duration: `1m30s`, `500ms`, `2h`, `10s`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return if seconds >= 0.0 {
            Ok(Duration::from_secs_f64(seconds))
        } else {
            Err(format!("{text:?} is negative"))
        };
    }
    let bad = || format!("{text:?} is not a duration (like 500ms, 10s, 1m30s, 2h)");
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(number * scale);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("10s", 10_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("2h", 7_200_000),
            ("1.5s", 1_500),
            ("3", 3_000),
            ("0", 0),
        ];
        for (text, ms) in ok {
            assert_eq!(parse_duration(text).unwrap(), Duration::from_millis(ms), "{text}");
        }
        for text in ["", "s", "10x", "-1", "1m30"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn ports_from_compose() {
        let port = |yaml: &str| port_from_service(&serde_norway::from_str(yaml).unwrap());
        assert_eq!(port("{ports: ['127.0.0.1:8080:80/tcp']}").unwrap(), Some(80));
        assert_eq!(port("{ports: ['8080:80']}").unwrap(), Some(80));
        assert_eq!(port("{ports: [{target: 81, published: 8081}]}").unwrap(), Some(81));
        assert_eq!(port("{expose: ['9000'], ports: ['1:2']}").unwrap(), Some(9000));
        assert_eq!(port("{image: x}").unwrap(), None);
        assert!(port("{ports: ['abc']}").is_err());
    }

    #[test]
    fn shell_words() {
        assert_eq!(split_shell_words(r#"a "b c" 'd e' f\ g"#).unwrap(), ["a", "b c", "d e", "f g"]);
        assert!(split_shell_words("a 'b").is_err());
    }
}
