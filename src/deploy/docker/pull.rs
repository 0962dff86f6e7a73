//! Pulling an image onto the engine, with the registry's credentials sent as
//! `X-Registry-Auth`, and the engine's progress as lines.

use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use super::{DockerEngine, EngineError};
use crate::reference::Reference;
use crate::registry::credentials::RegistryCredential;

/// Registry credentials for a pull, sent as `X-Registry-Auth` (bollard's `DockerCredentials`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullAuth {
    /// The registry's server address as docker uses it (e.g. `127.0.0.1:5000`, or
    /// `https://index.docker.io/v1/`).
    pub server: String,
    /// Username and password, or an identity token.
    pub credential: RegistryCredential,
}

impl DockerEngine {
    /// Whether the engine has IMAGE (`repo@sha256:...`) locally.
    pub async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(self.fail(format!("inspect image {image}"), e)),
        }
    }

    /// Pulls IMAGE (`repo@sha256:...`) unless the engine has it already, calling `progress`
    /// with each status line. The whole stream is consumed: an error inside it (the engine
    /// answers 200 and reports a failure later) is [`EngineError::PullFailed`] too.
    pub async fn pull(
        &self,
        image: &str,
        auth: Option<&PullAuth>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), EngineError> {
        if self.has_image(image).await? {
            return Ok(());
        }
        let failed = |message: String| EngineError::PullFailed { image: image.to_owned(), message };
        let reference: Reference = image.parse().map_err(|e| failed(format!("not an image reference: {e}")))?;
        // As the docker CLI sends it: a name, and the digest (or tag) apart. A bare name with
        // neither would make the engine pull every tag of the repository.
        let options = CreateImageOptionsBuilder::default()
            .from_image(&reference.name())
            .tag(&reference.manifest_reference())
            .build();
        let mut stream = self.docker.create_image(Some(options), None, auth.and_then(PullAuth::docker_credentials));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(line) = progress_line(&info) {
                        progress(&line);
                    }
                }
                Err(BollardError::DockerStreamError { error }) => return Err(failed(error)),
                Err(BollardError::DockerResponseServerError { message, .. }) => return Err(failed(message)),
                Err(e) => return Err(self.fail(format!("pull {image}"), e)),
            }
        }
        Ok(())
    }
}

impl PullAuth {
    /// The `X-Registry-Auth` payload; `None` for anonymous pulls (no header at all).
    ///
    /// bollard takes it by value and serializes it into strings of its own (the JSON, then the
    /// base64 header), which it frees unwiped; no caller can wipe them. So it is built at the
    /// call and moved straight into bollard: imgctl keeps no copy of the secret besides its
    /// [`Secret`](crate::credential::Secret).
    pub(in crate::deploy) fn docker_credentials(&self) -> Option<DockerCredentials> {
        let serveraddress = Some(self.server.clone());
        match &self.credential {
            RegistryCredential::Anonymous => None,
            RegistryCredential::Basic { username, password } => Some(DockerCredentials {
                username: Some(username.clone()),
                password: Some(password.expose().to_owned()),
                serveraddress,
                ..Default::default()
            }),
            RegistryCredential::IdentityToken(token) => Some(DockerCredentials {
                identitytoken: Some(token.expose().to_owned()),
                serveraddress,
                ..Default::default()
            }),
        }
    }
}

/// `<layer>: <status> (<current>/<total>)`, or `None` for an item without a status.
fn progress_line(info: &bollard::models::CreateImageInfo) -> Option<String> {
    let status = info.status.as_deref()?;
    let mut line = match info.id.as_deref() {
        Some(id) if !id.is_empty() => format!("{id}: {status}"),
        _ => status.to_owned(),
    };
    if let Some(detail) = &info.progress_detail
        && let (Some(current), Some(total)) = (detail.current, detail.total)
        && total > 0
    {
        line.push_str(&format!(" ({current}/{total} bytes)"));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::Secret;

    #[test]
    fn credentials_go_to_the_engine_but_never_into_debug() {
        let auth = PullAuth {
            server: "127.0.0.1:5000".into(),
            credential: RegistryCredential::Basic { username: "ci".into(), password: Secret::new("hunter2".into()) },
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        let sent = auth.docker_credentials().unwrap();
        assert_eq!(
            (sent.username.as_deref(), sent.password.as_deref(), sent.serveraddress.as_deref()),
            (Some("ci"), Some("hunter2"), Some("127.0.0.1:5000"))
        );
        let token = PullAuth { credential: RegistryCredential::IdentityToken(Secret::new("t0k".into())), ..auth };
        let sent = token.docker_credentials().unwrap();
        assert_eq!((sent.identitytoken.as_deref(), sent.password), (Some("t0k"), None));
        let anonymous = PullAuth { credential: RegistryCredential::Anonymous, ..token };
        assert_eq!(anonymous.docker_credentials(), None);
    }

    #[test]
    fn progress_lines_name_the_layer_and_bytes() {
        let info = bollard::models::CreateImageInfo {
            id: Some("a1b2".into()),
            status: Some("Downloading".into()),
            progress_detail: Some(bollard::models::ProgressDetail { current: Some(10), total: Some(20) }),
            ..Default::default()
        };
        assert_eq!(progress_line(&info).as_deref(), Some("a1b2: Downloading (10/20 bytes)"));
        let bare = bollard::models::CreateImageInfo { status: Some("Pulling from web".into()), ..Default::default() };
        assert_eq!(progress_line(&bare).as_deref(), Some("Pulling from web"));
        assert_eq!(progress_line(&Default::default()), None);
    }
}
