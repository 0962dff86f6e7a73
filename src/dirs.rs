//! Where imgctl keeps its files: XDG base directories, each overridable by an environment variable.

use std::ffi::OsString;
use std::path::PathBuf;

/// imgctl's configuration and data directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirs {
    /// Configuration, including the age identity: `$IMGCTL_CONFIG_DIR`, else
    /// `$XDG_CONFIG_HOME/imgctl`, else `~/.config/imgctl`.
    pub config: PathBuf,
    /// Data, including the encrypted credential store: `$IMGCTL_DATA_DIR`, else
    /// `$XDG_DATA_HOME/imgctl`, else `~/.local/share/imgctl`.
    pub data: PathBuf,
}

/// The environment does not say where imgctl's files are.
#[derive(Debug, thiserror::Error)]
pub enum DirsError {
    /// Neither the override variables nor `HOME` are set.
    #[error("cannot tell where to keep imgctl's files: set HOME, or IMGCTL_CONFIG_DIR and IMGCTL_DATA_DIR")]
    NoHome,
    /// An override (or `HOME`) is a relative path. It would be resolved against the working
    /// directory, which is wherever the user ran docker: each directory would get a store of its
    /// own.
    #[error("{variable} is the relative path {value:?}: set it to an absolute path")]
    Relative {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: PathBuf,
    },
}

/// `$NAME` when set and not empty, else `$HOME/fallback`: how docker (`DOCKER_CONFIG`) and pass
/// (`PASSWORD_STORE_DIR`) find their directories.
pub fn env_or_home(name: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|home| PathBuf::from(home).join(fallback)))
}

impl Dirs {
    /// Resolves the directories from the process environment.
    pub fn from_env() -> Result<Self, DirsError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Resolves the directories with `var` as the environment. Relative XDG values are
    /// ignored, as the XDG spec says; a relative override or `HOME` is an error, since the user
    /// named that directory on purpose.
    pub fn from_lookup(var: impl Fn(&str) -> Option<OsString>) -> Result<Self, DirsError> {
        let set = |name: &str| var(name).filter(|value| !value.is_empty()).map(PathBuf::from);
        let absolute = |variable: &'static str| match set(variable) {
            Some(value) if value.is_relative() => Err(DirsError::Relative { variable, value }),
            value => Ok(value),
        };
        // HOME only matters when an override does not say where a directory is.
        let xdg = |xdg_var: &str, fallback: &str| -> Result<Option<PathBuf>, DirsError> {
            if let Some(base) = set(xdg_var).filter(|dir| dir.is_absolute()) {
                return Ok(Some(base.join("imgctl")));
            }
            Ok(absolute("HOME")?.map(|home| home.join(fallback).join("imgctl")))
        };
        let config = match absolute("IMGCTL_CONFIG_DIR")? {
            Some(dir) => Some(dir),
            None => xdg("XDG_CONFIG_HOME", ".config")?,
        };
        let data = match absolute("IMGCTL_DATA_DIR")? {
            Some(dir) => Some(dir),
            None => xdg("XDG_DATA_HOME", ".local/share")?,
        };
        match (config, data) {
            (Some(config), Some(data)) => Ok(Self { config, data }),
            _ => Err(DirsError::NoHome),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn home_fallbacks() {
        let dirs = Dirs::from_lookup(env(&[("HOME", "/home/a")])).unwrap();
        assert_eq!(dirs.config, PathBuf::from("/home/a/.config/imgctl"));
        assert_eq!(dirs.data, PathBuf::from("/home/a/.local/share/imgctl"));
    }

    #[test]
    fn xdg_then_overrides() {
        let dirs = Dirs::from_lookup(env(&[
            ("HOME", "/home/a"),
            ("XDG_CONFIG_HOME", "/x/config"),
            ("XDG_DATA_HOME", "relative/is/ignored"),
            ("IMGCTL_DATA_DIR", ""),
        ]))
        .unwrap();
        assert_eq!(dirs.config, PathBuf::from("/x/config/imgctl"));
        assert_eq!(dirs.data, PathBuf::from("/home/a/.local/share/imgctl"));
        let dirs = Dirs::from_lookup(env(&[("IMGCTL_CONFIG_DIR", "/c"), ("IMGCTL_DATA_DIR", "/d")])).unwrap();
        assert_eq!((dirs.config, dirs.data), (PathBuf::from("/c"), PathBuf::from("/d")));
    }

    #[test]
    fn nothing_set_is_an_error() {
        assert!(matches!(Dirs::from_lookup(env(&[])), Err(DirsError::NoHome)));
    }

    #[test]
    fn relative_overrides_are_refused_not_resolved_against_the_working_directory() {
        for (variable, pairs) in [
            ("IMGCTL_CONFIG_DIR", &[("HOME", "/home/a"), ("IMGCTL_CONFIG_DIR", "conf")][..]),
            ("IMGCTL_DATA_DIR", &[("IMGCTL_CONFIG_DIR", "/c"), ("IMGCTL_DATA_DIR", "./data")][..]),
            ("HOME", &[("HOME", "home/a")][..]),
        ] {
            let lookup = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v));
            match Dirs::from_lookup(lookup) {
                Err(DirsError::Relative { variable: got, .. }) => assert_eq!(got, variable),
                other => panic!("{variable}: {other:?}"),
            }
        }
        // A relative HOME that nothing needs is no error.
        let dirs = Dirs::from_lookup(env(&[("HOME", "rel"), ("IMGCTL_CONFIG_DIR", "/c"), ("IMGCTL_DATA_DIR", "/d")]));
        assert!(dirs.is_ok(), "{dirs:?}");
    }
}
