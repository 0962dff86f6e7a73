//! Which registry a server URL names, whatever its spelling.
//!
//! docker/cli and other clients spell one registry several ways: `docker login host:5000` stores
//! under `host:5000`, `docker logout` erases `host:5000`, `http://host:5000` and `https://host:5000`,
//! third-party clients send `https://host:5000/` or `https://host:5000/v2/`. Docker Hub is stored
//! under `https://index.docker.io/v1/` but reached as `docker.io` or `registry-1.docker.io`. The
//! helpers imgctl replaces match the string exactly, so a lookup under another spelling misses.
//! A [`RegistryKey`] is the one spelling every lookup is made under.

use std::fmt;

/// The key Docker Hub credentials are stored under, as docker/cli writes it.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// Host names that all mean Docker Hub (docker/cli `registry.IndexHostname` and its aliases).
const DOCKER_HUB_HOSTS: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"];

/// The canonical name of a registry (or of a path-scoped entry such as Docker Hub's
/// `https://index.docker.io/v1/access-token`), used as the lookup key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegistryKey(String);

/// A server URL that names no registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidServerUrl {
    /// The URL is empty or only whitespace.
    #[error("no credentials server URL")]
    Empty,
    /// The URL has no host part, or a host with characters no host name has.
    #[error("invalid server URL {0:?}: expected a registry host such as registry.example.com:5000")]
    BadHost(String),
}

impl RegistryKey {
    /// Normalizes a server URL: the scheme (`http`/`https`) and a trailing `/`, `/v1/` or `/v2/`
    /// are dropped, the host is lower-cased, Docker Hub aliases become
    /// [`DOCKER_HUB_SERVER`]. Any other path is kept, so distinct entries stay distinct.
    pub fn parse(server_url: &str) -> Result<Self, InvalidServerUrl> {
        let trimmed = server_url.trim();
        if trimmed.is_empty() {
            return Err(InvalidServerUrl::Empty);
        }
        let without_scheme = strip_scheme(trimmed);
        let (host, path) = match without_scheme.split_once('/') {
            Some((host, path)) => (host, path.trim_matches('/')),
            None => (without_scheme, ""),
        };
        let host = host.to_ascii_lowercase();
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control() || "\\\"'<>@?#".contains(c)) {
            return Err(InvalidServerUrl::BadHost(trimmed.to_owned()));
        }
        let path = match path {
            "v1" | "v2" => "",
            other => other,
        };
        if DOCKER_HUB_HOSTS.contains(&host.as_str()) {
            let path = path.strip_prefix("v1/").unwrap_or(path);
            return Ok(Self(format!("{DOCKER_HUB_SERVER}{path}")));
        }
        Ok(Self(if path.is_empty() { host } else { format!("{host}/{path}") }))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegistryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn strip_scheme(url: &str) -> &str {
    for scheme in ["https://", "http://"] {
        if url.get(..scheme.len()).is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme)) {
            return &url[scheme.len()..];
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_registry_share_a_key() {
        let cases = [
            ("host:5000", "host:5000"),
            ("https://host:5000", "host:5000"),
            ("https://host:5000/", "host:5000"),
            ("http://host:5000", "host:5000"),
            ("HTTPS://Host:5000/v2/", "host:5000"),
            ("  host:5000\n", "host:5000"),
            ("docker.io", DOCKER_HUB_SERVER),
            ("index.docker.io", DOCKER_HUB_SERVER),
            ("registry-1.docker.io", DOCKER_HUB_SERVER),
            ("https://index.docker.io/v1/", DOCKER_HUB_SERVER),
            ("https://index.docker.io/v1", DOCKER_HUB_SERVER),
            ("ghcr.io", "ghcr.io"),
        ];
        for (input, key) in cases {
            assert_eq!(RegistryKey::parse(input).unwrap().as_str(), key, "{input}");
        }
    }

    #[test]
    fn docker_hub_token_entries_stay_distinct() {
        let access = RegistryKey::parse("https://index.docker.io/v1/access-token").unwrap();
        let refresh = RegistryKey::parse("https://index.docker.io/v1/refresh-token").unwrap();
        assert_eq!(access.as_str(), "https://index.docker.io/v1/access-token");
        assert_ne!(access, refresh);
        assert_ne!(access, RegistryKey::parse("docker.io").unwrap());
    }

    #[test]
    fn paths_other_than_api_versions_are_kept() {
        let project = RegistryKey::parse("https://harbor.example.com/project-a/").unwrap();
        assert_eq!(project.as_str(), "harbor.example.com/project-a");
        assert_ne!(project, RegistryKey::parse("harbor.example.com").unwrap());
    }

    #[test]
    fn non_ascii_never_panics() {
        for input in ["é", "ghcr.ioé", "httpé://x", "https:/é", "🔐🔐🔐🔐🔐🔐🔐🔐"] {
            let _ = RegistryKey::parse(input);
        }
        assert_eq!(RegistryKey::parse("Bücher.example").unwrap().as_str(), "bücher.example".to_ascii_lowercase());
    }

    #[test]
    fn urls_naming_no_host_are_refused() {
        assert_eq!(RegistryKey::parse(" \n"), Err(InvalidServerUrl::Empty));
        assert!(matches!(RegistryKey::parse("https:///v2/"), Err(InvalidServerUrl::BadHost(_))));
        assert!(matches!(RegistryKey::parse("a b"), Err(InvalidServerUrl::BadHost(_))));
        assert!(matches!(RegistryKey::parse("user@host"), Err(InvalidServerUrl::BadHost(_))));
    }
}
