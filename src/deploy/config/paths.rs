//! Paths as compose resolves them (the default files, searched upwards; relative host paths),
//! and compose's types given back after interpolation.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::{ConfigError, DEFAULT_FILES, Files, OVERRIDE_FILES};

/// `path` with `.` and `..` resolved lexically (as Python's `os.path.abspath` does for an
/// absolute path); a relative path stays relative.
pub(super) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    if !out.has_root() {
                        out.push("..");
                    }
                } else {
                    out.pop();
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The compose files found when none is named: in `start`, else in the nearest parent that
/// has one, as compose does (compose-go `WithDefaultConfigPath`; docker-compose 1.29
/// `find_candidates_in_parent_dirs`). The folder they are in is the project directory.
pub(super) struct Found {
    /// The folder the files are in.
    pub dir: PathBuf,
    /// The default file and, when there is one, its override file, each with its text.
    pub texts: Vec<(PathBuf, String)>,
    /// What the user should hear: another default name beside the one used.
    pub notes: Vec<String>,
}

/// A file found and its text, and the other candidate names that exist beside it.
struct Candidate {
    file: (PathBuf, String),
    others: Vec<String>,
}

/// The first of `names` in `dir` with its text, and the other names that exist there too.
/// A name that cannot be looked at (missing, or a folder on the way not searchable) is not
/// there, as for `os.Stat`; one that exists but cannot be read is an error.
fn first_of(files: &impl Files, dir: &Path, names: &[&str]) -> Result<Option<Candidate>, ConfigError> {
    let mut first = None;
    let mut others = Vec::new();
    for name in names {
        let path = dir.join(name);
        match files.read(&path) {
            Ok(text) if first.is_none() => first = Some((path, text)),
            Ok(_) => others.push((*name).to_owned()),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) => {}
            Err(source) => return Err(ConfigError::Read { path, source }),
        }
    }
    Ok(first.map(|file| Candidate { file, others }))
}

/// [`Found`] from `start` upwards; `None` when no folder up to the root has a default file.
pub(super) fn find_default(files: &impl Files, start: &Path) -> Result<Option<Found>, ConfigError> {
    let mut dir = normalize(start);
    loop {
        if let Some(Candidate { file: (path, text), others }) = first_of(files, &dir, &DEFAULT_FILES)? {
            let mut notes = Vec::new();
            let used = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if !others.is_empty() {
                notes.push(format!(
                    "{} also has {}: using {} (as compose does)",
                    dir.display(),
                    others.join(", "),
                    used(&path)
                ));
            }
            let mut texts = vec![(path, text)];
            if let Some(Candidate { file: over, others }) = first_of(files, &dir, &OVERRIDE_FILES)? {
                if !others.is_empty() {
                    notes.push(format!(
                        "{} also has {}: using {} (as compose does)",
                        dir.display(),
                        others.join(", "),
                        used(&over.0)
                    ));
                }
                texts.push(over);
            }
            return Ok(Some(Found { dir, texts, notes }));
        }
        if !dir.pop() {
            return Ok(None);
        }
    }
}

/// A host path compose resolves: `~` is the home directory, `.`-relative is taken from `dir`;
/// anything else (a named volume, an absolute path) stays.
fn host_path(path: &str, dir: &Path, home: Option<&str>) -> Option<String> {
    let resolved = if path == "~" || path.starts_with("~/") {
        normalize(&Path::new(home?).join(path.trim_start_matches('~').trim_start_matches('/')))
    } else if path.starts_with('.') {
        normalize(&dir.join(path))
    } else {
        return None;
    };
    Some(resolved.display().to_string())
}

/// Makes the relative host paths of a service absolute from `dir`: bind-mount sources (short
/// and long syntax) and `env_file` entries.
pub(super) fn absolute_in(body: &mut Map<String, Value>, dir: &Path, home: Option<&str>) {
    if let Some(Value::Array(volumes)) = body.get_mut("volumes") {
        for volume in volumes {
            match volume {
                Value::String(text) => {
                    if let Some((source, rest)) = text.split_once(':')
                        && let Some(source) = host_path(source, dir, home)
                    {
                        *text = format!("{source}:{rest}");
                    }
                }
                Value::Object(long) => {
                    let bind = long.get("type").and_then(Value::as_str).is_none_or(|t| t == "bind");
                    if bind
                        && let Some(Value::String(source)) = long.get_mut("source")
                        && let Some(resolved) = host_path(source, dir, home)
                    {
                        *source = resolved;
                    }
                }
                _ => {}
            }
        }
    }
    let env_path = |path: &mut String| {
        let joined = normalize(&dir.join(home_relative(path, home)));
        *path = joined.display().to_string();
    };
    match body.get_mut("env_file") {
        Some(Value::String(path)) => env_path(path),
        Some(Value::Array(list)) => {
            for item in list {
                match item {
                    Value::String(path) => env_path(path),
                    Value::Object(long) => {
                        if let Some(Value::String(path)) = long.get_mut("path") {
                            env_path(path);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn home_relative(path: &str, home: Option<&str>) -> PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            Path::new(home).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(path),
    }
}

/// Where compose wants a number or a boolean, an interpolated string is read as one
/// (`replicas: ${REPLICAS:-2}`), as compose's loader converts them.
pub(super) fn cast(body: &mut Map<String, Value>) {
    const INTEGERS: &[&[&str]] = &[
        &["deploy", "replicas"],
        &["deploy", "update_config", "parallelism"],
        &["deploy", "rollback_config", "parallelism"],
        &["healthcheck", "retries"],
        &["x-imgctl", "port"],
        &["x-imgctl", "health", "healthy_threshold"],
        &["x-imgctl", "proxy", "verify_count"],
    ];
    const FLOATS: &[&[&str]] =
        &[&["deploy", "update_config", "max_failure_ratio"], &["deploy", "rollback_config", "max_failure_ratio"]];
    const BOOLEANS: &[&[&str]] = &[
        &["healthcheck", "disable"],
        &["read_only"],
        &["init"],
        &["privileged"],
        &["tty"],
        &["stdin_open"],
        &["x-imgctl", "auto_promote"],
    ];
    let mut convert = |path: &[&str], to: fn(&str) -> Option<Value>| {
        let Some((last, parents)) = path.split_last() else { return };
        let mut node = &mut *body;
        for key in parents {
            match node.get_mut(*key) {
                Some(Value::Object(child)) => node = child,
                _ => return,
            }
        }
        if let Some(Value::String(text)) = node.get(*last)
            && let Some(value) = to(text.trim())
        {
            node.insert((*last).to_owned(), value);
        }
    };
    for path in INTEGERS {
        convert(path, |t| t.parse::<u64>().ok().map(Value::from));
    }
    for path in FLOATS {
        convert(path, |t| t.parse::<f64>().ok().map(Value::from));
    }
    for path in BOOLEANS {
        convert(path, |t| match t.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "on" => Some(Value::Bool(true)),
            "n" | "no" | "false" | "off" => Some(Value::Bool(false)),
            _ => None,
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_resolve_as_composes_do() {
        assert_eq!(normalize(Path::new("/srv/app/./conf/../data")), Path::new("/srv/app/data"));
        assert_eq!(normalize(Path::new("/../x")), Path::new("/x"));
        assert_eq!(normalize(Path::new("a/../../b")), Path::new("../b"));
        let mut body = json!({
            "volumes": ["./conf:/conf:ro", "../shared:/shared", "data:/data", "/abs:/abs", "~/cache:/cache", "/anon",
                {"type": "bind", "source": "./x", "target": "/x"}, {"type": "volume", "source": ".v", "target": "/v"}],
            "env_file": ["app.env", {"path": "../common.env", "required": false}, "/etc/app.env"]
        });
        absolute_in(body.as_object_mut().unwrap(), Path::new("/srv/app"), Some("/home/u"));
        assert_eq!(
            body["volumes"],
            json!(["/srv/app/conf:/conf:ro", "/srv/shared:/shared", "data:/data", "/abs:/abs", "/home/u/cache:/cache", "/anon",
                {"type": "bind", "source": "/srv/app/x", "target": "/x"}, {"type": "volume", "source": ".v", "target": "/v"}])
        );
        assert_eq!(
            body["env_file"],
            json!(["/srv/app/app.env", {"path": "/srv/common.env", "required": false}, "/etc/app.env"])
        );
    }

    #[test]
    fn interpolated_numbers_and_booleans() {
        let mut body = json!({"deploy": {"replicas": "3", "update_config": {"max_failure_ratio": "0.5"}},
            "read_only": "yes", "init": "maybe", "x-imgctl": {"port": " 8080 "}, "user": "1000"});
        cast(body.as_object_mut().unwrap());
        assert_eq!(
            body,
            json!({"deploy": {"replicas": 3, "update_config": {"max_failure_ratio": 0.5}},
                "read_only": true, "init": "maybe", "x-imgctl": {"port": 8080}, "user": "1000"})
        );
    }
}
