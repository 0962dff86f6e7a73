//! The value shapes compose's runtime keys take, read as compose reads them: numbers written
//! as strings (what interpolation gives), booleans as YAML 1.1 spells them, one string or a
//! list.

use serde_json::Value;

pub(super) fn at(key: &str, message: impl std::fmt::Display) -> String {
    format!("{key}: {message}")
}

pub(super) fn integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not a whole number")),
        Value::String(s) => s.trim().parse().map_err(|_| format!("{s:?} is not a whole number")),
        _ => Err("a whole number".into()),
    }
}

/// `true`/`false`, or the strings compose reads as booleans.
pub(super) fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" => Ok(true),
            "false" | "no" | "n" | "off" => Ok(false),
            _ => Err(format!("{s:?} is not true or false")),
        },
        _ => Err("true or false".into()),
    }
}

pub(super) fn plain_string(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err("a string".into()),
    }
}

/// A list of strings (numbers read as their text).
pub(super) fn list(value: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else { return Err("a list of strings".into()) };
    items.iter().map(|v| plain_string(v).map_err(|_| "a list of strings".to_owned())).collect()
}

/// One string or a list of them.
pub(super) fn string_or_list(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(_) => list(value),
        other => plain_string(other).map(|s| vec![s]).map_err(|_| "a string or a list of strings".into()),
    }
}

/// A name docker keeps as given (hostname, domainname): no whitespace or control characters.
pub(super) fn name_like(key: &str, text: String) -> Result<String, String> {
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(at(key, format!("{text:?} is not a name")));
    }
    Ok(text)
}
