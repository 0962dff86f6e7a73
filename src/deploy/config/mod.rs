//! Compose files loaded as compose loads them, pure: which files (`-f` in order, else
//! `COMPOSE_FILE`, else `compose.yaml`... and its override file), the environment (the
//! process's over `--env-file` or the project's `.env`), `${VAR}` interpolation of every
//! string, YAML anchors and merge keys, `extends`, the files merged in order by compose's
//! rules, and each service's `env_file`. Nothing here reads the process environment or the
//! disk by itself: the caller hands over the environment and a [`Files`] to read through, so
//! every rule is unit-tested with tables.
//!
//! The result is one service's resolved compose body and its merged `x-imgctl` block, which
//! [`crate::deploy::spec`] turns into a workload and deploy settings. Every key of that body
//! is applied, ignored with a note, or refused by name ([`keys`]).

mod env_file;
mod interpolate;
pub mod keys;
mod merge;
mod paths;
pub mod project;
mod service;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use env_file::EnvFileError;
pub use interpolate::InterpolationError;
pub use project::{Project, ProjectNameError, ProjectSource};

use crate::deploy::names;
use interpolate::Variables;

/// The file names tried, in order, when no compose file is given, in the working directory
/// and then in each parent (compose v2's order, compose-go `DefaultFileNames`).
pub const DEFAULT_FILES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"];

/// The override files read after a default file, the first that exists beside it (compose-go
/// `DefaultOverrideFileNames`).
pub const OVERRIDE_FILES: [&str; 4] =
    ["compose.override.yml", "compose.override.yaml", "docker-compose.override.yml", "docker-compose.override.yaml"];

/// How compose files are read: the disk, or a table in tests.
pub trait Files {
    /// The file's text; an error of kind `NotFound` when there is none.
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// The file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl Files for Disk {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

impl Files for BTreeMap<PathBuf, String> {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.get(path).cloned().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

/// What to load, as the command line and the process give it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `-f` files, in order (relative to `cwd`); empty: `COMPOSE_FILE`, else the first
    /// default name in `cwd` or its nearest parent that has one, and its override file.
    pub files: Vec<PathBuf>,
    /// `--env-file` files, in order, later ones winning (relative to `cwd`); empty: the
    /// project directory's `.env`, if there is one.
    pub env_files: Vec<PathBuf>,
    /// The process environment: it wins over the env files.
    pub environment: BTreeMap<String, String>,
    /// The directory relative paths on the command line are taken from.
    pub cwd: PathBuf,
    /// `--stack NAME`: the service is one of that stack's, as `x-imgctl.stack: NAME` says.
    pub stack: Option<String>,
    /// `-p/--project-name`: the compose project's name (else derived as compose does).
    pub project_name: Option<String>,
}

/// A service as compose resolves it.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The compose files, in the order merged.
    pub files: Vec<PathBuf>,
    /// The env files read for interpolation: the `--env-file`s, else the `.env` files found.
    pub env_files: Vec<PathBuf>,
    /// The project directory (the first file's): relative paths in every file are taken
    /// from it, but in a file another service `extends`, from that file's own.
    pub dir: PathBuf,
    /// The service's name.
    pub service: String,
    /// The compose project's name, as compose derives it.
    pub project: Project,
    /// Its resolved body: files merged, `extends` applied, `env_file` read into
    /// `environment` (a mapping; `null` for a variable that is set nowhere), relative host
    /// paths made absolute.
    pub body: Map<String, Value>,
    /// `x-imgctl` at the top level with the service's own block merged over it.
    pub extension: Value,
    /// What the user should hear: unset variables, keys accepted without effect.
    pub notes: Vec<String>,
    /// The top-level `secrets:` and `configs:` of every file, merged by name (later files
    /// win, key by key): `{"secrets": {...}, "configs": {...}}`.
    pub definitions: Value,
}

/// A compose project that cannot give the service.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No compose file was given and none of the default names exists.
    #[error(
        "no compose file here or in a parent directory (looked for {}); name one with -f",
        DEFAULT_FILES.join(", ")
    )]
    NoComposeFile,
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not YAML, or not shaped as compose needs.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `${VAR:?message}` with VAR unset, or a `$` that starts no substitution.
    #[error("{path}: {key}: {problem}")]
    Interpolation {
        /// The file.
        path: PathBuf,
        /// Where in it (`services.web.image`).
        key: String,
        /// What failed (said in the message, so not a `source`).
        problem: InterpolationError,
    },
    /// An env file that is not one.
    #[error("{path}: {problem}")]
    EnvFile {
        /// The env file.
        path: PathBuf,
        /// What is wrong, with its line.
        problem: EnvFileError,
    },
    /// A service name compose would refuse: container, swarm service and upstream names are
    /// made of it, and it goes into nginx's configuration.
    #[error(
        "{path}: the service name is {service:?}; it goes into nginx's configuration, so it must be {}",
        names::SERVICE_RULE
    )]
    ServiceName {
        /// The (first) file.
        path: PathBuf,
        /// The name refused.
        service: String,
    },
    /// The service is in none of the files.
    #[error("{path} has no service {service:?} (it has: {known})")]
    NoSuchService {
        /// The (first) file.
        path: PathBuf,
        /// The service asked for.
        service: String,
        /// The services the files have.
        known: String,
    },
    /// `extends` names a service that is not there, or runs in a circle.
    #[error("{path}: services.{service}.extends: {message}")]
    Extends {
        /// The file.
        path: PathBuf,
        /// The extending service.
        service: String,
        /// What is wrong.
        message: String,
    },
    /// The project's name cannot be one compose accepts.
    #[error("{path}: {problem}")]
    ProjectName {
        /// The (first) file.
        path: PathBuf,
        /// What is wrong.
        problem: ProjectNameError,
    },
    /// A key imgctl refuses, with why.
    #[error("{path}: services.{service}.{key}: {reason}")]
    Refused {
        /// The first compose file.
        path: PathBuf,
        /// The service.
        service: String,
        /// The key (`container_name`, `deploy.mode`).
        key: String,
        /// Why, and what to do.
        reason: String,
    },
}

/// Loads `service` as `request` says, reading through `files`.
pub fn load(request: &Request, files: &impl Files, service: &str) -> Result<Loaded, ConfigError> {
    let process = &request.environment;
    let absolute = |p: &Path| paths::normalize(&request.cwd.join(p));
    let separator = |env: &BTreeMap<String, String>| {
        env.get("COMPOSE_PATH_SEPARATOR").filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| ":".into())
    };
    let from_variable = |env: &BTreeMap<String, String>| -> Vec<PathBuf> {
        let sep = separator(env);
        env.get("COMPOSE_FILE")
            .map(|list| list.split(sep.as_str()).filter(|p| !p.is_empty()).map(|p| absolute(Path::new(p))).collect())
            .unwrap_or_default()
    };
    // The project directory is where the first file is, as far as the command line and the
    // process tell; it is where `.env` is read from.
    let mut chosen: Vec<PathBuf> = request.files.iter().map(|p| absolute(p)).collect();
    if chosen.is_empty() {
        chosen = from_variable(process);
    }
    let project_dir = chosen.first().and_then(|f| f.parent()).map(Path::to_path_buf).unwrap_or(request.cwd.clone());

    let mut variables = BTreeMap::new();
    let mut env_files = Vec::new();
    if request.env_files.is_empty() {
        dotenv(files, &project_dir, process, &mut variables, &mut env_files)?;
    } else {
        for path in &request.env_files {
            let path = absolute(path);
            let text = files.read(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            read_env_file(&path, &text, process, &mut variables)?;
            env_files.push(path);
        }
    }
    variables.extend(process.iter().map(|(k, v)| (k.clone(), v.clone())));

    // `COMPOSE_FILE` may come from `.env` too.
    if chosen.is_empty() {
        chosen = from_variable(&variables);
    }
    let mut texts = Vec::new();
    let mut notes = Vec::new();
    if chosen.is_empty() {
        let found = paths::find_default(files, &project_dir)?.ok_or(ConfigError::NoComposeFile)?;
        // Found in a parent: compose v2 then reads that project directory's `.env` too, for
        // what is still unset (compose-go `WithDotEnv`, applied again after the search).
        if found.dir != paths::normalize(&project_dir) && request.env_files.is_empty() {
            let mut more = BTreeMap::new();
            dotenv(files, &found.dir, process, &mut more, &mut env_files)?;
            for (name, value) in more {
                variables.entry(name).or_insert(value);
            }
        }
        texts = found.texts;
        notes = found.notes;
    } else {
        for path in chosen {
            let text = files.read(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            texts.push((path, text));
        }
    }
    if !names::is_service_name(service) {
        return Err(ConfigError::ServiceName { path: texts[0].0.clone(), service: service.into() });
    }
    let dir = texts[0].0.parent().map(Path::to_path_buf).unwrap_or(project_dir);

    let mut vars = Variables::new(&variables);
    let mut documents = Vec::new();
    for (path, text) in &texts {
        documents.push((path.clone(), parse_document(path, text, &mut vars)?));
    }
    let named: Vec<(PathBuf, Option<String>)> = documents
        .iter()
        .map(|(path, document)| (path.clone(), document.get("name").and_then(Value::as_str).map(str::to_owned)))
        .collect();
    let project = project::resolve(request.project_name.as_deref(), process, &variables, &named, &dir)
        .map_err(|problem| ConfigError::ProjectName { path: texts[0].0.clone(), problem })?;
    notes.extend(
        vars.unset.iter().map(|name| format!("the variable {name} is not set: an empty string is substituted")),
    );

    let context = service::Context { files, variables: &variables, project_dir: &dir };
    let mut body: Option<Map<String, Value>> = None;
    let mut extension = Value::Null;
    let mut definitions = serde_json::json!({});
    for (path, document) in &documents {
        if let Some(top) = document.get("x-imgctl") {
            merge::deep(&mut extension, top.clone());
        }
        for key in ["secrets", "configs"] {
            if let Some(defined) = document.get(key).filter(|d| !d.is_null()) {
                merge::deep(&mut definitions, serde_json::json!({ key: defined }));
            }
        }
        let services = document.get("services").and_then(Value::as_object);
        if services.is_some_and(|s| s.contains_key(service)) {
            let resolved = service::extended(&context, path, &dir, document, service, &mut Vec::new(), &mut notes)?;
            match &mut body {
                None => body = Some(resolved),
                Some(base) => merge::service(base, resolved),
            }
        }
    }
    let Some(mut body) = body else {
        let mut known: Vec<String> = Vec::new();
        for (_, document) in &documents {
            for name in document.get("services").and_then(Value::as_object).into_iter().flat_map(|s| s.keys()) {
                if !known.contains(name) {
                    known.push(name.clone());
                }
            }
        }
        return Err(ConfigError::NoSuchService {
            path: texts[0].0.clone(),
            service: service.into(),
            known: known.join(", "),
        });
    };
    paths::absolute_in(&mut body, &dir, variables.get("HOME").map(String::as_str));
    service::environment(&context, &mut body).map_err(|e| e.at(&texts[0].0, service))?;
    if let Some(own) = body.get("x-imgctl") {
        merge::deep(&mut extension, own.clone());
    }
    if let Some(stack) = &request.stack {
        merge::deep(&mut extension, serde_json::json!({ "stack": stack }));
    }
    // A stack's service keeps the spec `docker stack deploy` gave it (imgctl pins its image),
    // so the stack file's keys imgctl would refuse for a service of its own are only noted.
    let in_stack = extension.get("stack").is_some_and(|stack| !stack.is_null());
    if in_stack && let Value::Object(settings) = &mut extension {
        // A stack's service is a swarm service that swarm updates itself: say so once.
        settings.entry("target").or_insert_with(|| "swarm".into());
        settings.entry("strategy").or_insert_with(|| "rolling".into());
    }
    service::check(&body, in_stack, &mut notes).map_err(|e| e.at(&texts[0].0, service))?;
    Ok(Loaded {
        files: texts.into_iter().map(|(p, _)| p).collect(),
        env_files,
        dir,
        service: service.into(),
        project,
        body,
        extension,
        notes,
        definitions,
    })
}

/// Reads `dir`'s `.env`, when there is one, into `variables`, and lists it in `read`.
fn dotenv(
    files: &impl Files,
    dir: &Path,
    process: &BTreeMap<String, String>,
    variables: &mut BTreeMap<String, String>,
    read: &mut Vec<PathBuf>,
) -> Result<(), ConfigError> {
    let path = dir.join(".env");
    match files.read(&path) {
        Ok(text) => {
            read_env_file(&path, &text, process, variables)?;
            read.push(path);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// Reads an env file into `variables` (later files win), interpolated against the process
/// environment.
fn read_env_file(
    path: &Path,
    text: &str,
    process: &BTreeMap<String, String>,
    variables: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let bindings =
        env_file::parse(text, process).map_err(|problem| ConfigError::EnvFile { path: path.into(), problem })?;
    for (key, value) in bindings {
        // `KEY` alone sets nothing here: the process environment is laid over it anyway.
        if let Some(value) = value {
            variables.insert(key, value);
        }
    }
    Ok(())
}

/// One compose file: YAML (anchors, merge keys), interpolated, with compose's types given
/// back to interpolated numbers and booleans.
fn parse_document(path: &Path, text: &str, vars: &mut Variables) -> Result<Value, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { path: path.into(), message };
    let mut document = yaml::parse(text).map_err(invalid)?;
    if !document.is_object() {
        return Err(invalid("not a compose file: the top level is not a mapping".into()));
    }
    interpolate_all(&mut document, &mut String::new(), vars).map_err(|(key, problem)| ConfigError::Interpolation {
        path: path.into(),
        key,
        problem,
    })?;
    match document.get("services") {
        None | Some(Value::Object(_)) => {}
        Some(_) => return Err(invalid("services is not a mapping".into())),
    }
    for key in document.as_object().into_iter().flat_map(|top| top.keys()) {
        match key.as_str() {
            // `version` is informative (compose v2 ignores it; 1.29 reads any 2.x/3.x as the
            // same specification); `name` is the project's name.
            "version" | "name" | "services" | "networks" | "volumes" | "secrets" | "configs" => {}
            "include" => return Err(invalid("include: not yet supported: name each file with -f".into())),
            key if key.starts_with("x-") => {}
            key => {
                const TOP: [&str; 7] = ["version", "name", "services", "networks", "volumes", "secrets", "configs"];
                let near = TOP.iter().find(|k| strsim::damerau_levenshtein(key, k) <= 2);
                let hint = near.map(|k| format!(" (did you mean {k}?)")).unwrap_or_default();
                return Err(invalid(format!("{key}: not a compose top-level key{hint}")));
            }
        }
    }
    if let Some(top) = document.as_object_mut() {
        // The top-level `x-imgctl` (the service-level paths cast finds nothing else there).
        paths::cast(top);
    }
    if let Some(Value::Object(services)) = document.get_mut("services") {
        for (name, body) in services.iter_mut() {
            match body {
                Value::Object(body) => paths::cast(body),
                Value::Null => *body = Value::Object(Map::new()),
                _ => return Err(invalid(format!("services.{name} is not a mapping"))),
            }
        }
    }
    Ok(document)
}

/// Interpolates every string of `value` (not the keys, as compose does); the error names the
/// key path.
fn interpolate_all(
    value: &mut Value,
    at: &mut String,
    vars: &mut Variables,
) -> Result<(), (String, InterpolationError)> {
    match value {
        Value::String(text) => {
            *text = interpolate::interpolate(text, vars).map_err(|e| (at.clone(), e))?;
        }
        Value::Array(list) => {
            for (i, item) in list.iter_mut().enumerate() {
                let len = at.len();
                at.push_str(&format!("[{i}]"));
                interpolate_all(item, at, vars)?;
                at.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let len = at.len();
                if !at.is_empty() {
                    at.push('.');
                }
                at.push_str(key);
                interpolate_all(item, at, vars)?;
                at.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
