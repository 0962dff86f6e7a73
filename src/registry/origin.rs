//! Where a registry's requests and its credential may go.
//!
//! A request carries the registry's credential only to the registry's own origin: scheme, host
//! and port (default ports filled in), compared on parsed URLs. A textual prefix would let
//! `http://127.0.0.1:47001/` or `http://127.0.0.1:4700@127.0.0.2/` pass for
//! `http://127.0.0.1:4700`. Plain HTTP is spoken only to loopback hosts (an IP literal that is
//! loopback, or `localhost`) and to the hosts named insecure; a token realm, which may be on
//! another host, gets the credential only under the same rule and never with user info in it.

use std::net::IpAddr;

use reqwest::Url;

/// Why a URL a registry named is not followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not an absolute http(s) URL.
    #[error("it is not an http or https URL")]
    NotHttp,
    /// `user:password@` in the URL: a host in disguise, or a credential imgctl did not choose.
    #[error("it carries user info (user@host)")]
    UserInfo,
    /// Plain HTTP to a host that is neither loopback nor named with --insecure-registry.
    #[error("it is plain HTTP to a host that is neither loopback nor named with --insecure-registry")]
    PlainHttp,
}

/// The hosts spoken to over plain HTTP: loopback ones, and those named insecure.
#[derive(Clone, Debug, Default)]
pub struct PlainHttp {
    insecure: Vec<String>,
}

impl PlainHttp {
    /// Plain HTTP for loopback hosts and for `insecure` (`host[:port]` each, as typed).
    pub fn new(insecure: &[String]) -> Self {
        Self { insecure: insecure.to_vec() }
    }

    /// Whether `url`'s host is spoken to over plain HTTP.
    pub fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        is_loopback(host) || self.insecure.iter().any(|named| named.eq_ignore_ascii_case(&authority))
    }

    /// The base URL of `registry` (`host[:port]`): `http://` when plain HTTP is allowed for it,
    /// else `https://`; None when the name is not a host with an optional port.
    pub fn registry_url(&self, registry: &str) -> Option<Url> {
        let mut url = Url::parse(&format!("http://{registry}/")).ok()?;
        let bare = url.username().is_empty()
            && url.password().is_none()
            && url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none();
        if !bare {
            return None;
        }
        if !self.allows(&url) {
            url.set_scheme("https").ok()?;
        }
        Some(url)
    }

    /// Checks a Bearer challenge's `realm` before the credential is sent there: any host, but
    /// no user info, and plain HTTP only where [`PlainHttp::allows`] it.
    pub fn check_realm(&self, realm: &str) -> Result<Url, Refusal> {
        let url = Url::parse(realm).map_err(|_| Refusal::NotHttp)?;
        self.check(url)
    }

    /// Resolves an upload session's `Location` against the URL that answered it (it may be
    /// relative), under the rules of [`PlainHttp::check_realm`].
    pub fn resolve_location(&self, answered: &Url, location: &str) -> Result<Url, Refusal> {
        let url = answered.join(location).map_err(|_| Refusal::NotHttp)?;
        self.check(url)
    }

    fn check(&self, url: Url) -> Result<Url, Refusal> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::UserInfo);
        }
        match url.scheme() {
            "https" => Ok(url),
            "http" if self.allows(&url) => Ok(url),
            "http" => Err(Refusal::PlainHttp),
            _ => Err(Refusal::NotHttp),
        }
    }
}

/// Whether `url` is at `registry`'s origin (scheme, host, port), where its credential may go.
pub fn same_origin(registry: &Url, url: &Url) -> bool {
    registry.origin() == url.origin()
}

/// `host[:port]` of `url`, for messages.
pub fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => String::new(),
    }
}

/// `text` as a URL without its user info, for messages (the user info may be a password).
pub fn redacted(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// Whether a URL's host (as `Url::host_str` gives it: IPv6 literals in brackets) is loopback:
/// an IP literal that is, or `localhost`. A name merely starting with `127.` is not.
fn is_loopback(host: &str) -> bool {
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    match literal.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn loopback_is_an_ip_literal_or_localhost() {
        let plain = PlainHttp::new(&["registry.lan:5000".into()]);
        let scheme = |registry: &str| plain.registry_url(registry).map(|u| u.scheme().to_owned());
        for loopback in ["127.0.0.1:5000", "127.0.0.2", "localhost", "localhost:5000", "[::1]", "[::1]:5000"] {
            assert_eq!(scheme(loopback).as_deref(), Some("http"), "{loopback}");
        }
        for remote in ["127.attacker.example", "127.0.0.1.nip.io:5000", "localhost.example", "registry.lan"] {
            assert_eq!(scheme(remote).as_deref(), Some("https"), "{remote}");
        }
        assert_eq!(scheme("registry.lan:5000").as_deref(), Some("http"), "named insecure");
        assert_eq!(scheme("REGISTRY.lan:5000").as_deref(), Some("http"), "hosts are case-insensitive");
        for broken in ["a:b:c", "user@host", "host/path", "host?q"] {
            assert_eq!(scheme(broken), None, "{broken}");
        }
    }

    #[test]
    fn origins_are_compared_parsed_not_as_text() {
        let registry = url("http://127.0.0.1:4700/");
        assert!(same_origin(&registry, &url("http://127.0.0.1:4700/v2/x/blobs/uploads/abc?_state=s")));
        assert!(!same_origin(&registry, &url("http://127.0.0.1:47001/v2/")));
        assert!(!same_origin(&registry, &url("http://127.0.0.1:4700@127.0.0.2/v2/")));
        assert!(!same_origin(&registry, &url("https://127.0.0.1:4700/v2/")));
        let tls = url("https://reg.example.com/");
        assert!(same_origin(&tls, &url("https://reg.example.com:443/v2/")));
        assert!(!same_origin(&tls, &url("https://reg.example.com.evil.net/v2/")));
    }

    #[test]
    fn upload_locations_resolve_and_refuse_user_info() {
        let plain = PlainHttp::default();
        let answered = url("https://reg.example.com/v2/app/blobs/uploads/");
        let resolve = |location: &str| plain.resolve_location(&answered, location).map(|u| u.to_string());
        assert_eq!(
            resolve("/v2/app/blobs/uploads/u1?_state=s").unwrap(),
            "https://reg.example.com/v2/app/blobs/uploads/u1?_state=s"
        );
        assert_eq!(resolve("u2").unwrap(), "https://reg.example.com/v2/app/blobs/uploads/u2");
        assert_eq!(resolve("https://storage.example.net/u3").unwrap(), "https://storage.example.net/u3");
        assert_eq!(resolve("https://reg.example.com@evil.net/u4"), Err(Refusal::UserInfo));
        assert_eq!(resolve("http://storage.example.net/u5"), Err(Refusal::PlainHttp));
        assert_eq!(resolve("ftp://storage.example.net/u6"), Err(Refusal::NotHttp));
    }

    #[test]
    fn realms_may_be_elsewhere_but_never_weaker_or_with_user_info() {
        let plain = PlainHttp::new(&["registry.lan:5000".into()]);
        assert!(plain.check_realm("https://auth.docker.io/token").is_ok());
        assert!(plain.check_realm("http://127.0.0.1:5001/token").is_ok());
        assert!(plain.check_realm("http://registry.lan:5000/token").is_ok());
        assert_eq!(plain.check_realm("http://auth.example.com/token"), Err(Refusal::PlainHttp));
        assert_eq!(plain.check_realm("http://registry.lan:5001/token"), Err(Refusal::PlainHttp));
        assert_eq!(plain.check_realm("https://u:p@auth.example.com/token"), Err(Refusal::UserInfo));
        assert_eq!(plain.check_realm("/token"), Err(Refusal::NotHttp));
        assert_eq!(redacted("https://u:p@auth.example.com/token"), "https://auth.example.com/token");
    }
}
