//! How a registry asks for credentials: the `WWW-Authenticate` header of a 401, and the token
//! request scopes answered to a Bearer challenge (distribution's token auth spec).

use std::collections::BTreeMap;

/// One authentication challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// Send `Authorization: Basic` with the username and password.
    Basic,
    /// Get a token from `realm` (with `service`, and the scopes wanted) and send it as Bearer.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass back.
        service: Option<String>,
        /// The scope the registry named for this request, if any.
        scope: Option<String>,
    },
}

/// A `WWW-Authenticate` header imgctl cannot act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidChallenge {
    /// Neither Basic nor Bearer.
    #[error("the registry asks for {0:?} authentication; imgctl speaks Basic and Bearer")]
    UnsupportedScheme(String),
    /// A Bearer challenge without a realm, or broken quoting.
    #[error("malformed WWW-Authenticate header: {0}")]
    Malformed(&'static str),
}

impl Challenge {
    /// Parses a `WWW-Authenticate` header value (`Bearer realm="…",service="…",scope="…"`).
    pub fn parse(header: &str) -> Result<Self, InvalidChallenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Ok(Self::Basic),
            "bearer" => {
                let mut params = parse_params(rest)?;
                let realm = params.remove("realm").ok_or(InvalidChallenge::Malformed("Bearer without realm"))?;
                Ok(Self::Bearer { realm, service: params.remove("service"), scope: params.remove("scope") })
            }
            other => Err(InvalidChallenge::UnsupportedScheme(other.to_owned())),
        }
    }
}

/// `key=value` and `key="quoted, \"escaped\""` pairs separated by commas; keys lower-cased.
fn parse_params(text: &str) -> Result<BTreeMap<String, String>, InvalidChallenge> {
    let mut params = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_ascii_lowercase();
        if key.is_empty() {
            return Ok(params);
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().ok_or(InvalidChallenge::Malformed("dangling escape"))?),
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(InvalidChallenge::Malformed("unterminated quoted value")),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        params.insert(key, value);
    }
}

/// What a token may do in one repository (`repository:<name>:<actions>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    /// The repository path.
    pub repository: String,
    /// `pull`, or `pull,push`.
    pub push: bool,
}

impl Scope {
    /// Read access to `repository`.
    pub fn pull(repository: &str) -> Self {
        Self { repository: repository.to_owned(), push: false }
    }

    /// Read and write access to `repository`.
    pub fn push(repository: &str) -> Self {
        Self { repository: repository.to_owned(), push: true }
    }

    /// The scope as the token endpoint takes it.
    pub fn to_param(&self) -> String {
        format!("repository:{}:{}", self.repository, if self.push { "pull,push" } else { "pull" })
    }
}

/// The query of a token request for all `scopes` at once: one token authorizes a
/// cross-repository mount only when it carries pull on the source and push on the destination.
pub fn token_query(service: Option<&str>, scopes: &[Scope]) -> Vec<(&'static str, String)> {
    let mut query: Vec<(&'static str, String)> = service.map(|s| ("service", s.to_owned())).into_iter().collect();
    query.extend(scopes.iter().map(|scope| ("scope", scope.to_param())));
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_and_harbor_challenges() {
        let hub = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            Challenge::parse(hub).unwrap(),
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }
        );
        let harbor = r#"Bearer realm="https://harbor.example.com/service/token",service="harbor-registry""#;
        assert!(matches!(Challenge::parse(harbor).unwrap(), Challenge::Bearer { scope: None, .. }));
        assert_eq!(Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap(), Challenge::Basic);
    }

    #[test]
    fn quoting_and_odd_spacing() {
        let odd = r#"bearer  Realm="http://127.0.0.1:1/t?a=b,c" , service=plain , scope="x:\"y\":pull""#;
        let Challenge::Bearer { realm, service, scope } = Challenge::parse(odd).unwrap() else { panic!() };
        assert_eq!(
            (realm.as_str(), service.as_deref(), scope.as_deref()),
            ("http://127.0.0.1:1/t?a=b,c", Some("plain"), Some(r#"x:"y":pull"#))
        );
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        assert!(matches!(Challenge::parse("Negotiate abc"), Err(InvalidChallenge::UnsupportedScheme(_))));
        assert!(matches!(Challenge::parse(r#"Bearer service="x""#), Err(InvalidChallenge::Malformed(_))));
        assert!(matches!(Challenge::parse(r#"Bearer realm="open"#), Err(InvalidChallenge::Malformed(_))));
    }

    #[test]
    fn one_token_request_for_several_scopes() {
        let query = token_query(Some("harbor-registry"), &[Scope::pull("staging/app"), Scope::push("prod/app")]);
        assert_eq!(
            query,
            vec![
                ("service", "harbor-registry".to_string()),
                ("scope", "repository:staging/app:pull".to_string()),
                ("scope", "repository:prod/app:pull,push".to_string()),
            ]
        );
    }
}
