//! Blobs: whether a repository has one, a copy between registries streamed from GET to PUT (or
//! a mount within one), an upload from local bytes, a download to a local sink. Every byte is
//! checked against the blob's digest and size on the way; one retry budget covers each blob.

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Response, StatusCode, Url};

use super::challenge::Scope;
use super::client::{BlobCopy, ByteStream, Call, DownloadError, OnBytes, Outgoing, RegistryClient};
use super::error::RegistryError;
use super::origin::redacted;
use super::retry::RetryBudget;
use super::verify::VerifyingStream;
use super::watchdog::Meter;
use crate::digest::DigestHasher;
use crate::manifest::Descriptor;
use crate::reference::Reference;

/// An upload session a registry opened: where to PUT the bytes, with which token scopes.
struct UploadSession<'a> {
    destination: &'a Reference,
    scopes: &'a [Scope],
    location: Url,
}

impl RegistryClient {
    /// Whether `repository` holds blob `digest`.
    pub async fn blob_exists(
        &self,
        repository: &Reference,
        digest: &crate::digest::Digest,
    ) -> Result<bool, RegistryError> {
        self.blob_exists_within(repository, digest, &self.budget()).await
    }

    async fn blob_exists_within(
        &self,
        repository: &Reference,
        digest: &crate::digest::Digest,
        budget: &RetryBudget,
    ) -> Result<bool, RegistryError> {
        let url = self.repo_url(repository, &format!("blobs/{digest}"))?;
        let scopes = [Scope::pull(repository.repository())];
        let call = Call {
            reference: repository,
            scopes: &scopes,
            method: "HEAD",
            url: &url,
            budget,
            sends: Outgoing::Nothing,
        };
        let response = self.send(call, |http| http.head(&url)).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_or_denied(repository, "HEAD", &url, response).await),
        }
    }

    /// Copies blob `blob` from `source` to `destination`: nothing when it is there, a mount
    /// within one registry, else a stream from GET to PUT whose sha256 is checked on the way.
    /// A transient failure restarts the whole transfer (a streamed body cannot be replayed);
    /// the restarts and every request's own retries share one budget.
    pub async fn copy_blob(
        &self,
        source: &Reference,
        destination: &Reference,
        blob: &Descriptor,
        on_bytes: OnBytes,
    ) -> Result<BlobCopy, RegistryError> {
        let budget = self.budget();
        if self.blob_exists_within(destination, &blob.digest, &budget).await? {
            return Ok(BlobCopy::Present);
        }
        loop {
            match self.transfer_blob(source, destination, blob, on_bytes.clone(), &budget).await {
                Err(e) if e.is_transient() => match budget.next_wait(None) {
                    Some(wait) => tokio::time::sleep(wait).await,
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
        budget: &RetryBudget,
    ) -> Result<BlobCopy, RegistryError> {
        let same_registry =
            source.api_host() == destination.api_host() && source.repository() != destination.repository();
        let mut scopes = vec![Scope::push(destination.repository())];
        let mut start = self.repo_url(destination, "blobs/uploads/")?;
        if same_registry {
            scopes.push(Scope::pull(source.repository()));
            start = format!("{start}?mount={}&from={}", blob.digest, source.repository());
        }
        let call = Call {
            reference: destination,
            scopes: &scopes,
            method: "POST",
            url: &start,
            budget,
            sends: Outgoing::Nothing,
        };
        let response = self.send(call, |http| http.post(&start).header(CONTENT_LENGTH, "0")).await?;
        let location = match response.status() {
            StatusCode::CREATED if same_registry => return Ok(BlobCopy::Mounted),
            // 202: no mount (or not asked for); the upload session to use instead.
            StatusCode::ACCEPTED => self.upload_location(destination, &start, &response)?,
            _ => return Err(self.status_or_denied(destination, "POST", &start, response).await),
        };

        let what = format!("blob {} of {}", blob.digest, source.name());
        let body = self.blob_stream(source, blob, budget).await?;
        let session = UploadSession { destination, scopes: &scopes, location };
        self.put_blob(session, blob, body, what, on_bytes, budget).await
    }

    /// The GET of blob `blob` in `source`, answered with success.
    async fn blob_response(
        &self,
        source: &Reference,
        blob: &Descriptor,
        budget: &RetryBudget,
    ) -> Result<Response, RegistryError> {
        let url = self.repo_url(source, &format!("blobs/{}", blob.digest))?;
        let what = format!("blob {} of {}", blob.digest, source.name());
        let pull = [Scope::pull(source.repository())];
        let call =
            Call { reference: source, scopes: &pull, method: "GET", url: &url, budget, sends: Outgoing::Nothing };
        let response = self.send(call, |http| http.get(&url)).await?;
        self.expect_success(source, "GET", &url, response, &what).await
    }

    /// The bytes of blob `blob` in `source`, as a stream (unverified: the consumer verifies).
    async fn blob_stream(
        &self,
        source: &Reference,
        blob: &Descriptor,
        budget: &RetryBudget,
    ) -> Result<ByteStream, RegistryError> {
        let response = self.blob_response(source, blob, budget).await?;
        Ok(Box::pin(response.bytes_stream().map(|chunk| chunk.map_err(std::io::Error::other))))
    }

    /// Finishes an upload session with `body`, verified against `blob`.
    async fn put_blob(
        &self,
        session: UploadSession<'_>,
        blob: &Descriptor,
        body: ByteStream,
        what: String,
        on_bytes: OnBytes,
        budget: &RetryBudget,
    ) -> Result<BlobCopy, RegistryError> {
        let UploadSession { destination, scopes, mut location } = session;
        let mismatch = Arc::new(Mutex::new(None));
        let meter = Meter::default();
        let verified = VerifyingStream::new(body, blob, on_bytes, meter.clone(), mismatch.clone());
        location.query_pairs_mut().append_pair("digest", blob.digest.as_str());
        let put = location.to_string();
        let body = Mutex::new(Some(reqwest::Body::wrap_stream(verified)));
        let call =
            Call { reference: destination, scopes, method: "PUT", url: &put, budget, sends: Outgoing::Once(&meter) };
        let response = self
            .send(call, |http| {
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
        self.expect_success(destination, "PUT", &put, response, &format!("upload of {}", blob.digest)).await?;
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
        let budget = self.budget();
        if self.blob_exists_within(destination, &blob.digest, &budget).await? {
            return Ok(BlobCopy::Present);
        }
        let scopes = [Scope::push(destination.repository())];
        let start = self.repo_url(destination, "blobs/uploads/")?;
        let call = Call {
            reference: destination,
            scopes: &scopes,
            method: "POST",
            url: &start,
            budget: &budget,
            sends: Outgoing::Nothing,
        };
        let response = self.send(call, |http| http.post(&start).header(CONTENT_LENGTH, "0")).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.status_or_denied(destination, "POST", &start, response).await);
        }
        let location = self.upload_location(destination, &start, &response)?;
        let session = UploadSession { destination, scopes: &scopes, location };
        self.put_blob(session, blob, body, format!("blob {}", blob.digest), Arc::new(|_| {}), &budget).await
    }

    /// Streams blob `blob` of `source` into `sink`, verifying its digest and size; the caller
    /// keeps the bytes only when this succeeds. Reading stops the moment the body passes the
    /// descriptor's size, so the sink never holds more than that.
    pub async fn download_blob<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        source: &Reference,
        blob: &Descriptor,
        sink: &mut W,
    ) -> Result<u64, DownloadError> {
        use tokio::io::AsyncWriteExt;
        let what = || format!("blob {} of {}", blob.digest, source.name());
        let too_large = || RegistryError::BlobTooLarge { what: what(), size: blob.size };
        let response = self.blob_response(source, blob, &self.budget()).await?;
        let url = response.url().to_string();
        if response.content_length().is_some_and(|n| n > blob.size) {
            return Err(too_large().into());
        }
        let mut body = response.bytes_stream();
        let mut hasher = DigestHasher::new(blob.digest.algorithm());
        let mut size = 0u64;
        let meter = Meter::default();
        let copy = async {
            while let Some(chunk) = body.next().await {
                let chunk =
                    chunk.map_err(|source| RegistryError::Connection { method: "GET", url: url.clone(), source })?;
                meter.add(chunk.len() as u64);
                if size + chunk.len() as u64 > blob.size {
                    return Err(too_large().into());
                }
                hasher.update(&chunk);
                size += chunk.len() as u64;
                sink.write_all(&chunk).await.map_err(DownloadError::Write)?;
            }
            sink.flush().await.map_err(DownloadError::Write)
        };
        self.options.min_throughput.watch(&meter, copy).await.map_err(|source| RegistryError::Stalled {
            method: "GET",
            url: url.clone(),
            source,
        })??;
        let actual = hasher.finish();
        if actual != blob.digest || size != blob.size {
            let what = format!("{} ({size} bytes, {} expected)", what(), blob.size);
            return Err(RegistryError::DigestMismatch { what, expected: blob.digest.clone(), actual }.into());
        }
        Ok(size)
    }

    /// Where a 202 to `url` says to upload: its `Location`, resolved against the URL that
    /// answered, refused when it carries user info or is weaker than HTTPS where plain HTTP is
    /// not allowed.
    fn upload_location(&self, destination: &Reference, url: &str, response: &Response) -> Result<Url, RegistryError> {
        let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            RegistryError::Protocol { url: url.to_owned(), message: "202 without a Location header".into() }
        })?;
        self.plain_http.resolve_location(response.url(), location).map_err(|reason| RegistryError::UnsafeUrl {
            registry: destination.registry().to_owned(),
            what: "upload location",
            url: response.url().join(location).map_or_else(|_| "(not a URL)".into(), |u| redacted(u.as_str())),
            reason,
        })
    }
}
