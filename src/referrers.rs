//! Referrers: the signatures, SBOMs and attestations that point at a digest (their manifest's
//! `subject`). Found by the referrers API, else by the `sha256-<hex>` tag that registries
//! without the API hold an index of referrers under (the OCI fallback tag scheme).

use serde_json::Value;

use crate::copy::{self, CopyError, CopyOptions, CopyReport};
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, OCI_INDEX, Parsed};
use crate::reference::Reference;
use crate::registry::{Manifest, RegistryClient, RegistryError};

/// The fallback tag of `digest`: `sha256-<hex>`.
pub fn fallback_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.hex())
}

/// What copying the referrers of one digest did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReferrersReport {
    /// The referrers copied (each with everything it names).
    pub copied: Vec<Digest>,
    /// Whether they were found through the fallback tag (and that tag was written).
    pub fallback_tag: Option<String>,
    /// The copies' work.
    pub copy: CopyReport,
}

/// Copies every referrer of `digest` from `source`'s repository to `destination`'s. With the
/// fallback scheme, the destination's `sha256-<hex>` index is written too: the source's bytes
/// when the destination has none, else the union of both lists.
pub async fn copy_referrers(
    client: &RegistryClient,
    source: &Reference,
    destination: &Reference,
    digest: &Digest,
    options: &CopyOptions,
) -> Result<ReferrersReport, CopyError> {
    let mut report = ReferrersReport::default();
    let (referrers, fallback) = match client.referrers(source, digest).await? {
        Some(referrers) => (referrers, None),
        None => {
            let tag = fallback_tag(digest);
            let at_tag = source
                .with_tag(&tag)
                .map_err(|e| RegistryError::Protocol { url: source.name(), message: e.to_string() })?;
            match client.get_manifest(&at_tag).await {
                Ok(index) => match manifest::parse(&index.bytes, &index.media_type)? {
                    Parsed::Index { manifests } => (manifests, Some((tag, index))),
                    Parsed::Image { .. } => (Vec::new(), None),
                },
                Err(RegistryError::NotFound { .. }) => (Vec::new(), None),
                Err(e) => return Err(e.into()),
            }
        }
    };
    for referrer in &referrers {
        let manifest = client.get_manifest(&source.with_digest(referrer.digest.clone())).await?;
        let copied = copy::copy_manifest(client, source, destination, &manifest, options).await?;
        report.copy.add(&copied);
        report.copied.push(referrer.digest.clone());
    }
    if let Some((tag, source_index)) = fallback {
        let at_tag = destination
            .with_tag(&tag)
            .map_err(|e| RegistryError::Protocol { url: destination.name(), message: e.to_string() })?;
        let index = match client.get_manifest(&at_tag).await {
            Ok(existing) if existing.digest == source_index.digest => None,
            Ok(existing) => Some(merged(&existing, &source_index, &referrers)?),
            Err(RegistryError::NotFound { .. }) => Some(source_index),
            Err(e) => return Err(e.into()),
        };
        if let Some(index) = index {
            client.put_manifest(destination, &tag, &index).await?;
        }
        report.fallback_tag = Some(tag);
    }
    Ok(report)
}

/// The destination's fallback index with the source's referrers added (by digest, once each).
fn merged(existing: &Manifest, source: &Manifest, referrers: &[Descriptor]) -> Result<Manifest, CopyError> {
    let invalid = |reason: &str| manifest::InvalidManifest { media_type: OCI_INDEX.into(), reason: reason.into() };
    let mut index: Value = serde_json::from_slice(&existing.bytes).map_err(|e| invalid(&e.to_string()))?;
    let source_entries: Value = serde_json::from_slice(&source.bytes).map_err(|e| invalid(&e.to_string()))?;
    let entries = index["manifests"].as_array_mut().ok_or_else(|| invalid("no manifests array"))?;
    for referrer in referrers {
        let present = entries.iter().any(|e| e["digest"].as_str() == Some(referrer.digest.as_str()));
        let entry = source_entries["manifests"]
            .as_array()
            .and_then(|all| all.iter().find(|e| e["digest"].as_str() == Some(referrer.digest.as_str())));
        if let (false, Some(entry)) = (present, entry) {
            entries.push(entry.clone());
        }
    }
    let bytes = serde_json::to_vec(&index).map_err(|e| invalid(&e.to_string()))?;
    Ok(Manifest { digest: Digest::sha256_of(&bytes), media_type: OCI_INDEX.into(), bytes })
}
