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

/// Neither the override variables nor `HOME` are set.
#[derive(Debug, thiserror::Error)]
#[error("cannot tell where to keep imgctl's files: set HOME, or IMGCTL_CONFIG_DIR and IMGCTL_DATA_DIR")]
pub struct NoHome;

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
    pub fn from_env() -> Result<Self, NoHome> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Resolves the directories with `var` as the environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<OsString>) -> Result<Self, NoHome> {
        let set = |name: &str| var(name).filter(|value| !value.is_empty()).map(PathBuf::from);
        let home = set("HOME");
        let xdg = |xdg_var: &str, fallback: &str| {
            set(xdg_var)
                .filter(|dir| dir.is_absolute())
                .or_else(|| home.as_ref().map(|home| home.join(fallback)))
                .map(|base| base.join("imgctl"))
        };
        let config = set("IMGCTL_CONFIG_DIR").or_else(|| xdg("XDG_CONFIG_HOME", ".config"));
        let data = set("IMGCTL_DATA_DIR").or_else(|| xdg("XDG_DATA_HOME", ".local/share"));
        match (config, data) {
            (Some(config), Some(data)) => Ok(Self { config, data }),
            _ => Err(NoHome),
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
        assert!(Dirs::from_lookup(env(&[])).is_err());
    }
}
