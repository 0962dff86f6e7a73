//! Image references in the docker grammar: `[registry/]repository[:tag][@digest]`, with Docker
//! Hub's normalization (`busybox` is `docker.io/library/busybox`).

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, InvalidDigest};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

/// A parsed image reference.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why text is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReference {
    /// Empty text.
    #[error("empty image reference")]
    Empty,
    /// A repository path component breaks the grammar.
    #[error(
        "invalid repository {repository:?} in {reference:?}: components are lowercase letters, digits and separators (. _ __ -)"
    )]
    Repository {
        /// The whole reference.
        reference: String,
        /// The repository part.
        repository: String,
    },
    /// The tag breaks the grammar.
    #[error("invalid tag {tag:?} in {reference:?}: up to 128 of [A-Za-z0-9_.-], not starting with . or -")]
    Tag {
        /// The whole reference.
        reference: String,
        /// The tag.
        tag: String,
    },
    /// The digest is malformed.
    #[error(transparent)]
    Digest(#[from] InvalidDigest),
    /// Longer than the grammar allows.
    #[error("repository name {0:?} is longer than 255 characters")]
    TooLong(String),
}

impl Reference {
    /// The registry host (`docker.io` for Docker Hub, else `host[:port]`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host the registry API answers on (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB { DOCKER_HUB_API } else { &self.registry }
    }

    /// The repository path (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when pinned, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// The same repository pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self { digest: Some(digest), ..self.clone() }
    }

    /// The same repository at `tag`, no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, InvalidReference> {
        validate_tag(tag, &self.to_string())?;
        Ok(Self { tag: Some(tag.to_owned()), digest: None, ..self.clone() })
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl FromStr for Reference {
    type Err = InvalidReference;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(InvalidReference::Empty);
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.parse::<Digest>()?)),
            None => (text, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a ':' before is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag, text)?;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_owned(), path.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let registry = if registry == "index.docker.io" { DOCKER_HUB.to_owned() } else { registry };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if !repository.split('/').all(valid_component) {
            return Err(InvalidReference::Repository { reference: text.to_owned(), repository });
        }
        if registry.len() + 1 + repository.len() > MAX_NAME {
            return Err(InvalidReference::TooLong(repository));
        }
        Ok(Self { registry, repository, tag: tag.map(str::to_owned), digest })
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let separator_end = match b {
            b'.' => i + 1,
            b'_' if bytes.get(i + 1) == Some(&b'_') => i + 2,
            b'_' => i + 1,
            b'-' => i + bytes[i..].iter().take_while(|&&c| c == b'-').count(),
            _ => return false,
        };
        if !bytes.get(separator_end).is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return false;
        }
        i = separator_end;
    }
    true
}

fn validate_tag(tag: &str, reference: &str) -> Result<(), InvalidReference> {
    let valid = !tag.is_empty()
        && tag.len() <= MAX_TAG
        && tag.as_bytes()[0].is_ascii_alphanumeric() | (tag.as_bytes()[0] == b'_')
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid { Ok(()) } else { Err(InvalidReference::Tag { reference: reference.to_owned(), tag: tag.to_owned() }) }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parts(text: &str) -> (String, String, Option<String>, Option<String>) {
        let r: Reference = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        (r.registry().into(), r.repository().into(), r.tag().map(Into::into), r.digest().map(ToString::to_string))
    }

    #[test]
    fn docker_normalization() {
        let s = |x: &str| x.to_string();
        assert_eq!(parts("busybox"), (s("docker.io"), s("library/busybox"), None, None));
        assert_eq!(parts("busybox:1.36"), (s("docker.io"), s("library/busybox"), Some(s("1.36")), None));
        assert_eq!(parts("index.docker.io/team/app:v1"), (s("docker.io"), s("team/app"), Some(s("v1")), None));
        assert_eq!(parts("localhost/app"), (s("localhost"), s("app"), None, None));
        assert_eq!(parts("127.0.0.1:5000/a/b/c:t"), (s("127.0.0.1:5000"), s("a/b/c"), Some(s("t")), None));
        assert_eq!(
            parts(&format!("harbor.example.com/proj/app@{D}")),
            (s("harbor.example.com"), s("proj/app"), None, Some(s(D)))
        );
        assert_eq!(parts(&format!("host:5000/app:v2@{D}")), (s("host:5000"), s("app"), Some(s("v2")), Some(s(D))));
        assert_eq!(parts("a__b/c-d--e.f_g"), (s("docker.io"), s("a__b/c-d--e.f_g"), None, None));
    }

    #[test]
    fn round_trips_and_api_host() {
        let r: Reference = "busybox:1".parse().unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:1");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.manifest_reference(), "1");
        let pinned = r.with_digest(D.parse().unwrap());
        assert_eq!(pinned.manifest_reference(), D);
        assert_eq!("host:5000/x".parse::<Reference>().unwrap().manifest_reference(), "latest");
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in [
            "",
            "UPPER",
            "host:5000/Upper/x",
            "a/-b",
            "a/b-",
            "a/b...c",
            "a:",
            "a:-tag",
            "a@sha256:123",
            "a/b//c",
            "a b",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad} should be refused");
        }
        assert!(format!("r.io/{}", "a".repeat(260)).parse::<Reference>().is_err());
    }
}
