//! The compose project's name, as compose v2 derives it: `-p/--project-name`, else
//! `COMPOSE_PROJECT_NAME` (the environment, then the project's `.env` or `--env-file`), else
//! the top-level `name:` of the files (the last that sets one, interpolated), else the
//! project directory's name, normalized. compose labels every container it runs with that name
//! (`com.docker.compose.project`), which is how imgctl finds a service `docker-compose up -d`
//! runs.
//!
//! Where docker-compose 1.29 differs: it lowercases and strips any name given with `-p` or
//! `COMPOSE_PROJECT_NAME` without a word (v2 refuses a name that is not already normal), it
//! keeps a leading `_` or `-` of a folder's name (v2 drops them), and it refuses a top-level
//! `name:` ("'name' does not match any of the regexes: '^x-'").

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The variable compose reads the project name from.
pub const VARIABLE: &str = "COMPOSE_PROJECT_NAME";

/// A project name and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Project {
    /// The name (lowercase letters, digits, `_` and `-`, starting with a letter or digit).
    pub name: String,
    /// Where it came from.
    pub from: ProjectSource,
}

/// Where a project name came from, in compose's order of precedence.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum ProjectSource {
    /// `-p/--project-name`.
    Flag,
    /// `COMPOSE_PROJECT_NAME` in the environment.
    Environment,
    /// `COMPOSE_PROJECT_NAME` in the project's `.env` (or an `--env-file`).
    EnvFile,
    /// The top-level `name:` of this compose file.
    File(PathBuf),
    /// The name of the project directory.
    Directory(PathBuf),
}

impl fmt::Display for ProjectSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag => f.write_str("-p"),
            Self::Environment => write!(f, "{VARIABLE} in the environment"),
            Self::EnvFile => write!(f, "{VARIABLE} in the env file"),
            Self::File(path) => write!(f, "name: in {}", path.display()),
            Self::Directory(path) => write!(f, "the folder name of {}", path.display()),
        }
    }
}

/// A project name compose would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProjectNameError {
    /// Given explicitly, and not a project name as it stands.
    #[error(
        "the project name {name:?} (from {from}) is not one compose accepts: lowercase letters, digits, '_' and '-', starting with a letter or digit (did you mean {suggestion:?}?)"
    )]
    Invalid {
        /// The name given.
        name: String,
        /// Where it came from.
        from: ProjectSource,
        /// What it normalizes to.
        suggestion: String,
    },
    /// Nothing gives a name: the folder's has no letter or digit left once normalized.
    #[error(
        "no project name: the folder name of {} has no letter or digit compose keeps; give one with -p or {VARIABLE}",
        dir.display()
    )]
    Empty {
        /// The project directory.
        dir: PathBuf,
    },
}

/// compose's normalization (compose-go `NormalizeProjectName`): lowercase, keep `a-z`, `0-9`,
/// `_` and `-`, drop leading `_` and `-`.
pub fn normalize(name: &str) -> String {
    let kept: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_owned()
}

/// The project's name: `flag`, else `COMPOSE_PROJECT_NAME` of `process` (then of `variables`,
/// the env files under the process), else the last `name:` of `files` (path and its
/// interpolated top-level `name`, if any), else `dir`'s name (`default` when it has none). An
/// explicit name must already be normal; a derived one is normalized.
pub fn resolve(
    flag: Option<&str>,
    process: &BTreeMap<String, String>,
    variables: &BTreeMap<String, String>,
    files: &[(PathBuf, Option<String>)],
    dir: &Path,
) -> Result<Project, ProjectNameError> {
    let set = |value: Option<&String>| value.filter(|v| !v.is_empty()).cloned();
    let explicit = match (flag.filter(|f| !f.is_empty()), set(process.get(VARIABLE)), set(variables.get(VARIABLE))) {
        (Some(name), _, _) => Some((name.to_owned(), ProjectSource::Flag)),
        (None, Some(name), _) => Some((name, ProjectSource::Environment)),
        (None, None, Some(name)) => Some((name, ProjectSource::EnvFile)),
        (None, None, None) => None,
    };
    if let Some((name, from)) = explicit {
        let suggestion = normalize(&name);
        if suggestion != name {
            return Err(ProjectNameError::Invalid { name, from, suggestion });
        }
        return Ok(Project { name, from });
    }
    let named = files.iter().rev().find_map(|(path, name)| {
        let name = normalize(name.as_deref()?);
        (!name.is_empty()).then(|| Project { name, from: ProjectSource::File(path.clone()) })
    });
    if let Some(project) = named {
        return Ok(project);
    }
    // A directory with no name at all (`/`, or none given to the library) is compose 1.29's
    // `default`.
    let base = dir.file_name().map(|n| normalize(&n.to_string_lossy())).unwrap_or_else(|| "default".into());
    if base.is_empty() {
        return Err(ProjectNameError::Empty { dir: dir.to_path_buf() });
    }
    Ok(Project { name: base, from: ProjectSource::Directory(dir.to_path_buf()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn normalizes_as_compose_v2_does() {
        for (given, normal) in [
            ("myapp", "myapp"),
            ("My.App_", "myapp_"),
            ("_x-", "x-"),
            ("--web", "web"),
            ("Web Shop 2", "webshop2"),
            ("été", "t"),
            ("___", ""),
            ("a_b-c", "a_b-c"),
        ] {
            assert_eq!(normalize(given), normal, "{given:?}");
        }
    }

    #[test]
    fn the_flag_wins_then_the_environment_then_the_env_file_then_name_then_the_folder() {
        let dir = Path::new("/srv/My.Shop");
        let files = [(PathBuf::from("/srv/My.Shop/compose.yaml"), Some("Named".to_owned()))];
        let env = vars(&[(VARIABLE, "fromenv")]);
        let both = vars(&[(VARIABLE, "fromenv")]);
        let dotenv = vars(&[(VARIABLE, "fromdotenv")]);
        let none = BTreeMap::new();
        let cases = [
            (Some("flag"), &env, &both, "flag", ProjectSource::Flag),
            (None, &env, &both, "fromenv", ProjectSource::Environment),
            (None, &none, &dotenv, "fromdotenv", ProjectSource::EnvFile),
            (None, &none, &none, "named", ProjectSource::File(files[0].0.clone())),
            // An empty value is no value, as in compose.
            (Some(""), &none, &none, "named", ProjectSource::File(files[0].0.clone())),
        ];
        for (flag, process, variables, name, from) in cases {
            let project = resolve(flag, process, variables, &files, dir).unwrap();
            assert_eq!(project, Project { name: name.into(), from }, "{flag:?}");
        }
        let folder = resolve(None, &none, &none, &[(files[0].0.clone(), None)], dir).unwrap();
        assert_eq!(folder, Project { name: "myshop".into(), from: ProjectSource::Directory(dir.into()) });
        assert_eq!(folder.from.to_string(), "the folder name of /srv/My.Shop");
    }

    #[test]
    fn the_last_file_with_a_name_gives_it() {
        let files = [
            (PathBuf::from("/a/compose.yaml"), Some("first".to_owned())),
            (PathBuf::from("/a/prod.yaml"), Some("Second".to_owned())),
            (PathBuf::from("/a/tail.yaml"), None),
        ];
        let project = resolve(None, &BTreeMap::new(), &BTreeMap::new(), &files, Path::new("/a")).unwrap();
        assert_eq!((project.name.as_str(), project.from), ("second", ProjectSource::File("/a/prod.yaml".into())));
    }

    #[test]
    fn an_explicit_name_that_is_not_normal_is_refused_with_the_normal_one() {
        let error = resolve(Some("My_App"), &BTreeMap::new(), &BTreeMap::new(), &[], Path::new("/a")).unwrap_err();
        assert_eq!(
            error,
            ProjectNameError::Invalid { name: "My_App".into(), from: ProjectSource::Flag, suggestion: "my_app".into() }
        );
        assert!(error.to_string().contains("did you mean \"my_app\"?"), "{error}");
        let env = vars(&[(VARIABLE, "-web")]);
        let error = resolve(None, &env, &env, &[], Path::new("/a")).unwrap_err();
        assert!(matches!(error, ProjectNameError::Invalid { from: ProjectSource::Environment, .. }), "{error:?}");
    }

    #[test]
    fn a_folder_without_a_letter_or_digit_needs_a_name() {
        let error = resolve(None, &BTreeMap::new(), &BTreeMap::new(), &[], Path::new("/srv/___")).unwrap_err();
        assert_eq!(error, ProjectNameError::Empty { dir: "/srv/___".into() });
        assert!(error.to_string().contains("give one with -p"), "{error}");
    }
}
