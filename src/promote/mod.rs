//! Promotion: copy exactly the tested bytes from a source repository to a destination, tag
//! them there under the tag-move guard, and record what was promoted.

pub mod audit;
pub mod file;
pub mod signatures;
pub mod signing;

use serde::Serialize;

use crate::copy::{self, CopyError, CopyOptions, CopyReport, TagOutcome, TagWouldMove};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{RegistryClient, RegistryError};
use crate::verify::{self, Accepted, Gate, VerifyError};
use signing::PromotionSigner;

/// One promotion edge: a source image to a destination repository with tags.
#[derive(Clone, Debug)]
pub struct Promotion {
    /// The source; a tag is resolved once and the digest recorded.
    pub source: Reference,
    /// The destination repository (its tag and digest are ignored; see `tags`).
    pub destination: Reference,
    /// Tags to point at the digest in the destination.
    pub tags: Vec<String>,
    /// Move a destination tag that points at another digest.
    pub allow_tag_move: bool,
    /// Plan only: read both sides, write nothing.
    pub dry_run: bool,
    /// Also copy the signatures, SBOMs and attestations that refer to the digest.
    pub referrers: bool,
}

/// What a promotion did (or would do).
#[derive(Clone, Debug, Serialize)]
pub struct PromotionResult {
    /// The source as given.
    pub source: String,
    /// The digest promoted.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The destination repository (`registry/repository`).
    pub destination: String,
    /// What happened to each tag.
    pub tags: Vec<TagResult>,
    /// What the copy did (empty for a dry run).
    pub copy: CopyReport,
    /// Nothing was written.
    pub dry_run: bool,
    /// The referrers copied, with `--referrers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrers: Option<crate::referrers::ReferrersReport>,
    /// The classic signature tag, with `--referrers` when the source has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_tag: Option<signatures::SignatureTag>,
    /// What the signature policy accepted the source by, when there is a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<Accepted>,
    /// The signature made at the destination, with `--sign-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed: Option<verify::sign::Signed>,
    /// In a dry run with `--sign-key`: the signature that would be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_sign: Option<signing::WouldSign>,
}

/// One tag's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct TagResult {
    /// The tag.
    pub tag: String,
    /// What happened (or would).
    #[serde(flatten)]
    pub outcome: TagOutcome,
}

/// A promotion failed; what was written before the failure is said in the error.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// The signature policy does not accept the source (or cannot be applied to it); nothing
    /// was read from the destination or written.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Reading the source or destination failed; nothing was written.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A destination tag points at another digest; nothing was written.
    #[error(transparent)]
    TagWouldMove(#[from] TagWouldMove),
    /// The copy failed; the destination holds at most some blobs and child manifests, and no
    /// tag was touched.
    #[error("copying {digest} to {destination} failed, no tag was written: {source}")]
    Copy {
        /// The digest being promoted.
        digest: Digest,
        /// The destination repository.
        destination: String,
        /// Why.
        #[source]
        source: CopyError,
    },
    /// The image was copied, then signing it at the destination failed; no tag was written.
    #[error("{destination}@{digest} was copied but not signed, and no tag was written: {source}")]
    NotSigned {
        /// The digest.
        digest: Digest,
        /// The destination repository.
        destination: String,
        /// Why.
        #[source]
        source: verify::sign::SignError,
    },
    /// Some tags were written, then one failed.
    #[error("{destination}@{digest} is copied, tags {written:?} are written, tag {failed} failed: {source}")]
    Tagging {
        /// The digest.
        digest: Digest,
        /// The destination repository.
        destination: String,
        /// Tags written before the failure.
        written: Vec<String>,
        /// The tag that failed.
        failed: String,
        /// Why.
        #[source]
        source: RegistryError,
    },
}

/// Runs one promotion: resolve the source once, verify that digest against the signature
/// policy (`gate`), check every destination tag against the guard before anything is written,
/// copy, then tag (tags already at the digest are left alone).
pub async fn promote(
    client: &RegistryClient,
    promotion: &Promotion,
    options: &CopyOptions,
    gate: Option<&Gate>,
) -> Result<PromotionResult, PromoteError> {
    promote_signed(client, promotion, options, gate, None).await
}

/// [`promote`], and with a `signer`, the promoted digest signed at the destination after the
/// copy (and the referrers) and before any tag is written: a tag never names an image there
/// that is not signed yet.
pub async fn promote_signed(
    client: &RegistryClient,
    promotion: &Promotion,
    options: &CopyOptions,
    gate: Option<&Gate>,
    signer: Option<&PromotionSigner>,
) -> Result<PromotionResult, PromoteError> {
    let root = client.get_manifest(&promotion.source).await?;
    // The digest just read is the one verified and the one copied: a tag moved in between
    // cannot slip another image past the gate.
    let verified = match gate {
        Some(gate) => Some(verify::verify(client, gate, &promotion.source, &root.digest).await?),
        None => None,
    };
    let destination = promotion.destination.name();
    let mut tags = Vec::new();
    for tag in &promotion.tags {
        let at_tag = promotion
            .destination
            .with_tag(tag)
            .map_err(|e| RegistryError::Protocol { url: destination.clone(), message: e.to_string() })?;
        let current = client.head_manifest(&at_tag).await?;
        let outcome =
            copy::tag_decision(&promotion.destination, tag, current.as_ref(), &root.digest, promotion.allow_tag_move)?;
        tags.push(TagResult { tag: tag.clone(), outcome });
    }
    let mut result = PromotionResult {
        source: promotion.source.to_string(),
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        destination: destination.clone(),
        tags,
        copy: CopyReport::default(),
        dry_run: promotion.dry_run,
        referrers: None,
        signature_tag: None,
        verified,
        signed: None,
        would_sign: None,
    };
    if promotion.dry_run {
        result.would_sign = signer.map(PromotionSigner::would_sign);
        return Ok(result);
    }
    // Tagging within one repository (`imgctl tag`) moves no blob.
    if promotion.source.name() != destination {
        result.copy =
            copy::copy_manifest(client, &promotion.source, &promotion.destination, &root, options).await.map_err(
                |source| PromoteError::Copy { digest: root.digest.clone(), destination: destination.clone(), source },
            )?;
    }
    if promotion.referrers {
        let referrers =
            crate::referrers::copy_referrers(client, &promotion.source, &promotion.destination, &root.digest, options)
                .await
                .map_err(|source| PromoteError::Copy {
                    digest: root.digest.clone(),
                    destination: destination.clone(),
                    source,
                })?;
        result.referrers = Some(referrers);
        let signature_tag =
            signatures::copy_signature_tag(client, &promotion.source, &promotion.destination, &root.digest, options)
                .await
                .map_err(|source| PromoteError::Copy {
                    digest: root.digest.clone(),
                    destination: destination.clone(),
                    source,
                })?;
        if let Some((outcome, copied)) = signature_tag {
            result.copy.add(&copied);
            result.signature_tag = Some(outcome);
        }
    }
    if let Some(signer) = signer {
        let signed = signer.sign(client, &promotion.destination, &root.digest).await.map_err(|source| {
            PromoteError::NotSigned { digest: root.digest.clone(), destination: destination.clone(), source }
        })?;
        result.signed = Some(signed);
    }
    let mut written = Vec::new();
    for tag in &result.tags {
        if tag.outcome == TagOutcome::AlreadyThere {
            continue;
        }
        client.put_manifest(&promotion.destination, &tag.tag, &root).await.map_err(|source| PromoteError::Tagging {
            digest: root.digest.clone(),
            destination: destination.clone(),
            written: written.clone(),
            failed: tag.tag.clone(),
            source,
        })?;
        written.push(tag.tag.clone());
    }
    Ok(result)
}
