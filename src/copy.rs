//! The digest-preserving copy engine: a manifest and everything it names, from one repository
//! to another, byte for byte. Children go before the index that lists them, blobs before the
//! manifest that names them, so a destination never holds a manifest whose content is missing.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::digest::Digest;
use crate::manifest::{self, Parsed};
use crate::reference::Reference;
use crate::registry::{BlobCopy, Manifest, RegistryClient, RegistryError};

/// Told what a copy is doing, as it does it (the library never prints; the binary draws bars
/// on a terminal and writes lines elsewhere). Called from several tasks at once.
pub trait Progress: Send + Sync {
    /// A blob of `size` bytes is about to be checked and copied.
    fn blob_started(&self, _digest: &Digest, _size: u64) {}
    /// `bytes` more bytes of some blob went out.
    fn bytes(&self, _bytes: u64) {}
    /// A blob is at the destination.
    fn blob_finished(&self, _digest: &Digest, _outcome: BlobCopy) {}
    /// A manifest is at the destination.
    fn manifest_written(&self, _digest: &Digest, _media_type: &str) {}
    /// The work is over (successful or not): take anything drawn away before results print.
    fn finish(&self) {}
}

/// Progress nobody watches.
pub struct Silent;
impl Progress for Silent {}

/// How a copy runs.
#[derive(Clone)]
pub struct CopyOptions {
    /// Blob transfers in flight across the whole copy (all platforms).
    pub blob_concurrency: usize,
    /// Who is told how it goes.
    pub progress: Arc<dyn Progress>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self { blob_concurrency: 6, progress: Arc::new(Silent) }
    }
}

impl std::fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions").field("blob_concurrency", &self.blob_concurrency).finish_non_exhaustive()
    }
}

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// Manifests written (indexes and images).
    pub manifests: usize,
    /// Blobs the destination already had.
    pub blobs_present: usize,
    /// Blobs mounted from another repository of the same registry.
    pub blobs_mounted: usize,
    /// Blobs streamed from the source.
    pub blobs_uploaded: usize,
    /// Bytes streamed.
    pub bytes_uploaded: u64,
}

impl CopyReport {
    /// Counts one blob's outcome.
    pub fn record(&mut self, outcome: BlobCopy) {
        match outcome {
            BlobCopy::Present => self.blobs_present += 1,
            BlobCopy::Mounted => self.blobs_mounted += 1,
            BlobCopy::Uploaded(bytes) => {
                self.blobs_uploaded += 1;
                self.bytes_uploaded += bytes;
            }
        }
    }

    /// Adds another report's counts.
    pub fn add(&mut self, other: &CopyReport) {
        self.manifests += other.manifests;
        self.blobs_present += other.blobs_present;
        self.blobs_mounted += other.blobs_mounted;
        self.blobs_uploaded += other.blobs_uploaded;
        self.bytes_uploaded += other.bytes_uploaded;
    }
}

/// A copy failed; nothing was tagged.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] manifest::InvalidManifest),
    /// A child manifest's size differs from what its index says.
    #[error("{reference}: the index says {expected} bytes, the registry served {actual}")]
    SizeMismatch {
        /// The child.
        reference: String,
        /// The index's size.
        expected: u64,
        /// The served size.
        actual: u64,
    },
}

/// Copies `root` (already read from `source`) and everything it names to `destination`'s
/// repository, ending with the root manifest stored by digest (no tag is touched).
pub async fn copy_manifest(
    client: &RegistryClient,
    source: &Reference,
    destination: &Reference,
    root: &Manifest,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let blobs = Arc::new(Semaphore::new(options.blob_concurrency.max(1)));
    copy_tree(client, source, destination, root, &blobs, &options.progress).await
}

async fn copy_tree(
    client: &RegistryClient,
    source: &Reference,
    destination: &Reference,
    manifest: &Manifest,
    blobs: &Arc<Semaphore>,
    progress: &Arc<dyn Progress>,
) -> Result<CopyReport, CopyError> {
    let mut report = CopyReport::default();
    match manifest::parse(&manifest.bytes, &manifest.media_type)? {
        Parsed::Index { manifests } => {
            // Every platform; children before the index.
            let children: Vec<CopyReport> = futures_util::stream::iter(manifests)
                .map(|child| async move {
                    let reference = source.with_digest(child.digest.clone());
                    let child_manifest = client.get_manifest(&reference).await?;
                    if child_manifest.bytes.len() as u64 != child.size {
                        return Err(CopyError::SizeMismatch {
                            reference: reference.to_string(),
                            expected: child.size,
                            actual: child_manifest.bytes.len() as u64,
                        });
                    }
                    Box::pin(copy_tree(client, source, destination, &child_manifest, blobs, progress)).await
                })
                .buffer_unordered(4)
                .try_collect()
                .await?;
            children.iter().for_each(|child| report.add(child));
        }
        Parsed::Image { config, layers, .. } => {
            let outcomes: Vec<BlobCopy> = futures_util::stream::iter(std::iter::once(config).chain(layers))
                .map(|blob| async move {
                    let _permit = blobs.acquire().await.expect("the semaphore is never closed");
                    progress.blob_started(&blob.digest, blob.size);
                    let counter = progress.clone();
                    let outcome =
                        client.copy_blob(source, destination, &blob, Arc::new(move |n| counter.bytes(n))).await?;
                    progress.blob_finished(&blob.digest, outcome);
                    Ok::<_, RegistryError>(outcome)
                })
                .buffer_unordered(usize::MAX)
                .try_collect()
                .await?;
            outcomes.into_iter().for_each(|outcome| report.record(outcome));
        }
    }
    client.put_manifest(destination, manifest.digest.as_str(), manifest).await?;
    progress.manifest_written(&manifest.digest, &manifest.media_type);
    report.manifests += 1;
    Ok(report)
}

/// What putting a tag did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum TagOutcome {
    /// The tag was new.
    Created,
    /// The tag already pointed at the digest: nothing was written (Harbor answers 412 to any
    /// write on an immutable tag).
    AlreadyThere,
    /// The tag pointed elsewhere and was moved (allowed explicitly).
    Moved {
        /// Where it pointed before.
        from: Digest,
    },
}

/// A tag would move to another digest without permission.
#[derive(Debug, thiserror::Error)]
#[error("{repository}:{tag} points at {current}, not {wanted}; refusing to move it (pass --allow-tag-move to move it)")]
pub struct TagWouldMove {
    /// The repository.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// Where it points.
    pub current: Digest,
    /// Where it would point.
    pub wanted: Digest,
}

/// Where each tag of `repository` points now, and what tagging `manifest` would do: the pure
/// guard of the promotion plan.
pub fn tag_decision(
    repository: &Reference,
    tag: &str,
    current: Option<&Digest>,
    wanted: &Digest,
    allow_move: bool,
) -> Result<TagOutcome, TagWouldMove> {
    match current {
        None => Ok(TagOutcome::Created),
        Some(current) if current == wanted => Ok(TagOutcome::AlreadyThere),
        Some(current) if allow_move => Ok(TagOutcome::Moved { from: current.clone() }),
        Some(current) => Err(TagWouldMove {
            repository: repository.name(),
            tag: tag.to_owned(),
            current: current.clone(),
            wanted: wanted.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_created_kept_or_moved_only_when_allowed() {
        let repo: Reference = "r.io/prod/app".parse().unwrap();
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        assert_eq!(tag_decision(&repo, "1.4", None, &a, false).unwrap(), TagOutcome::Created);
        assert_eq!(tag_decision(&repo, "1.4", Some(&a), &a, false).unwrap(), TagOutcome::AlreadyThere);
        assert_eq!(tag_decision(&repo, "1.4", Some(&b), &a, true).unwrap(), TagOutcome::Moved { from: b.clone() });
        let refused = tag_decision(&repo, "1.4", Some(&b), &a, false).unwrap_err();
        assert!(refused.to_string().contains("--allow-tag-move"));
    }
}
