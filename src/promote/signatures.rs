//! The classic signature tag follows the image: with `--referrers`, `sha256-<hex>.sig` (cosign's
//! classic layout, which no referrers API lists) is copied too, so a policy that needs the
//! signature accepts the image at the destination as it did at the source.

use serde::Serialize;

use crate::copy::{self, CopyError, CopyOptions, CopyReport};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{RegistryClient, RegistryError};
use crate::verify::classic::signature_tag;

/// What happened to the signature tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum SignatureTag {
    /// Copied with everything it names.
    Copied {
        /// `sha256-<hex>.sig`
        tag: String,
    },
    /// The destination holds the same signature manifest.
    AlreadyThere {
        /// `sha256-<hex>.sig`
        tag: String,
    },
    /// The destination holds other signatures under the tag (made there): they are kept, never
    /// overwritten.
    KeptDestinations {
        /// `sha256-<hex>.sig`
        tag: String,
        /// The destination's signature manifest.
        destination_digest: Digest,
    },
}

/// Copies `source`'s signature tag of `digest` to `destination`; None when the source has none.
pub async fn copy_signature_tag(
    client: &RegistryClient,
    source: &Reference,
    destination: &Reference,
    digest: &Digest,
    options: &CopyOptions,
) -> Result<Option<(SignatureTag, CopyReport)>, CopyError> {
    let tag = signature_tag(digest);
    let at =
        |r: &Reference| r.with_tag(&tag).map_err(|e| RegistryError::Protocol { url: r.name(), message: e.to_string() });
    let signatures = match client.get_manifest(&at(source)?).await {
        Ok(manifest) => manifest,
        Err(RegistryError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match client.head_manifest(&at(destination)?).await? {
        Some(existing) if existing == signatures.digest => {
            return Ok(Some((SignatureTag::AlreadyThere { tag }, CopyReport::default())));
        }
        Some(existing) => {
            return Ok(Some((
                SignatureTag::KeptDestinations { tag, destination_digest: existing },
                CopyReport::default(),
            )));
        }
        None => {}
    }
    let report = copy::copy_manifest(client, source, destination, &signatures, options).await?;
    client.put_manifest(destination, &tag, &signatures).await?;
    Ok(Some((SignatureTag::Copied { tag }, report)))
}
