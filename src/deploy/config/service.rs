//! One service of a loaded project: `extends` followed, `env_file` read into `environment`,
//! and every key checked against [`keys`](super::keys).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::keys::{self, Treatment};
use super::{ConfigError, Files, interpolate::Variables, merge, paths};
use crate::deploy::compose::scalar;

/// What resolving a service reads.
pub(super) struct Context<'a, F> {
    /// Where files are read.
    pub files: &'a F,
    /// The interpolation environment (the process's over the env files).
    pub variables: &'a BTreeMap<String, String>,
    /// The project directory.
    pub project_dir: &'a Path,
}

/// A problem found in the merged service, placed in its file by [`Problem::at`].
#[derive(Debug)]
pub(super) enum Problem {
    Refused { key: String, reason: String },
    Read { path: PathBuf, source: std::io::Error },
    EnvFile { path: PathBuf, source: super::EnvFileError },
    Invalid(String),
}

impl Problem {
    pub fn at(self, path: &Path, service: &str) -> ConfigError {
        match self {
            Self::Refused { key, reason } => {
                ConfigError::Refused { path: path.into(), service: service.into(), key, reason }
            }
            Self::Read { path, source } => ConfigError::Read { path, source },
            Self::EnvFile { path, source } => ConfigError::EnvFile { path, problem: source },
            Self::Invalid(message) => ConfigError::Invalid { path: path.into(), message },
        }
    }
}

/// Service `name` of `document` (the file at `path`, whose relative paths are taken from
/// `dir`) with its `extends` chain applied: the service it extends first, its own keys merged
/// over it by compose's rules. A service from another file comes with its relative paths
/// made absolute from that file's folder.
pub(super) fn extended<F: Files>(
    context: &Context<F>,
    path: &Path,
    dir: &Path,
    document: &Value,
    name: &str,
    chain: &mut Vec<(PathBuf, String)>,
    notes: &mut Vec<String>,
) -> Result<Map<String, Value>, ConfigError> {
    let fail = |message: String| ConfigError::Extends { path: path.into(), service: name.into(), message };
    let Some(Value::Object(body)) = document.get("services").and_then(|s| s.get(name)) else {
        let last = chain.last().map(|(_, s)| s.clone()).unwrap_or_else(|| name.to_owned());
        return Err(ConfigError::Extends {
            path: path.into(),
            service: last,
            message: format!("there is no service {name:?} in {}", path.display()),
        });
    };
    let mut body = body.clone();
    let signature = (path.to_path_buf(), name.to_owned());
    if chain.contains(&signature) {
        let circle: Vec<String> = chain.iter().chain([&signature]).map(|(_, s)| s.clone()).collect();
        return Err(fail(format!("extends runs in a circle: {}", circle.join(" -> "))));
    }
    chain.push(signature);
    let Some(extends) = body.remove("extends") else { return Ok(body) };
    let (file, base) = match &extends {
        Value::String(service) => (None, service.clone()),
        Value::Object(long) => {
            let service = long.get("service").and_then(Value::as_str).ok_or_else(|| fail("needs service".into()))?;
            let file =
                long.get("file").map(|f| f.as_str().map(str::to_owned).ok_or_else(|| fail("file is a path".into())));
            (file.transpose()?, service.to_owned())
        }
        _ => return Err(fail("a service name, or {service, file}".into())),
    };
    let mut base_body = match file {
        None => extended(context, path, dir, document, &base, chain, notes)?,
        Some(file) => {
            let base_path = paths::normalize(&dir.join(file));
            let base_dir = base_path.parent().map(Path::to_path_buf).unwrap_or_default();
            let text = context
                .files
                .read(&base_path)
                .map_err(|source| ConfigError::Read { path: base_path.clone(), source })?;
            let mut vars = Variables::new(context.variables);
            let base_document = super::parse_document(&base_path, &text, &mut vars)?;
            for name in vars.unset {
                let note = format!("the variable {name} is not set: an empty string is substituted");
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
            let mut body = extended(context, &base_path, &base_dir, &base_document, &base, chain, notes)?;
            paths::absolute_in(&mut body, &base_dir, context.variables.get("HOME").map(String::as_str));
            body
        }
    };
    merge::service(&mut base_body, body);
    Ok(base_body)
}

/// Reads the service's `env_file` entries in order (later ones win) and lays `environment`
/// over them; a variable given without a value takes it from the interpolation environment,
/// or stays `null` (set nowhere). Values become strings, as compose passes them.
pub(super) fn environment<F: Files>(context: &Context<F>, body: &mut Map<String, Value>) -> Result<(), Problem> {
    let mut environment = Map::new();
    let entries = match body.remove("env_file") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(path)) => vec![(path, true)],
        Some(Value::Array(list)) => {
            list.into_iter()
                .map(|item| match item {
                    Value::String(path) => Ok((path, true)),
                    Value::Object(long) => {
                        let path = long.get("path").and_then(Value::as_str).ok_or_else(|| {
                            Problem::Invalid("env_file: each entry is a path or {path, required}".into())
                        })?;
                        let required = match long.get("required") {
                            None => true,
                            Some(Value::Bool(b)) => *b,
                            Some(_) => return Err(Problem::Invalid("env_file: required is true or false".into())),
                        };
                        Ok((path.to_owned(), required))
                    }
                    _ => Err(Problem::Invalid("env_file: each entry is a path or {path, required}".into())),
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(Problem::Invalid("env_file: a path or a list".into())),
    };
    let had_environment = body.contains_key("environment") || !entries.is_empty();
    for (path, required) in entries {
        let path = context.project_dir.join(path);
        let text = match context.files.read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
            Err(source) => return Err(Problem::Read { path, source }),
        };
        let bindings = super::env_file::parse(&text, context.variables)
            .map_err(|source| Problem::EnvFile { path: path.clone(), source })?;
        for (key, value) in bindings {
            environment.insert(key, value.map(Value::String).unwrap_or(Value::Null));
        }
    }
    match merge::as_mapping(body.remove("environment").unwrap_or(Value::Null), '=') {
        Value::Object(own) => environment.extend(own),
        Value::Null => {}
        _ => return Err(Problem::Invalid("environment: a list of KEY=VALUE or a mapping".into())),
    }
    for (key, value) in environment.iter_mut() {
        *value = match std::mem::take(value) {
            Value::Null => context.variables.get(key).cloned().map(Value::String).unwrap_or(Value::Null),
            Value::String(s) => Value::String(s),
            other => Value::String(scalar(&other)),
        };
    }
    if had_environment {
        body.insert("environment".into(), Value::Object(environment));
    }
    Ok(())
}

/// Refuses the first key imgctl refuses or does not know, naming it; notes the keys
/// accepted without effect.
/// `in_stack`: the service is a stack's, whose live spec imgctl keeps: a key imgctl would
/// refuse is noted instead (keys compose does not know are still refused).
pub(super) fn check(body: &Map<String, Value>, in_stack: bool, notes: &mut Vec<String>) -> Result<(), Problem> {
    for (key, value) in body {
        let treatment = match (key.as_str(), value) {
            // compose's default network mode: nothing to refuse.
            ("network_mode", Value::String(mode)) if mode == "bridge" => {
                Some(Treatment::Ignored("bridge is docker's default network mode"))
            }
            _ => keys::treatment(key),
        };
        judge(key, stack_keeps(treatment, in_stack), keys::SERVICE_KEYS, notes, !key.starts_with("x-"))?;
    }
    port_notes(body, notes);
    if let Some(Value::Object(healthcheck)) = body.get("healthcheck") {
        for key in healthcheck.keys() {
            judge(
                &format!("healthcheck.{key}"),
                stack_keeps(keys::healthcheck_treatment(key), in_stack),
                keys::HEALTHCHECK_KEYS,
                notes,
                true,
            )?;
        }
    }
    if let Some(deploy) = body.get("deploy") {
        let Value::Object(deploy) = deploy else { return Err(Problem::Invalid("deploy: a mapping".into())) };
        for key in deploy.keys() {
            let treatment = match (key.as_str(), deploy.get(key)) {
                ("mode", Some(Value::String(mode))) if mode == "replicated" => {
                    Some(Treatment::Ignored("replicated is the default mode"))
                }
                _ => keys::deploy_treatment(key),
            };
            judge(&format!("deploy.{key}"), stack_keeps(treatment, in_stack), keys::DEPLOY_KEYS, notes, true)?;
        }
    }
    Ok(())
}

/// imgctl serves one port per replica (the first `expose`, else the first `ports`), published
/// where the proxy reaches it at a host port Docker picks: a fixed host port would clash
/// between the two colors, and the other ports are not published. Said, not dropped silently.
fn port_notes(body: &Map<String, Value>, notes: &mut Vec<String>) {
    let list = |key: &str| body.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let (expose, ports) = (list("expose"), list("ports"));
    let fixed: Vec<String> = ports
        .iter()
        .filter_map(|p| match p {
            Value::Object(long) => long
                .get("published")
                .map(|host| format!("{}:{}", scalar(host), long.get("target").map(scalar).unwrap_or_default())),
            other => Some(scalar(other)).filter(|text| text.contains(':')),
        })
        .collect();
    if !fixed.is_empty() {
        notes.push(format!(
            "ports: the host side of {} is not published: each replica's port is published at a host port Docker picks (the two colors would clash on a fixed one), and the proxy reaches it there",
            fixed.join(", ")
        ));
    }
    let served = expose.len().max(usize::from(expose.is_empty()) * ports.len());
    if served > 1 {
        let key = if expose.is_empty() { "ports" } else { "expose" };
        notes.push(format!("{key}: only the first port is served through imgctl (set x-imgctl.port to choose); the others are not published"));
    }
}

/// For a stack's service, a refusal becomes a note: the key stays as the stack has it.
fn stack_keeps(treatment: Option<Treatment>, in_stack: bool) -> Option<Treatment> {
    match treatment {
        Some(Treatment::Refused(_)) if in_stack => Some(Treatment::Ignored(
            "a stack's service keeps what `docker stack deploy` gave it; imgctl pins its image only",
        )),
        other => other,
    }
}

fn judge(
    key: &str,
    treatment: Option<Treatment>,
    table: &[(&'static str, Treatment)],
    notes: &mut Vec<String>,
    say: bool,
) -> Result<(), Problem> {
    match treatment {
        Some(Treatment::Applied | Treatment::Loader | Treatment::Runtime) => Ok(()),
        Some(Treatment::Ignored(why)) => {
            if say {
                notes.push(format!("{key} is ignored ({why})"));
            }
            Ok(())
        }
        Some(Treatment::Refused(reason)) => Err(Problem::Refused { key: key.into(), reason: reason.into() }),
        None => {
            let leaf = key.rsplit('.').next().unwrap_or(key);
            let hint = keys::nearest(table, leaf).map(|near| format!(" (did you mean {near}?)")).unwrap_or_default();
            Err(Problem::Refused { key: key.into(), reason: format!("not a compose key{hint}") })
        }
    }
}
