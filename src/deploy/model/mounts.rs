//! compose `secrets:` and `configs:` as each replica gets them: a file at a path inside the
//! container, with its owner and mode, and where its content comes from. The content itself,
//! once read, is held in [`Content`]: no `Display`, a `Debug` that prints its size only, and
//! memory wiped when dropped, so no report, log or `imgctl config` can show it.

use std::fmt;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Secrets or configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// `secrets:`
    Secret,
    /// `configs:`
    Config,
}

impl FileKind {
    /// The compose key: `secrets` or `configs`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Secret => "secrets",
            Self::Config => "configs",
        }
    }

    /// The noun: `secret` or `config`.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Config => "config",
        }
    }
}

/// Where a secret's or config's content comes from (top-level `secrets.NAME` / `configs.NAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSource {
    /// `file:`, an absolute path (resolved against the project directory).
    File(PathBuf),
    /// `external: true`: an object that exists already on swarm, by this name.
    External(String),
    /// `environment: VAR`: the value of a variable of imgctl's environment.
    Environment(String),
    /// `content:` (configs only): text written in the compose file.
    Inline,
}

/// The bytes of a secret or config, read once before anything changes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Content(Zeroizing<Vec<u8>>);

impl Content {
    /// Takes `bytes`; they are wiped when the content is dropped.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The bytes. Every place they leave this type calls this: grep for it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first 12 hex digits of its SHA-256: what names its swarm object, so a change of
    /// content is a new object (and a rolling update) while the old one stays for a rollback.
    pub fn short_hash(&self) -> String {
        let digest = Sha256::digest(self.expose());
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Content(REDACTED, {} bytes)", self.0.len())
    }
}

/// One secret or config mounted into every replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMount {
    /// Secret or config.
    pub kind: FileKind,
    /// The top-level key it names (`source:` in the service's list).
    pub key: String,
    /// `name:` at the top level (the external object's name), else the key.
    pub name: String,
    /// Where its content comes from.
    pub source: FileSource,
    /// The absolute path inside the container.
    pub target: String,
    /// `uid:` (digits).
    pub uid: Option<String>,
    /// `gid:` (digits).
    pub gid: Option<String>,
    /// `mode:`; `None`: not given (0444 where imgctl writes the file, as swarm gives).
    pub mode: Option<u32>,
    /// The content, once read (`None`: external, or not read yet).
    pub content: Option<Content>,
}

impl FileMount {
    /// On one Engine it is copied into the created container (from the environment, or
    /// inline), not bind-mounted.
    pub fn is_copied_on_engine(&self) -> bool {
        matches!(self.source, FileSource::Environment(_) | FileSource::Inline)
    }

    /// The mode a copied file or a swarm object gets: `mode:`, else 0444 (compose's and
    /// swarm's default).
    pub fn file_mode(&self) -> u32 {
        self.mode.unwrap_or(0o444)
    }

    /// `secrets.KEY` or `configs.KEY`: how messages name it.
    pub fn at(&self) -> String {
        format!("{}.{}", self.kind.key(), self.key)
    }

    /// Whether uid, gid or mode were given.
    pub fn owner_or_mode_given(&self) -> bool {
        self.uid.is_some() || self.gid.is_some() || self.mode.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_never_prints_and_hashes_short() {
        let content = Content::new(Zeroizing::new(b"hunter2".to_vec()));
        let shown = format!("{content:?}");
        assert!(!shown.contains("hunter2") && shown.contains("7 bytes"), "{shown}");
        // sha256("hunter2") = f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7
        assert_eq!(content.short_hash(), "f52fbd32b2b3");
        let mount = FileMount {
            kind: FileKind::Secret,
            key: "db".into(),
            name: "db".into(),
            source: FileSource::Environment("DB".into()),
            target: "/run/secrets/db".into(),
            uid: None,
            gid: None,
            mode: None,
            content: Some(content),
        };
        assert!(!format!("{mount:?}").contains("hunter2"));
        assert_eq!((mount.file_mode(), mount.at(), mount.owner_or_mode_given()), (0o444, "secrets.db".into(), false));
    }
}
