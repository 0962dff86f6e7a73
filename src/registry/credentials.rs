//! Which credential to send to a registry, resolved as docker resolves it.
//!
//! docker/cli (`configfile.GetCredentialsStore`, `GetAuthConfig`): `DOCKER_AUTH_CONFIG` first
//! for the registries it lists, then `credHelpers[registry]`, then `credsStore`, then the
//! plaintext `auths` of config.json. A helper is `docker-credential-<name> get` with the server
//! URL on stdin; imgctl's own store is read directly instead of through its helper process.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::credential::backend::{self, BackendError};
use crate::credential::{
    Credential, DOCKER_HUB_SERVER, IDENTITY_TOKEN_USERNAME, InvalidServerUrl, RegistryKey, Secret, Store, StoreError,
};
use crate::docker_config::{DockerConfig, DockerConfigError, HELPER_NAME, PlaintextAuth};

/// What to present to a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryCredential {
    /// Nothing configured: anonymous (a registry may still hand out anonymous tokens).
    Anonymous,
    /// Username and password (Basic, or exchanged for a Bearer token).
    Basic {
        /// The username.
        username: String,
        /// The password or access token.
        password: Secret,
    },
    /// An OAuth refresh token (docker's `<token>` username), exchanged for access tokens.
    IdentityToken(Secret),
}

/// Where the credential came from, for messages and audit records (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "name")]
pub enum CredentialSource {
    /// `DOCKER_AUTH_CONFIG`.
    Environment,
    /// A `credHelpers` entry naming this helper.
    CredHelper(String),
    /// `credsStore` naming this helper.
    CredsStore(String),
    /// Plaintext `auths` in config.json.
    ConfigFile,
    /// Nothing matched.
    None,
}

/// A credential could not be resolved (distinct from "none configured", which is anonymous).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The registry name is not a registry.
    #[error(transparent)]
    InvalidRegistry(#[from] InvalidServerUrl),
    /// config.json or `DOCKER_AUTH_CONFIG` is unreadable.
    #[error(transparent)]
    DockerConfig(#[from] DockerConfigError),
    /// A `docker-credential-*` helper failed (not a miss).
    #[error("docker-credential-{helper} get {server}: {message}")]
    Helper {
        /// The helper's name.
        helper: String,
        /// The server asked for.
        server: String,
        /// Its one-line answer, or why it could not run.
        message: String,
    },
    /// imgctl's own store failed.
    #[error("imgctl's credential store: {0}")]
    Store(#[from] StoreError),
    /// imgctl's backend could not be chosen.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// `auths` holds an entry for the registry that does not decode.
    #[error("config.json holds an unreadable credential for {server}: {reason}")]
    Unreadable {
        /// The `auths` key.
        server: String,
        /// What is wrong (never the value).
        reason: &'static str,
    },
}

/// The server URL docker stores a registry's credential under: Docker Hub's v1 URL, else the
/// host (`registry` is a reference's registry, e.g. `docker.io` or `host:5000`).
pub fn server_url_for(registry: &str) -> String {
    match RegistryKey::parse(registry) {
        Ok(key) if key.as_str() == DOCKER_HUB_SERVER => DOCKER_HUB_SERVER.to_owned(),
        _ => registry.to_owned(),
    }
}

/// Resolves the credential for `registry` from docker's configuration in `docker_dir` and the
/// process environment (`DOCKER_AUTH_CONFIG`, PATH for helpers).
pub fn resolve(docker_dir: &Path, registry: &str) -> Result<(RegistryCredential, CredentialSource), ResolveError> {
    resolve_withholding(docker_dir, registry, &[])
}

/// [`resolve`], with a credential helper given imgctl's environment less `withheld` (and less
/// `COSIGN_PASSWORD`): a passphrase imgctl read from a variable never reaches a third party's
/// program, nor anything that program starts.
pub fn resolve_withholding(
    docker_dir: &Path,
    registry: &str,
    withheld: &[String],
) -> Result<(RegistryCredential, CredentialSource), ResolveError> {
    let key = RegistryKey::parse(registry)?;
    let server = server_url_for(registry);
    if let Ok(text) = std::env::var("DOCKER_AUTH_CONFIG")
        && !text.trim().is_empty()
    {
        let config = DockerConfig::from_json(Path::new("DOCKER_AUTH_CONFIG"), &text)?;
        if let Some(found) = config.plaintext_auth_for(&key) {
            return Ok((plaintext(found)?, CredentialSource::Environment));
        }
    }
    let config = DockerConfig::load(docker_dir)?;
    if let Some(helper) = config.cred_helper_for(&key) {
        let helper = helper.to_owned();
        return Ok((from_helper(&helper, &server, withheld)?, CredentialSource::CredHelper(helper)));
    }
    if let Some(helper) = config.creds_store().filter(|h| !h.is_empty()) {
        let helper = helper.to_owned();
        return Ok((from_helper(&helper, &server, withheld)?, CredentialSource::CredsStore(helper)));
    }
    match config.plaintext_auth_for(&key) {
        Some(found) => Ok((plaintext(found)?, CredentialSource::ConfigFile)),
        None => Ok((RegistryCredential::Anonymous, CredentialSource::None)),
    }
}

fn plaintext(found: PlaintextAuth) -> Result<RegistryCredential, ResolveError> {
    match found {
        PlaintextAuth::Credential(credential) => Ok(from_credential(credential)),
        PlaintextAuth::Unreadable { server_url, reason } => {
            Err(ResolveError::Unreadable { server: server_url, reason })
        }
    }
}

fn from_credential(credential: Credential) -> RegistryCredential {
    if credential.username == IDENTITY_TOKEN_USERNAME {
        RegistryCredential::IdentityToken(credential.secret)
    } else {
        RegistryCredential::Basic { username: credential.username, password: credential.secret }
    }
}

/// The variable cosign reads a key's passphrase from: never given to a credential helper.
const COSIGN_PASSWORD: &str = "COSIGN_PASSWORD";

fn from_helper(helper: &str, server: &str, withheld: &[String]) -> Result<RegistryCredential, ResolveError> {
    if helper == HELPER_NAME {
        let selection = backend::open_from_env()?;
        return match selection.store.get(server) {
            Ok(credential) => Ok(from_credential(credential)),
            Err(StoreError::NotFound) => Ok(RegistryCredential::Anonymous),
            Err(e) => Err(e.into()),
        };
    }
    let failed =
        |message: String| ResolveError::Helper { helper: helper.to_owned(), server: server.to_owned(), message };
    let program = format!("docker-credential-{helper}");
    let mut command = Command::new(&program);
    command.env_remove(COSIGN_PASSWORD);
    for name in withheld {
        command.env_remove(name);
    }
    let mut child = command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| failed(format!("cannot run {program}: {e}")))?;
    child.stdin.take().expect("piped").write_all(server.as_bytes()).map_err(|e| failed(e.to_string()))?;
    let output = child.wait_with_output().map_err(|e| failed(e.to_string()))?;
    let stdout = zeroize::Zeroizing::new(output.stdout);
    if !output.status.success() {
        let message = String::from_utf8_lossy(&stdout).trim().to_owned();
        // docker/cli's rule: only this exact answer means "no credential".
        if message == StoreError::NotFound.to_string() {
            return Ok(RegistryCredential::Anonymous);
        }
        return Err(failed(message));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: Secret,
    }
    // serde's message could quote the answer, which holds the secret.
    let answer: Answer = serde_json::from_slice(&stdout)
        .map_err(|_| failed("answered with something that is not credential JSON".into()))?;
    // docker-credential-pass answers a miss with empty fields and exit 0.
    if answer.username.is_empty() && answer.secret.is_empty() {
        return Ok(RegistryCredential::Anonymous);
    }
    Ok(from_credential(Credential { server_url: server.to_owned(), username: answer.username, secret: answer.secret }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_is_asked_for_under_its_v1_url() {
        assert_eq!(server_url_for("docker.io"), DOCKER_HUB_SERVER);
        assert_eq!(server_url_for("registry-1.docker.io"), DOCKER_HUB_SERVER);
        assert_eq!(server_url_for("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
