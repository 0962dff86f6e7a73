//! compose `secrets:` and `configs:`: what a service mounts (the service's list, short or long
//! form) and where each comes from (the top-level `secrets:`/`configs:`: a file, an external
//! object, a variable of imgctl's environment, or inline content for a config).
//!
//! Only what is read here: no file is opened and no variable is looked up, so nothing a secret
//! holds can reach an error message. Paths are taken from the compose file's folder.
//!
//! Where a mount lands, as compose and swarm place them: a secret's relative target under
//! `/run/secrets/`, a config's relative target under `/`; an absolute target as written.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;
use zeroize::Zeroizing;

use super::Target;
use crate::deploy::model::{Content, FileKind as Kind, FileMount, FileSource as Origin};

/// The largest secret swarm takes (500 KiB), and the largest config (1000 KiB); the Engine is
/// held to the same, so a file works on both targets.
const LIMIT: [(Kind, usize); 2] = [(Kind::Secret, 500 << 10), (Kind::Config, 1000 << 10)];

/// Reads the service's `secrets:` and `configs:`, secrets first (`body`: the service, `top`:
/// the top-level `secrets:` and `configs:` definitions, `base`: the project directory). Inline
/// `content:` is taken as it is; nothing else is read. Errors name the key.
pub(crate) fn secrets(body: &Value, top: &Value, base: &Path) -> Result<Vec<FileMount>, String> {
    let mut files = mounts(Kind::Secret, body, top, base)?;
    files.extend(mounts(Kind::Config, body, top, base)?);
    Ok(files)
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
    let (name, origin, content) = origin(kind, &source, defined, base)?;
    let target = target_path(kind, target.as_deref().unwrap_or(&source))?;
    for (key, id) in [("uid", &uid), ("gid", &gid)] {
        if let Some(id) = id.as_deref().filter(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("{key}: {id:?} is not a number"));
        }
    }
    let mode = mode.map(file_mode).transpose()?;
    Ok(FileMount { kind, key: source, name, source: origin, target, uid, gid, mode, content })
}

/// The top-level definition: its swarm name, its origin, and inline content.
fn origin(kind: Kind, source: &str, defined: &Value, base: &Path) -> Result<(String, Origin, Option<Content>), String> {
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
    let mut inline = None;
    if external {
        origins.push(Origin::External(name.clone()));
    }
    if let Some(file) = string("file")? {
        let path = PathBuf::from(file);
        let path = if path.is_absolute() { path } else { base.join(path) };
        // `./token.txt` is shown as `DIR/token.txt`, as compose shows it.
        origins.push(Origin::File(path.components().filter(|c| !matches!(c, Component::CurDir)).collect()));
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
        origins.push(Origin::Inline);
        inline = Some(Content::new(Zeroizing::new(content.into_bytes())));
    }
    match origins.len() {
        1 => Ok((name, origins.remove(0), inline)),
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

/// What `target` cannot do with `files`, naming the first such mount. On a single Engine there
/// are no swarm objects (`external`), and a bind-mounted file keeps its host owner and mode
/// (docker-compose ignores `uid`, `gid` and `mode` there with a warning; imgctl refuses them).
pub(super) fn for_target(files: &[FileMount], target: Target) -> Result<(), String> {
    if target != Target::Engine {
        return Ok(());
    }
    for file in files {
        let at = file.at();
        match &file.source {
            Origin::External(name) => {
                return Err(format!(
                    "{at}: external {} {name:?} is a swarm object, and a single Docker Engine has none (x-imgctl.target: engine); give it as a file or an environment variable, or deploy to swarm",
                    file.kind.noun()
                ));
            }
            Origin::File(_) if file.owner_or_mode_given() => {
                return Err(format!(
                    "{}: {}: uid, gid and mode cannot be applied on a single Docker Engine: a file is bind-mounted there and keeps its own owner and mode (chown or chmod the file instead, or drop them)",
                    file.kind.key(),
                    file.key
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads the content of every mount from its file or from `environment` (imgctl's), before
/// anything changes. A missing or unreadable file, an unset variable or content over swarm's
/// limit is refused, naming the key; the content never appears in a message.
pub(super) fn read_contents(
    files: &mut [FileMount],
    environment: &BTreeMap<String, String>,
    target: Target,
) -> Result<(), String> {
    for file in files.iter_mut() {
        let at = file.at();
        let limit = LIMIT.iter().find(|(kind, _)| *kind == file.kind).map_or(500 << 10, |(_, limit)| *limit);
        let content = match &file.source {
            Origin::External(_) | Origin::Inline => continue,
            Origin::File(path) => {
                let opened = std::fs::File::open(path).and_then(|f| {
                    if f.metadata()?.is_file() { Ok(f) } else { Err(std::io::Error::other("not a regular file")) }
                });
                let opened = opened.map_err(|e| format!("{at}.file: cannot read {}: {e}", path.display()))?;
                // The Engine bind-mounts the file: its bytes are not imgctl's to hold.
                if target == Target::Engine {
                    continue;
                }
                crate::credential::read_to_end_wiped(opened, limit).map_err(|e| match e {
                    crate::credential::ReadSecretError::TooLarge { limit } => {
                        format!(
                            "{at}.file: {} is larger than {} KiB, the most swarm takes",
                            path.display(),
                            limit >> 10
                        )
                    }
                    crate::credential::ReadSecretError::Io(e) => {
                        format!("{at}.file: cannot read {}: {e}", path.display())
                    }
                })?
            }
            Origin::Environment(variable) => {
                let value = environment.get(variable).ok_or_else(|| {
                    format!("{at}.environment: the variable {variable} is not set in imgctl's environment")
                })?;
                if value.len() > limit {
                    return Err(format!("{at}.environment: {variable} is larger than {} KiB", limit >> 10));
                }
                Zeroizing::new(value.as_bytes().to_vec())
            }
        };
        file.content = Some(Content::new(content));
    }
    Ok(())
}

/// A variable that feeds a secret cannot also be handed to hooks (`x-imgctl.pass_env`).
pub(super) fn check_pass_env(files: &[FileMount], pass_env: &[String]) -> Result<(), String> {
    for file in files {
        if let Origin::Environment(variable) = &file.source
            && pass_env.contains(variable)
        {
            return Err(format!(
                "x-imgctl: pass_env: {variable:?} holds {} (its environment): hooks never get a secret's value",
                file.at()
            ));
        }
    }
    Ok(())
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

    use std::collections::BTreeMap;

    use super::{FileMount, Kind, Origin, Target, check_pass_env, for_target, read_contents, secrets};

    /// The secrets and the configs of service `api`.
    fn read(yaml: &str) -> Result<(Vec<FileMount>, Vec<FileMount>), String> {
        let top: serde_json::Value = serde_norway::from_str(yaml).unwrap();
        let files = secrets(&top["services"]["api"], &top, Path::new("/srv/app"))?;
        Ok(files.into_iter().partition(|f| f.kind == Kind::Secret))
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
            key: source.into(),
            name: name.into(),
            source: origin,
            target: target.into(),
            uid: None,
            gid: None,
            mode: None,
            content: None,
        };
        let (secrets, configs) = files;
        assert_eq!(
            secrets,
            [
                secret("token", "token", Origin::File(PathBuf::from("/srv/app/token.txt")), "/run/secrets/token"),
                FileMount {
                    uid: Some("100".into()),
                    gid: Some("101".into()),
                    mode: Some(0o400),
                    ..secret("db", "db", Origin::File("/abs/db.txt".into()), "/run/secrets/db_password")
                },
                secret("ext", "prod_ext", Origin::External("prod_ext".into()), "/etc/ext.key"),
                secret("env", "env", Origin::Environment("API_TOKEN".into()), "/run/secrets/from_env"),
            ]
        );
        let targets: Vec<(&str, u32)> = configs.iter().map(|c| (c.target.as_str(), c.file_mode())).collect();
        assert_eq!(targets, [("/conf", 0o444), ("/etc/inline.conf", 0o440)]);
        assert_eq!(configs[0].source, Origin::File("/srv/app/conf/api.conf".into()));
        assert_eq!(configs[1].source, Origin::Inline);
        assert_eq!(configs[1].content.as_ref().map(|c| c.expose()), Some(&b"answer = 42"[..]));
        assert_eq!(read("services:\n  api: {}\n").unwrap(), (vec![], vec![]));
    }

    #[test]
    fn a_mode_written_with_a_leading_zero_is_octal_as_compose_reads_it() {
        for mode in ["0400", "\"0400\"", "0o400", "256"] {
            let yaml =
                format!("services:\n  api:\n    secrets: [{{source: s, mode: {mode}}}]\nsecrets:\n  s: {{file: s}}\n");
            assert_eq!(read(&yaml).unwrap().0[0].mode, Some(0o400), "mode: {mode}");
        }
    }

    #[test]
    fn legacy_external_name_is_read() {
        let files = read("services:\n  api:\n    secrets: [old]\nsecrets:\n  old:\n    external: {name: legacy_old}\n")
            .unwrap();
        assert_eq!(files.0[0].source, Origin::External("legacy_old".into()));
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

    #[test]
    fn contents_are_read_from_files_and_the_environment_and_refusals_name_the_key() {
        let dir = std::env::temp_dir().join(format!("imgctl-secrets-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token.txt"), b"s3cret\n").unwrap();
        let yaml = |definition: &str| {
            format!("services:\n  api:\n    secrets: [s]\nsecrets:\n  s: {definition}\n")
                .replace("DIR", &dir.display().to_string())
        };
        let environment = BTreeMap::from([("API_TOKEN".to_owned(), "from-env".to_owned())]);
        let read_for = |definition: &str, target: Target| {
            let (mut files, _) = read(&yaml(definition)).unwrap();
            read_contents(&mut files, &environment, target).map(|()| files[0].content.clone())
        };
        let contents = |definition: &str| read_for(definition, Target::Swarm);
        // One Engine bind-mounts a file: it is checked, not read; a variable's value is copied.
        assert_eq!(read_for("{file: DIR/token.txt}", Target::Engine).unwrap(), None);
        assert!(read_for("{file: DIR/missing.txt}", Target::Engine).unwrap_err().contains("cannot read"));
        assert_eq!(read_for("{environment: API_TOKEN}", Target::Engine).unwrap().unwrap().expose(), b"from-env");
        assert_eq!(contents("{file: DIR/token.txt}").unwrap().unwrap().expose(), b"s3cret\n");
        assert_eq!(contents("{environment: API_TOKEN}").unwrap().unwrap().expose(), b"from-env");
        assert_eq!(contents("{external: true}").unwrap(), None, "an external object is swarm's to hold");
        let missing = contents("{file: DIR/missing.txt}").unwrap_err();
        assert!(missing.starts_with("secrets.s.file: cannot read ") && missing.contains("missing.txt"), "{missing}");
        let directory = contents("{file: DIR}").unwrap_err();
        assert!(directory.contains("not a regular file"), "{directory}");
        let unset = contents("{environment: NOT_SET}").unwrap_err();
        assert_eq!(unset, "secrets.s.environment: the variable NOT_SET is not set in imgctl's environment");
        std::fs::write(dir.join("big"), vec![b'x'; 501 << 10]).unwrap();
        assert!(contents("{file: DIR/big}").unwrap_err().contains("larger than 500 KiB"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_engine_refuses_external_objects_and_owner_or_mode_of_a_bind_mount() {
        let files = |service: &str, definition: &str| {
            let yaml = format!("services:\n  api:\n    secrets: [{service}]\nsecrets:\n  s: {definition}\n");
            read(&yaml).unwrap().0
        };
        let external = files("s", "{external: true, name: prod_s}");
        assert!(for_target(&external, Target::Swarm).is_ok());
        let refused = for_target(&external, Target::Engine).unwrap_err();
        assert!(refused.starts_with("secrets.s: external secret \"prod_s\" is a swarm object"), "{refused}");
        let moded = files("{source: s, mode: 0400}", "{file: s.txt}");
        let refused = for_target(&moded, Target::Engine).unwrap_err();
        assert!(refused.starts_with("secrets: s: uid, gid and mode cannot be applied"), "{refused}");
        assert!(for_target(&moded, Target::Swarm).is_ok());
        // Copied into the container (environment, content): owner and mode apply.
        assert!(for_target(&files("{source: s, mode: 0400}", "{environment: V}"), Target::Engine).is_ok());
        let env = files("s", "{environment: API_TOKEN}");
        let refused = check_pass_env(&env, &["API_TOKEN".into()]).unwrap_err();
        assert!(refused.contains("\"API_TOKEN\" holds secrets.s"), "{refused}");
        assert!(check_pass_env(&env, &["OTHER".into()]).is_ok());
    }
}
