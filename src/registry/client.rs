//! An OCI distribution client: manifests by raw bytes, blobs streamed from one registry to
//! another with their digest verified on the way (in `blobs.rs`), cross-repository mounts,
//! retries.
//!
//! Written on reqwest rather than oci-client: imgctl needs what oci-client 0.18 does not give —
//! the manifest's Content-Type with its raw bytes (to push them unchanged), a size cap on
//! manifests, one token for several scopes (a mount needs pull on the source and push on the
//! destination; oci-client asks per repository, oci-client#235), a 202 answer to a mount taken
//! as "upload here instead", retries with Retry-After, and a constant-memory streaming upload
//! without a client-wide switch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use tokio::sync::Mutex;

use super::auth::Authorizer;
use super::body::{self, BodyError};
use super::challenge::Scope;
use super::credentials;
use super::error::RegistryError;
use super::origin::{PlainHttp, authority, same_origin};
use super::retry::{RetryBudget, RetryPolicy, is_retryable_status, parse_retry_after};
use super::watchdog::{Meter, Throughput};
use crate::digest::Digest;
use crate::manifest::{self, Descriptor};
use crate::reference::Reference;

/// Told how many more bytes of a blob went out.
pub type OnBytes = Arc<dyn Fn(u64) + Send + Sync>;

/// A body of bytes, streamed.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A download failed: the registry, or the local sink.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The registry side.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Writing the sink (reading the body is the registry side).
    #[error("writing the blob: {0}")]
    Write(#[source] std::io::Error),
}

/// The largest manifest accepted (distribution's own limit is 4 MiB); referrers answers too.
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// How a client is set up.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Docker's config directory, for credentials.
    pub docker_dir: PathBuf,
    /// Registries reached over plain HTTP (loopback registries always are).
    pub insecure_registries: Vec<String>,
    /// Attempts per operation: every request of one manifest read or one blob copy draws on
    /// the same budget.
    pub retry: RetryPolicy,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// The least every request must move, from sending it to the end of its answer's body
    /// (the `imgctl` commands read it from `IMGCTL_MIN_THROUGHPUT`, see [`Throughput::from_env`]).
    pub min_throughput: Throughput,
    /// Variables of imgctl's environment a credential helper is not given (the one a cosign
    /// key's passphrase was read from); `COSIGN_PASSWORD` is never given to one.
    pub withheld_env: Vec<String>,
}

impl ClientOptions {
    /// The defaults, with credentials from `docker_dir`.
    pub fn new(docker_dir: PathBuf) -> Self {
        Self {
            docker_dir,
            insecure_registries: Vec::new(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(15),
            min_throughput: Throughput::default(),
            withheld_env: Vec::new(),
        }
    }
}

/// A manifest exactly as the registry served it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The raw bytes (their digest is the manifest's identity).
    pub bytes: Vec<u8>,
    /// The media type.
    pub media_type: String,
    /// sha256 of the bytes.
    pub digest: Digest,
}

/// What copying one blob took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobCopy {
    /// The destination had it.
    Present,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Streamed from the source; the bytes sent.
    Uploaded(u64),
}

/// One request of an operation: to whom, for what, on whose retry budget.
pub(super) struct Call<'a> {
    pub reference: &'a Reference,
    pub scopes: &'a [Scope],
    pub method: &'static str,
    pub url: &'a str,
    pub budget: &'a RetryBudget,
    pub sends: Outgoing<'a>,
}

/// What a request sends, as retries and the watchdog see it.
#[derive(Clone, Copy)]
pub(super) enum Outgoing<'a> {
    /// No body.
    Nothing,
    /// A body built anew for each attempt, counted by the meter as it goes out.
    Replayable(&'a Meter),
    /// A body that streams once (a blob from its source), counted by the meter. The request is
    /// not retried here: a transient failure goes back to the caller, which restarts the whole
    /// transfer on the same budget.
    Once(&'a Meter),
}

/// A registry client shared by every copy of a run.
pub struct RegistryClient {
    pub(super) http: reqwest::Client,
    pub(super) options: ClientOptions,
    pub(super) plain_http: PlainHttp,
    authorizers: Mutex<HashMap<String, Arc<Authorizer>>>,
}

impl RegistryClient {
    /// A client with `options`.
    pub fn new(options: ClientOptions) -> Result<Self, RegistryError> {
        // The ring provider for rustls: no C toolchain beyond what ring needs.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("imgctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            // reqwest drops Authorization when a redirect leaves the host (or port or scheme).
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|source| RegistryError::Connection { method: "INIT", url: String::new(), source })?;
        let plain_http = PlainHttp::new(&options.insecure_registries);
        Ok(Self { http, options, plain_http, authorizers: Mutex::new(HashMap::new()) })
    }

    /// `http://registry/` for loopback and insecure registries, else `https://registry/`.
    pub fn registry_url(&self, registry: &str) -> Result<Url, RegistryError> {
        self.plain_http
            .registry_url(registry)
            .ok_or_else(|| RegistryError::InvalidRegistry { registry: registry.to_owned() })
    }

    /// A fresh retry budget for one operation.
    pub(super) fn budget(&self) -> RetryBudget {
        RetryBudget::new(self.options.retry)
    }

    async fn authorizer(&self, registry: &str) -> Result<Arc<Authorizer>, RegistryError> {
        let mut authorizers = self.authorizers.lock().await;
        if let Some(found) = authorizers.get(registry) {
            return Ok(found.clone());
        }
        let docker_dir = self.options.docker_dir.clone();
        let name = registry.to_owned();
        let withheld = self.options.withheld_env.clone();
        // Running a credential helper blocks; keep it off the async workers.
        let (credential, _) =
            tokio::task::spawn_blocking(move || credentials::resolve_withholding(&docker_dir, &name, &withheld))
                .await
                .expect("credential resolution does not panic")?;
        let authorizer =
            Arc::new(Authorizer::new(registry, credential, self.plain_http.clone(), self.options.min_throughput));
        authorizers.insert(registry.to_owned(), authorizer.clone());
        Ok(authorizer)
    }

    /// Sends a request built by `build`, authorized for `scopes` when it goes to the registry's
    /// own origin, answering one 401 of that origin with a fresh token, and retrying transient
    /// failures within the call's budget. A 401 from any other origin is an error: its challenge
    /// would otherwise choose where the registry's credential goes next.
    pub(super) async fn send(
        &self,
        call: Call<'_>,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let Call { reference, scopes, method, url, budget, sends } = call;
        let registry = reference.api_host();
        let origin = self.registry_url(registry)?;
        let target = Url::parse(url)
            .map_err(|_| RegistryError::Protocol { url: url.to_owned(), message: "not a URL".into() })?;
        let credentialed = same_origin(&origin, &target);
        let authorizer = self.authorizer(registry).await?;
        let (meter, replayable) = match sends {
            Outgoing::Nothing => (Meter::default(), true),
            Outgoing::Replayable(meter) => (meter.clone(), true),
            Outgoing::Once(meter) => (meter.clone(), false),
        };
        let retry = |asked| if replayable { budget.next_wait(asked) } else { None };
        let mut reauthorized = false;
        loop {
            let mut request = build(&self.http);
            if credentialed && let Some(header) = authorizer.header(&self.http, scopes).await? {
                request = request.header(AUTHORIZATION, header.expose());
            }
            let wait = match self.options.min_throughput.watch(&meter, request.send()).await {
                Ok(Ok(response)) if response.status() == StatusCode::UNAUTHORIZED => {
                    if !same_origin(&origin, response.url()) {
                        return Err(RegistryError::ForeignChallenge {
                            registry: reference.registry().to_owned(),
                            host: authority(response.url()),
                        });
                    }
                    if reauthorized {
                        return Ok(response);
                    }
                    let Some(header) = response.headers().get(WWW_AUTHENTICATE).and_then(|h| h.to_str().ok()) else {
                        return Err(self.denied(reference, response).await);
                    };
                    authorizer.challenged(header).await?;
                    reauthorized = true;
                    continue;
                }
                Ok(Ok(response)) if is_retryable_status(response.status().as_u16()) => {
                    let asked = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    match retry(asked) {
                        Some(wait) => wait,
                        None => return Err(self.status_error(method, url, response).await),
                    }
                }
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(source)) => {
                    let transient = source.is_connect() || source.is_timeout();
                    match if transient { retry(None) } else { None } {
                        Some(wait) => wait,
                        None => {
                            return Err(RegistryError::Connection {
                                method,
                                url: url.to_owned(),
                                source: source.without_url(),
                            });
                        }
                    }
                }
                Err(source) => match retry(None) {
                    Some(wait) => wait,
                    None => return Err(RegistryError::Stalled { method, url: url.to_owned(), source }),
                },
            };
            tokio::time::sleep(wait).await;
        }
    }

    pub(super) fn repo_url(&self, reference: &Reference, tail: &str) -> Result<String, RegistryError> {
        let base = self.registry_url(reference.api_host())?;
        Ok(format!("{}v2/{}/{tail}", base, reference.repository()))
    }

    /// The manifest `reference` names (its digest if pinned, else its tag), verified: the
    /// bytes hash to the pinned digest and to the digest the registry announced.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        let wanted = reference.manifest_reference();
        let url = self.repo_url(reference, &format!("manifests/{wanted}"))?;
        let accept = manifest::ACCEPTED.join(", ");
        let scopes = [Scope::pull(reference.repository())];
        let budget = self.budget();
        let call =
            Call { reference, scopes: &scopes, method: "GET", url: &url, budget: &budget, sends: Outgoing::Nothing };
        let response = self.send(call, |http| http.get(&url).header(ACCEPT, &accept)).await?;
        let what = format!("manifest {reference}");
        let response = self.expect_success(reference, "GET", &url, response, &what).await?;
        let served_as = content_type(&response);
        let announced = header_digest(&response);
        let bytes = self.read_manifest_body(response, "GET", &url, &what).await?;
        let digest = Digest::sha256_of(&bytes);
        for expected in reference.digest().into_iter().chain(announced.as_ref()) {
            if !expected.matches(&bytes) {
                return Err(RegistryError::DigestMismatch { what, expected: expected.clone(), actual: digest });
            }
        }
        let media_type = manifest::media_type_of(&bytes, &served_as);
        Ok(Manifest { bytes, media_type, digest })
    }

    /// A manifest-sized body: at most [`MAX_MANIFEST`] bytes, under the watchdog.
    async fn read_manifest_body(
        &self,
        response: Response,
        method: &'static str,
        url: &str,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        body::read_capped(response, MAX_MANIFEST, &self.options.min_throughput).await.map_err(|e| match e {
            BodyError::TooLarge(limit) => RegistryError::ManifestTooLarge { what: what.to_owned(), limit },
            BodyError::Stalled(source) => RegistryError::Stalled { method, url: url.to_owned(), source },
            BodyError::Transport(source) => RegistryError::Connection { method, url: url.to_owned(), source },
        })
    }

    /// The digest a tag or digest reference resolves to, or None when the registry has none.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<Digest>, RegistryError> {
        let url = self.repo_url(reference, &format!("manifests/{}", reference.manifest_reference()))?;
        let accept = manifest::ACCEPTED.join(", ");
        let scopes = [Scope::pull(reference.repository())];
        let budget = self.budget();
        let call =
            Call { reference, scopes: &scopes, method: "HEAD", url: &url, budget: &budget, sends: Outgoing::Nothing };
        let response = self.send(call, |http| http.head(&url).header(ACCEPT, &accept)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.expect_success(reference, "HEAD", &url, response, "manifest").await?;
        match header_digest(&response) {
            Some(digest) => Ok(Some(digest)),
            // Registries may omit the header on HEAD: read the bytes.
            None => self.get_manifest(reference).await.map(|m| Some(m.digest)),
        }
    }

    /// Puts `manifest`'s bytes, unchanged, at `target` (a tag or the digest) of `repository`.
    pub async fn put_manifest(
        &self,
        repository: &Reference,
        target: &str,
        manifest: &Manifest,
    ) -> Result<(), RegistryError> {
        let url = self.repo_url(repository, &format!("manifests/{target}"))?;
        let scopes = [Scope::push(repository.repository())];
        let bytes = Bytes::from(manifest.bytes.clone());
        let budget = self.budget();
        let meter = Meter::default();
        let sends = Outgoing::Replayable(&meter);
        let call = Call { reference: repository, scopes: &scopes, method: "PUT", url: &url, budget: &budget, sends };
        let response = self
            .send(call, |http| {
                http.put(&url)
                    .header(CONTENT_TYPE, &manifest.media_type)
                    .header(CONTENT_LENGTH, bytes.len())
                    .body(body::counted(bytes.clone(), meter.clone()))
            })
            .await?;
        let response = self.expect_success(repository, "PUT", &url, response, "manifest").await?;
        if let Some(stored) = header_digest(&response)
            && stored != manifest.digest
        {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest stored at {url}"),
                expected: manifest.digest.clone(),
                actual: stored,
            });
        }
        Ok(())
    }

    /// The manifests that refer to `digest` (signatures, SBOMs) by the referrers API, or None
    /// when the registry does not offer it (distribution 2.8 answers 404).
    pub async fn referrers(
        &self,
        repository: &Reference,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let url = self.repo_url(repository, &format!("referrers/{digest}"))?;
        let scopes = [Scope::pull(repository.repository())];
        let budget = self.budget();
        let call = Call {
            reference: repository,
            scopes: &scopes,
            method: "GET",
            url: &url,
            budget: &budget,
            sends: Outgoing::Nothing,
        };
        let response = self.send(call, |http| http.get(&url).header(ACCEPT, manifest::OCI_INDEX)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.expect_success(repository, "GET", &url, response, "referrers").await?;
        let bytes = self.read_manifest_body(response, "GET", &url, &format!("the referrers of {digest}")).await?;
        match manifest::parse(&bytes, manifest::OCI_INDEX) {
            Ok(manifest::Parsed::Index { manifests }) => Ok(Some(manifests)),
            _ => Err(RegistryError::Protocol { url, message: "the referrers answer is not an image index".into() }),
        }
    }

    pub(super) async fn expect_success(
        &self,
        reference: &Reference,
        method: &'static str,
        url: &str,
        response: Response,
        what: &str,
    ) -> Result<Response, RegistryError> {
        match response.status() {
            s if s.is_success() => Ok(response),
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound { what: what.to_owned() }),
            _ => Err(self.status_or_denied(reference, method, url, response).await),
        }
    }

    pub(super) async fn status_or_denied(
        &self,
        reference: &Reference,
        method: &'static str,
        url: &str,
        response: Response,
    ) -> RegistryError {
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.denied(reference, response).await,
            _ => self.status_error(method, url, response).await,
        }
    }

    async fn denied(&self, reference: &Reference, response: Response) -> RegistryError {
        let status = response.status().as_u16();
        RegistryError::Denied {
            registry: reference.registry().to_owned(),
            repository: reference.repository().to_owned(),
            status,
            message: body::error_message(response, &self.options.min_throughput).await,
        }
    }

    async fn status_error(&self, method: &'static str, url: &str, response: Response) -> RegistryError {
        let status = response.status().as_u16();
        let message = body::error_message(response, &self.options.min_throughput).await;
        RegistryError::Status { method, url: url.to_owned(), status, message }
    }
}

fn content_type(response: &Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
        .unwrap_or_default()
}

fn header_digest(response: &Response) -> Option<Digest> {
    response.headers().get("Docker-Content-Digest")?.to_str().ok()?.parse().ok()
}
