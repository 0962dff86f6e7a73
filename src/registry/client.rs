//! An OCI distribution client: manifests by raw bytes, blobs streamed from one registry to
//! another with their digest verified on the way, cross-repository mounts, retries.
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
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::sync::Mutex;

use super::auth::Authorizer;
use super::challenge::Scope;
use super::credentials;
use super::error::RegistryError;
use super::retry::{RetryPolicy, is_retryable_status, parse_retry_after};
use crate::digest::{Digest, DigestHasher};
use crate::manifest::{self, Descriptor};
use crate::reference::Reference;

/// An upload session a registry opened: where to PUT the bytes, with which token scopes.
struct UploadSession<'a> {
    destination: &'a Reference,
    scopes: &'a [Scope],
    location: &'a str,
}

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
    /// Reading the body or writing the sink.
    #[error("writing the blob: {0}")]
    Write(#[source] std::io::Error),
}

/// The largest manifest accepted (distribution's own limit is 4 MiB).
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// How a client is set up.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Docker's config directory, for credentials.
    pub docker_dir: PathBuf,
    /// Registries reached over plain HTTP (loopback registries always are).
    pub insecure_registries: Vec<String>,
    /// Retries of failed requests.
    pub retry: RetryPolicy,
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

/// A registry client shared by every copy of a run.
pub struct RegistryClient {
    http: reqwest::Client,
    options: ClientOptions,
    authorizers: Mutex<HashMap<String, Arc<Authorizer>>>,
}

impl RegistryClient {
    /// A client with `options`.
    pub fn new(options: ClientOptions) -> Result<Self, RegistryError> {
        // The ring provider for rustls: no C toolchain beyond what ring needs.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("imgctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            // reqwest drops Authorization when a redirect leaves the host (or port or scheme).
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|source| RegistryError::Connection { method: "INIT", url: String::new(), source })?;
        Ok(Self { http, options, authorizers: Mutex::new(HashMap::new()) })
    }

    /// `http://` for loopback and insecure registries, else `https://`.
    pub fn base_url(&self, registry: &str) -> String {
        let host = registry.rsplit_once(':').map_or(registry, |(host, _)| host);
        let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
        let insecure = loopback || self.options.insecure_registries.iter().any(|r| r == registry);
        format!("{}://{}", if insecure { "http" } else { "https" }, registry)
    }

    async fn authorizer(&self, registry: &str) -> Result<Arc<Authorizer>, RegistryError> {
        let mut authorizers = self.authorizers.lock().await;
        if let Some(found) = authorizers.get(registry) {
            return Ok(found.clone());
        }
        let docker_dir = self.options.docker_dir.clone();
        let name = registry.to_owned();
        // Running a credential helper blocks; keep it off the async workers.
        let (credential, _) = tokio::task::spawn_blocking(move || credentials::resolve(&docker_dir, &name))
            .await
            .expect("credential resolution does not panic")?;
        let authorizer = Arc::new(Authorizer::new(registry, credential));
        authorizers.insert(registry.to_owned(), authorizer.clone());
        Ok(authorizer)
    }

    /// Sends a request built by `build`, authorized for `scopes` at `reference`'s registry,
    /// answering one 401 with a fresh token and retrying transient failures.
    async fn send(
        &self,
        reference: &Reference,
        scopes: &[Scope],
        method: &'static str,
        url: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let registry = reference.api_host();
        let authorizer = self.authorizer(registry).await?;
        let same_host = url.starts_with(&self.base_url(registry));
        let mut reauthorized = false;
        let mut retry = 0;
        loop {
            let mut request = build(&self.http);
            if same_host && let Some(header) = authorizer.header(&self.http, scopes).await? {
                request = request.header(AUTHORIZATION, header.expose());
            }
            let outcome = request.send().await;
            let wait = match outcome {
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !reauthorized => {
                    let Some(header) = response.headers().get(WWW_AUTHENTICATE).and_then(|h| h.to_str().ok()) else {
                        return Err(denied(reference, response).await);
                    };
                    authorizer.challenged(header).await?;
                    reauthorized = true;
                    continue;
                }
                Ok(response) if is_retryable_status(response.status().as_u16()) => {
                    let asked = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    match self.options.retry.delay(retry, asked, jitter()) {
                        Some(wait) => wait,
                        None => return Err(status_error(method, url, response).await),
                    }
                }
                Ok(response) => return Ok(response),
                Err(source) => {
                    let transient = source.is_connect() || source.is_timeout();
                    match self.options.retry.delay(retry, None, jitter()) {
                        Some(wait) if transient => wait,
                        _ => {
                            return Err(RegistryError::Connection {
                                method,
                                url: url.to_owned(),
                                source: source.without_url(),
                            });
                        }
                    }
                }
            };
            retry += 1;
            tokio::time::sleep(wait).await;
        }
    }

    fn repo_url(&self, reference: &Reference, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base_url(reference.api_host()), reference.repository())
    }

    /// The manifest `reference` names (its digest if pinned, else its tag), verified: the
    /// bytes hash to the pinned digest and to the digest the registry announced.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        let wanted = reference.manifest_reference();
        let url = self.repo_url(reference, &format!("manifests/{wanted}"));
        let accept = manifest::ACCEPTED.join(", ");
        let scopes = [Scope::pull(reference.repository())];
        let response =
            self.send(reference, &scopes, "GET", &url, |http| http.get(&url).header(ACCEPT, &accept)).await?;
        let what = format!("manifest {reference}");
        let response = expect_success(reference, "GET", &url, response, &what).await?;
        let served_as = content_type(&response);
        let announced = header_digest(&response);
        if response.content_length().is_some_and(|n| n > MAX_MANIFEST as u64) {
            return Err(RegistryError::ManifestTooLarge { what, limit: MAX_MANIFEST });
        }
        let mut bytes = Vec::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|source| RegistryError::Connection { method: "GET", url: url.clone(), source })?;
            if bytes.len() + chunk.len() > MAX_MANIFEST {
                return Err(RegistryError::ManifestTooLarge { what, limit: MAX_MANIFEST });
            }
            bytes.extend_from_slice(&chunk);
        }
        let digest = Digest::sha256_of(&bytes);
        for expected in reference.digest().into_iter().chain(announced.as_ref()) {
            if !expected.matches(&bytes) {
                return Err(RegistryError::DigestMismatch { what, expected: expected.clone(), actual: digest });
            }
        }
        let media_type = manifest::media_type_of(&bytes, &served_as);
        Ok(Manifest { bytes, media_type, digest })
    }

    /// The digest a tag or digest reference resolves to, or None when the registry has none.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<Digest>, RegistryError> {
        let url = self.repo_url(reference, &format!("manifests/{}", reference.manifest_reference()));
        let accept = manifest::ACCEPTED.join(", ");
        let scopes = [Scope::pull(reference.repository())];
        let response =
            self.send(reference, &scopes, "HEAD", &url, |http| http.head(&url).header(ACCEPT, &accept)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = expect_success(reference, "HEAD", &url, response, "manifest").await?;
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
        let url = self.repo_url(repository, &format!("manifests/{target}"));
        let scopes = [Scope::push(repository.repository())];
        let body = Bytes::from(manifest.bytes.clone());
        let response = self
            .send(repository, &scopes, "PUT", &url, |http| {
                http.put(&url).header(CONTENT_TYPE, &manifest.media_type).body(body.clone())
            })
            .await?;
        let response = expect_success(repository, "PUT", &url, response, "manifest").await?;
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
        let url = self.repo_url(repository, &format!("referrers/{digest}"));
        let scopes = [Scope::pull(repository.repository())];
        let response = self
            .send(repository, &scopes, "GET", &url, |http| http.get(&url).header(ACCEPT, manifest::OCI_INDEX))
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = expect_success(repository, "GET", &url, response, "referrers").await?;
        let bytes = response.bytes().await.map_err(|source| RegistryError::Connection {
            method: "GET",
            url: url.clone(),
            source,
        })?;
        match manifest::parse(&bytes, manifest::OCI_INDEX) {
            Ok(manifest::Parsed::Index { manifests }) => Ok(Some(manifests)),
            _ => Err(RegistryError::Protocol { url, message: "the referrers answer is not an image index".into() }),
        }
    }

    /// Whether `repository` holds blob `digest`.
    pub async fn blob_exists(&self, repository: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.repo_url(repository, &format!("blobs/{digest}"));
        let scopes = [Scope::pull(repository.repository())];
        let response = self.send(repository, &scopes, "HEAD", &url, |http| http.head(&url)).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_or_denied(repository, "HEAD", &url, response).await),
        }
    }

    /// Copies blob `blob` from `source` to `destination`: nothing when it is there, a mount
    /// within one registry, else a stream from GET to PUT whose sha256 is checked on the way.
    /// A transient failure restarts the whole transfer (a streamed body cannot be replayed).
    pub async fn copy_blob(
        &self,
        source: &Reference,
        destination: &Reference,
        blob: &Descriptor,
        on_bytes: OnBytes,
    ) -> Result<BlobCopy, RegistryError> {
        if self.blob_exists(destination, &blob.digest).await? {
            return Ok(BlobCopy::Present);
        }
        let mut retry = 0;
        loop {
            match self.transfer_blob(source, destination, blob, on_bytes.clone()).await {
                Err(e) if e.is_transient() => match self.options.retry.delay(retry, None, jitter()) {
                    Some(wait) => {
                        retry += 1;
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    async fn transfer_blob(
        &self,
        source: &Reference,
        destination: &Reference,
        blob: &Descriptor,
        on_bytes: OnBytes,
    ) -> Result<BlobCopy, RegistryError> {
        let same_registry =
            source.api_host() == destination.api_host() && source.repository() != destination.repository();
        let mut scopes = vec![Scope::push(destination.repository())];
        let mut start = self.repo_url(destination, "blobs/uploads/");
        if same_registry {
            scopes.push(Scope::pull(source.repository()));
            start = format!("{start}?mount={}&from={}", blob.digest, source.repository());
        }
        let response = self
            .send(destination, &scopes, "POST", &start, |http| http.post(&start).header(CONTENT_LENGTH, "0"))
            .await?;
        let location = match response.status() {
            StatusCode::CREATED if same_registry => return Ok(BlobCopy::Mounted),
            // 202: no mount (or not asked for); the upload session to use instead.
            StatusCode::ACCEPTED => upload_location(&self.base_url(destination.api_host()), &start, &response)?,
            _ => return Err(status_or_denied(destination, "POST", &start, response).await),
        };

        let what = format!("blob {} of {}", blob.digest, source.name());
        let body = self.blob_stream(source, blob).await?;
        self.put_blob(UploadSession { destination, scopes: &scopes, location: &location }, blob, body, what, on_bytes)
            .await
    }

    /// The bytes of blob `blob` in `source`, as a stream (unverified: the consumer verifies).
    async fn blob_stream(&self, source: &Reference, blob: &Descriptor) -> Result<ByteStream, RegistryError> {
        let url = self.repo_url(source, &format!("blobs/{}", blob.digest));
        let what = format!("blob {} of {}", blob.digest, source.name());
        let pull = [Scope::pull(source.repository())];
        let response = self.send(source, &pull, "GET", &url, |http| http.get(&url)).await?;
        let response = expect_success(source, "GET", &url, response, &what).await?;
        Ok(Box::pin(response.bytes_stream().map(|chunk| chunk.map_err(std::io::Error::other))))
    }

    /// Finishes an upload session at `location` with `body`, verified against `blob`.
    async fn put_blob(
        &self,
        session: UploadSession<'_>,
        blob: &Descriptor,
        body: ByteStream,
        what: String,
        on_bytes: OnBytes,
    ) -> Result<BlobCopy, RegistryError> {
        let UploadSession { destination, scopes, location } = session;
        let mismatch = Arc::new(StdMutex::new(None));
        let verified = VerifyingStream {
            on_bytes,
            inner: body,
            hasher: Some(DigestHasher::new(blob.digest.algorithm())),
            expected: blob.digest.clone(),
            size: blob.size,
            sent: 0,
            mismatch: mismatch.clone(),
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={}", blob.digest);
        let body = StdMutex::new(Some(reqwest::Body::wrap_stream(verified)));
        let response = self
            .send(destination, scopes, "PUT", &put, |http| {
                let request =
                    http.put(&put).header(CONTENT_TYPE, "application/octet-stream").header(CONTENT_LENGTH, blob.size);
                // The body streams once; a replay (after a 401) sends nothing and fails clearly.
                match body.lock().expect("not poisoned").take() {
                    Some(body) => request.body(body),
                    None => request,
                }
            })
            .await;
        if let Some(actual) = mismatch.lock().expect("not poisoned").take() {
            return Err(RegistryError::DigestMismatch { what, expected: blob.digest.clone(), actual });
        }
        let response = response?;
        expect_success(destination, "PUT", &put, response, &format!("upload of {}", blob.digest)).await?;
        Ok(BlobCopy::Uploaded(blob.size))
    }

    /// Uploads blob `blob` from `body` (a file of an OCI layout, say) unless `destination`
    /// has it; the bytes are verified against the digest on the way.
    pub async fn upload_blob(
        &self,
        destination: &Reference,
        blob: &Descriptor,
        body: ByteStream,
    ) -> Result<BlobCopy, RegistryError> {
        if self.blob_exists(destination, &blob.digest).await? {
            return Ok(BlobCopy::Present);
        }
        let scopes = [Scope::push(destination.repository())];
        let start = self.repo_url(destination, "blobs/uploads/");
        let response = self
            .send(destination, &scopes, "POST", &start, |http| http.post(&start).header(CONTENT_LENGTH, "0"))
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(status_or_denied(destination, "POST", &start, response).await);
        }
        let location = upload_location(&self.base_url(destination.api_host()), &start, &response)?;
        let session = UploadSession { destination, scopes: &scopes, location: &location };
        self.put_blob(session, blob, body, format!("blob {}", blob.digest), Arc::new(|_| {})).await
    }

    /// Streams blob `blob` of `source` into `sink`, verifying its digest and size; the caller
    /// keeps the bytes only when this succeeds.
    pub async fn download_blob<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        source: &Reference,
        blob: &Descriptor,
        sink: &mut W,
    ) -> Result<u64, DownloadError> {
        use tokio::io::AsyncWriteExt;
        let mut body = self.blob_stream(source, blob).await?;
        let mut hasher = DigestHasher::new(blob.digest.algorithm());
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(DownloadError::Write)?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            sink.write_all(&chunk).await.map_err(DownloadError::Write)?;
        }
        sink.flush().await.map_err(DownloadError::Write)?;
        let actual = hasher.finish();
        if actual != blob.digest || size != blob.size {
            let what = format!("blob {} of {} ({size} bytes, {} expected)", blob.digest, source.name(), blob.size);
            return Err(RegistryError::DigestMismatch { what, expected: blob.digest.clone(), actual }.into());
        }
        Ok(size)
    }
}

/// Passes a blob's bytes through while hashing them. The digest is decided when the last of
/// the announced bytes arrives, before that chunk goes out: the HTTP client stops reading the
/// body once Content-Length bytes are sent, so a check at end of stream would come too late.
/// A mismatch (or a wrong length) fails the stream, so the upload is never committed, and is
/// recorded for the error message.
struct VerifyingStream {
    on_bytes: OnBytes,
    inner: ByteStream,
    hasher: Option<DigestHasher>,
    expected: Digest,
    size: u64,
    sent: u64,
    mismatch: Arc<StdMutex<Option<Digest>>>,
}

impl VerifyingStream {
    fn fail(&mut self, actual: Digest) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        *self.mismatch.lock().expect("not poisoned") = Some(actual);
        Poll::Ready(Some(Err(std::io::Error::other("blob digest mismatch"))))
    }
}

impl Stream for VerifyingStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let Some(hasher) = self.hasher.as_mut() else {
                    // Bytes past the announced size.
                    return self.fail(Digest::sha256_of(b"more bytes than announced"));
                };
                hasher.update(&chunk);
                self.sent += chunk.len() as u64;
                if self.sent > self.size {
                    let actual = self.hasher.take().expect("present").finish();
                    return self.fail(actual);
                }
                (self.on_bytes)(chunk.len() as u64);
                if self.sent == self.size {
                    let actual = self.hasher.take().expect("present").finish();
                    if actual != self.expected {
                        return self.fail(actual);
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
            Poll::Ready(None) => match self.hasher.take() {
                // Fewer bytes than announced.
                Some(hasher) => {
                    let actual = hasher.finish();
                    self.fail(actual)
                }
                None => Poll::Ready(None),
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

fn jitter() -> f64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
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

fn upload_location(base: &str, url: &str, response: &Response) -> Result<String, RegistryError> {
    let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        RegistryError::Protocol { url: url.to_owned(), message: "202 without a Location header".into() }
    })?;
    Ok(if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    })
}

async fn expect_success(
    reference: &Reference,
    method: &'static str,
    url: &str,
    response: Response,
    what: &str,
) -> Result<Response, RegistryError> {
    match response.status() {
        s if s.is_success() => Ok(response),
        StatusCode::NOT_FOUND => Err(RegistryError::NotFound { what: what.to_owned() }),
        _ => Err(status_or_denied(reference, method, url, response).await),
    }
}

async fn status_or_denied(reference: &Reference, method: &'static str, url: &str, response: Response) -> RegistryError {
    match response.status() {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => denied(reference, response).await,
        _ => status_error(method, url, response).await,
    }
}

async fn denied(reference: &Reference, response: Response) -> RegistryError {
    let status = response.status().as_u16();
    RegistryError::Denied {
        registry: reference.registry().to_owned(),
        repository: reference.repository().to_owned(),
        status,
        message: error_message(response).await,
    }
}

async fn status_error(method: &'static str, url: &str, response: Response) -> RegistryError {
    let status = response.status().as_u16();
    RegistryError::Status { method, url: url.to_owned(), status, message: error_message(response).await }
}

/// The first message of a distribution error body (`{"errors":[{"code","message"}]}`).
async fn error_message(response: Response) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let body = response.bytes().await.ok()?;
    let errors: Errors = serde_json::from_slice(&body[..body.len().min(64 * 1024)]).ok()?;
    errors.errors.into_iter().next().map(|e| format!("{} {}", e.code, e.message).trim().to_owned())
}
