//! An image pinned by digest: what a deploy puts in place, never a tag.

use crate::digest::Digest;
use crate::reference::Reference;

/// An image pinned by digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedImage {
    /// The repository, as a reference (its tag or digest, if any, is not used).
    pub repository: Reference,
    /// The digest.
    pub digest: Digest,
}

impl PinnedImage {
    /// `repo@sha256:...`, as the engine pulls it.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.repository.name(), self.digest)
    }
}
