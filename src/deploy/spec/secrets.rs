//! compose `secrets:` and `configs:`: what a service mounts (the service's list, short or long
//! form) and where each comes from (the top-level `secrets:`/`configs:`: a file, an external
//! object, a variable of imgctl's environment, or inline content for a config).
//!
//! Only what is read here: no file is opened and no variable is looked up, so nothing a secret
//! holds can reach an error message. Paths are taken from the compose file's folder.
//!
//! Where a mount lands, as compose and swarm place them: a secret's relative target under
//! `/run/secrets/`, a config's relative target under `/`; an absolute target as written.

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

/// Secrets or configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `secrets:`
    Secret,
    /// `configs:`
    Config,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Self::Secret => "secrets",
            Self::Config => "configs",
        }
    }
}

/// Where a secret's or config's content comes from (top-level `secrets.NAME` / `configs.NAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `file:`, resolved against the compose file's folder.
    File(PathBuf),
    /// `external: true`: an object that exists already (on swarm); `name:` or the key.
    External(String),
    /// `environment: VAR`: the value of a variable of imgctl's environment.
    Environment(String),
    /// `content:` (configs only): the text itself, as the compose file holds it.
    Content(String),
}

/// One secret or config mounted into the service's containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMount {
    /// Secret or config.
    pub kind: Kind,
    /// The top-level key (`source:`).
    pub source: String,
    /// `name:` at the top level (the object's name on swarm), else the key.
    pub name: String,
    /// Where it comes from.
    pub origin: Origin,
    /// The path inside the container.
    pub target: String,
    /// `uid:` (a number, as a string as compose writes it).
    pub uid: Option<String>,
    /// `gid:`
    pub gid: Option<String>,
    /// `mode:` (default: 0444, as compose and swarm give).
    pub mode: u32,
}

/// The secrets and configs of one service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceFiles {
    /// `secrets:`
    pub secrets: Vec<FileMount>,
    /// `configs:`
    pub configs: Vec<FileMount>,
}

/// Reads the service's `secrets:` and `configs:` (`body`: the service, `top`: the whole
/// compose document, `base`: the compose file's folder). Errors name the key.
pub(crate) fn secrets(body: &Value, top: &Value, base: &Path) -> Result<ServiceFiles, String> {
    Ok(ServiceFiles {
        secrets: mounts(Kind::Secret, body, top, base)?,
        configs: mounts(Kind::Config, body, top, base)?,
    })
}

fn mounts(kind: Kind, body: &Value, top: &Value, base: &Path) -> Result<Vec<FileMount>, String> {
    let key = kind.key();
    let list = match body.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(format!("{key}: a list of names or of {{source, target, uid, gid, mode}}")),
    };
    let mut found: Vec<FileMount> = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let at = format!("{key}[{i}]");
        let mount = mount(kind, entry, top, base).map_err(|why| format!("{at}: {why}"))?;
        if found.iter().any(|m| m.target == mount.target) {
            return Err(format!("{at}: a second mount at {}", mount.target));
        }
        found.push(mount);
    }
    Ok(found)
}

fn mount(kind: Kind, entry: &Value, top: &Value, base: &Path) -> Result<FileMount, String> {
    let (source, target, uid, gid, mode) = match entry {
        Value::String(source) => (source.clone(), None, None, None, None),
        Value::Object(long) => {
            if let Some(unknown) =
                long.keys().find(|k| !["source", "target", "uid", "gid", "mode"].contains(&k.as_str()))
            {
                return Err(format!("{unknown} is not a key of a {} mount", kind.key()));
            }
            let text = |name: &str| -> Result<Option<String>, String> {
                match long.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(Value::Number(n)) => Ok(Some(n.to_string())),
                    Some(_) => Err(format!("{name}: a string")),
                }
            };
            let source = text("source")?.ok_or("source is required")?;
            (source, text("target")?, text("uid")?, text("gid")?, long.get("mode").filter(|m| !m.is_null()))
        }
        _ => return Err("a name, or {source, target, uid, gid, mode}".into()),
    };
    let defined = top.get(kind.key()).and_then(|d| d.get(&source)).ok_or_else(|| {
        format!("{source:?} is not defined in the top-level {}: (add {source}: {{file: ...}} there)", kind.key())
    })?;
    let (name, origin) = origin(kind, &source, defined, base)?;
    let target = target_path(kind, target.as_deref().unwrap_or(&source))?;
    for (key, id) in [("uid", &uid), ("gid", &gid)] {
        if let Some(id) = id.as_deref().filter(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("{key}: {id:?} is not a number"));
        }
    }
    let mode = match mode {
        None => 0o444,
        Some(mode) => file_mode(mode)?,
    };
    Ok(FileMount { kind, source, name, origin, target, uid, gid, mode })
}

/// The top-level definition: its swarm name and its origin.
fn origin(kind: Kind, source: &str, defined: &Value, base: &Path) -> Result<(String, Origin), String> {
    let at = format!("{}.{source}", kind.key());
    let Some(defined) = defined.as_object() else {
        return Err(format!("{at}: a mapping with file, external, environment or content"));
    };
    let allowed =
        ["file", "external", "environment", "content", "name", "labels", "driver", "driver_opts", "template_driver"];
    if let Some(unknown) = defined.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("{at}.{unknown} is not a key of a {} definition", kind.key()));
    }
    if let Some(unsupported) =
        ["driver", "driver_opts", "template_driver"].into_iter().find(|k| defined.contains_key(*k))
    {
        return Err(format!(
            "{at}.{unsupported}: imgctl reads secrets and configs from files, the environment or external objects only"
        ));
    }
    let string = |key: &str| -> Result<Option<String>, String> {
        match defined.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{at}.{key}: a string")),
        }
    };
    let mut name = string("name")?;
    // `external: true`, or v3's `external: {name: NAME}`.
    let external = match defined.get("external") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(Value::Object(legacy)) => {
            if let Some(legacy) = legacy.get("name").and_then(Value::as_str) {
                name.get_or_insert_with(|| legacy.to_owned());
            }
            true
        }
        Some(_) => return Err(format!("{at}.external: true or false")),
    };
    let name = name.unwrap_or_else(|| source.to_owned());
    if !is_object_name(&name) {
        return Err(format!("{at}.name: {name:?} is not a swarm object name (letters, digits, '_', '.', '-')"));
    }
    let mut origins = Vec::new();
    if external {
        origins.push(Origin::External(name.clone()));
    }
    if let Some(file) = string("file")? {
        let path = PathBuf::from(file);
        origins.push(Origin::File(if path.is_absolute() { path } else { base.join(path) }));
    }
    if let Some(variable) = string("environment")? {
        if variable.is_empty() || !variable.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("{at}.environment: {variable:?} is not a variable name"));
        }
        origins.push(Origin::Environment(variable));
    }
    if let Some(content) = string("content")? {
        if kind == Kind::Secret {
            // A secret's value written into the compose file is no secret; compose takes
            // `content` for configs only.
            return Err(format!("{at}.content is for configs: give a secret as a file or a variable"));
        }
        origins.push(Origin::Content(content));
    }
    match origins.len() {
        1 => Ok((name, origins.remove(0))),
        0 => Err(format!(
            "{at}: one of file, external, environment{}",
            if kind == Kind::Config { " or content" } else { "" }
        )),
        _ => Err(format!("{at}: only one of file, external, environment and content")),
    }
}

/// The container path of a mount: relative targets under `/run/secrets` (secrets) or `/`
/// (configs). A target that climbs (`..`) or holds a control character is refused.
fn target_path(kind: Kind, target: &str) -> Result<String, String> {
    if target.is_empty() || target.chars().any(char::is_control) {
        return Err(format!("target {target:?}: a path"));
    }
    let path = Path::new(target);
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("target {target:?}: '..' is not allowed"));
    }
    if path.is_absolute() {
        return Ok(target.to_owned());
    }
    Ok(match kind {
        Kind::Secret => format!("/run/secrets/{target}"),
        Kind::Config => format!("/{target}"),
    })
}

/// `mode:` as compose takes it: a number (the YAML reader takes `0440` as octal, as
/// docker-compose's YAML 1.1 reader does; `0o440` too), or a string of octal digits.
fn file_mode(mode: &Value) -> Result<u32, String> {
    let parsed = match mode {
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    };
    match parsed {
        Some(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("mode {mode}: permission bits (0 to 0777)")),
    }
}

fn is_object_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{FileMount, Kind, Origin, secrets};

    fn read(yaml: &str) -> Result<super::ServiceFiles, String> {
        let top: serde_json::Value = serde_norway::from_str(yaml).unwrap();
        secrets(&top["services"]["api"], &top, Path::new("/srv/app"))
    }

    #[test]
    fn short_and_long_forms_with_every_origin() {
        let files = read(
            r#"
services:
  api:
    secrets:
      - token
      - {source: db, target: db_password, uid: "100", gid: 101, mode: "0400"}
      - {source: ext, target: /etc/ext.key}
      - {source: env, target: from_env}
    configs:
      - conf
      - {source: inline, target: etc/inline.conf, mode: 0o440}
secrets:
  token: {file: ./token.txt}
  db: {file: /abs/db.txt}
  ext: {external: true, name: prod_ext}
  env: {environment: API_TOKEN}
configs:
  conf: {file: conf/api.conf}
  inline: {content: "answer = 42"}
"#,
        )
        .unwrap();
        let secret = |source: &str, name: &str, origin: Origin, target: &str| FileMount {
            kind: Kind::Secret,
            source: source.into(),
            name: name.into(),
            origin,
            target: target.into(),
            uid: None,
            gid: None,
            mode: 0o444,
        };
        assert_eq!(
            files.secrets,
            [
                secret("token", "token", Origin::File(PathBuf::from("/srv/app/./token.txt")), "/run/secrets/token"),
                FileMount {
                    uid: Some("100".into()),
                    gid: Some("101".into()),
                    mode: 0o400,
                    ..secret("db", "db", Origin::File("/abs/db.txt".into()), "/run/secrets/db_password")
                },
                secret("ext", "prod_ext", Origin::External("prod_ext".into()), "/etc/ext.key"),
                secret("env", "env", Origin::Environment("API_TOKEN".into()), "/run/secrets/from_env"),
            ]
        );
        let targets: Vec<(&str, u32)> = files.configs.iter().map(|c| (c.target.as_str(), c.mode)).collect();
        assert_eq!(targets, [("/conf", 0o444), ("/etc/inline.conf", 0o440)]);
        assert_eq!(files.configs[0].origin, Origin::File("/srv/app/conf/api.conf".into()));
        assert_eq!(files.configs[1].origin, Origin::Content("answer = 42".into()));
        assert_eq!(read("services:\n  api: {}\n").unwrap(), super::ServiceFiles::default());
    }

    #[test]
    fn a_mode_written_with_a_leading_zero_is_octal_as_compose_reads_it() {
        for mode in ["0400", "\"0400\"", "0o400", "256"] {
            let yaml =
                format!("services:\n  api:\n    secrets: [{{source: s, mode: {mode}}}]\nsecrets:\n  s: {{file: s}}\n");
            assert_eq!(read(&yaml).unwrap().secrets[0].mode, 0o400, "mode: {mode}");
        }
    }

    #[test]
    fn legacy_external_name_is_read() {
        let files = read("services:\n  api:\n    secrets: [old]\nsecrets:\n  old:\n    external: {name: legacy_old}\n")
            .unwrap();
        assert_eq!(files.secrets[0].origin, Origin::External("legacy_old".into()));
    }

    #[test]
    fn hostile_and_broken_entries_are_refused_by_key() {
        let refused = |yaml: &str| read(yaml).unwrap_err();
        let top = "secrets:\n  s: {file: s.txt}\nconfigs:\n  c: {file: c.txt}\n";
        let cases = [
            ("secrets: [missing]", "secrets[0]: \"missing\" is not defined in the top-level secrets:"),
            (
                "secrets: [{source: s, target: ../../etc/shadow}]",
                "secrets[0]: target \"../../etc/shadow\": '..' is not allowed",
            ),
            ("secrets: [{source: s, target: \"/run/secrets/a\\nb\"}]", "secrets[0]: target"),
            ("secrets: [{source: s, mode: 4095}]", "secrets[0]: mode 4095: permission bits"),
            ("secrets: [{source: s, mode: \"rw\"}]", "secrets[0]: mode \"rw\""),
            ("secrets: [{source: s, uid: \"0; rm\"}]", "secrets[0]: uid: \"0; rm\" is not a number"),
            ("secrets: [{source: s, path: x}]", "secrets[0]: path is not a key of a secrets mount"),
            ("secrets: [{target: x}]", "secrets[0]: source is required"),
            ("secrets: [s, {source: s, target: s}]", "secrets[1]: a second mount at /run/secrets/s"),
            ("secrets: s", "secrets: a list"),
            ("configs: [{source: c, target: \"\"}]", "configs[0]: target \"\": a path"),
        ];
        for (service, expected) in cases {
            let text = refused(&format!("services:\n  api:\n    {service}\n{top}"));
            assert!(text.starts_with(expected), "{service}: {text}");
        }
        let definitions = [
            ("secrets:\n  s: {}", "secrets.s: one of file, external, environment"),
            ("secrets:\n  s: {file: a, environment: B}", "secrets.s: only one of"),
            ("secrets:\n  s: {content: hunter2}", "secrets.s.content is for configs"),
            ("secrets:\n  s: {environment: \"A=B\"}", "secrets.s.environment: \"A=B\" is not a variable name"),
            ("secrets:\n  s: {external: true, name: \"a/b\"}", "secrets.s.name: \"a/b\" is not a swarm object name"),
            ("secrets:\n  s: {file: a, driver: vault}", "secrets.s.driver: imgctl reads"),
            ("secrets:\n  s: {fil: a}", "secrets.s.fil is not a key"),
            ("secrets:\n  s: file.txt", "secrets.s: a mapping"),
        ];
        for (definition, expected) in definitions {
            let text = refused(&format!("services:\n  api:\n    secrets: [s]\n{definition}\n"));
            assert!(text.starts_with(&format!("secrets[0]: {expected}")), "{definition}: {text}");
        }
        // The refused content never comes back in the message.
        assert!(
            !refused("services:\n  api:\n    secrets: [s]\nsecrets:\n  s: {content: hunter2}\n").contains("hunter2")
        );
    }
}
