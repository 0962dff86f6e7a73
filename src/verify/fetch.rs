//! Finding an image's signatures where cosign puts them, through the registry client (its
//! auth, retries and size limits): the classic `.sig` tag, and bundles among the referrers.

use serde_json::Value;

use super::bundle::BUNDLE_V03;
use super::classic::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING, signature_tag};
use super::{Content, Failure, Found, Layout};
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Parsed};
use crate::reference::Reference;
use crate::referrers::fallback_tag;
use crate::registry::{DownloadError, RegistryClient, RegistryError};

/// Signatures read per layout: a hostile registry could list thousands.
const MAX_SIGNATURES: usize = 64;
/// The largest payload or bundle read (cosign's are a few KiB).
const MAX_BLOB: u64 = 1024 * 1024;

/// The signatures of one image at one digest, read a layout at a time when first asked for.
pub(super) struct Signatures<'a> {
    client: &'a RegistryClient,
    image: &'a Reference,
    signature_repository: Option<&'a Reference>,
    digest: &'a Digest,
    classic: Option<Vec<Found>>,
    bundles: Option<(Vec<Found>, String)>,
}

impl<'a> Signatures<'a> {
    pub(super) fn new(
        client: &'a RegistryClient,
        image: &'a Reference,
        signature_repository: Option<&'a Reference>,
        digest: &'a Digest,
    ) -> Self {
        Self { client, image, signature_repository, digest, classic: None, bundles: None }
    }

    fn classic_tag(&self) -> (&'a Reference, String) {
        (self.signature_repository.unwrap_or(self.image), signature_tag(self.digest))
    }

    /// The signatures found in `layout`.
    pub(super) async fn of(&mut self, layout: Layout) -> Result<&[Found], RegistryError> {
        match layout {
            Layout::Classic => {
                if self.classic.is_none() {
                    let (repository, tag) = self.classic_tag();
                    let mut found = Vec::new();
                    classic(self.client, repository, &tag, &mut found).await?;
                    self.classic = Some(found);
                }
                Ok(self.classic.as_deref().unwrap_or_default())
            }
            Layout::Bundle => {
                if self.bundles.is_none() {
                    let mut found = Vec::new();
                    let looked = bundles(self.client, self.image, self.digest, &mut found).await?;
                    self.bundles = Some((found, looked));
                }
                Ok(self.bundles.as_ref().map(|(found, _)| found.as_slice()).unwrap_or_default())
            }
        }
    }

    /// Where imgctl looked so far.
    pub(super) fn looked(&self) -> Vec<String> {
        let (repository, tag) = self.classic_tag();
        let mut looked = vec![format!("{}:{tag}", repository.name())];
        looked.extend(self.bundles.as_ref().map(|(_, looked)| looked.clone()));
        looked
    }
}

fn at_tag(repository: &Reference, tag: &str) -> Result<Reference, RegistryError> {
    repository.with_tag(tag).map_err(|e| RegistryError::Protocol { url: repository.name(), message: e.to_string() })
}

async fn classic(
    client: &RegistryClient,
    repository: &Reference,
    tag: &str,
    found: &mut Vec<Found>,
) -> Result<(), RegistryError> {
    let manifest = match client.get_manifest(&at_tag(repository, tag)?).await {
        Ok(manifest) => manifest,
        Err(RegistryError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let location = format!("{}:{tag}", repository.name());
    let document: Value = serde_json::from_slice(&manifest.bytes).unwrap_or(Value::Null);
    let Some(layers) = document["layers"].as_array() else {
        found.push(Found {
            layout: Layout::Classic,
            location,
            content: Err(Failure::Malformed("the signature manifest has no layers".into())),
        });
        return Ok(());
    };
    for (i, layer) in layers.iter().filter(|l| l["mediaType"] == SIMPLE_SIGNING).take(MAX_SIGNATURES).enumerate() {
        let blob = descriptor(layer);
        // Only a digest that parsed is quoted: the registry's other strings stay out of reports.
        let named = blob.as_ref().map_or_else(|_| "an invalid descriptor".to_owned(), |b| b.digest.to_string());
        let location = format!("{location} layer {} ({named})", i + 1);
        let content = match (blob, layer["annotations"][SIGNATURE_ANNOTATION].as_str()) {
            (Err(failure), _) => Err(failure),
            (_, None) => Err(Failure::Malformed(format!("no {SIGNATURE_ANNOTATION} annotation"))),
            (Ok(blob), Some(signature)) => read_blob(client, repository, &blob)
                .await?
                .map(|payload| Content::Classic { payload, signature: signature.to_owned() }),
        };
        found.push(Found { layout: Layout::Classic, location, content });
    }
    Ok(())
}

/// Bundles among the referrers of `digest` (API, else the fallback tag); what was looked at.
async fn bundles(
    client: &RegistryClient,
    image: &Reference,
    digest: &Digest,
    found: &mut Vec<Found>,
) -> Result<String, RegistryError> {
    let (referrers, looked) = match client.referrers(image, digest).await? {
        Some(referrers) => (referrers, format!("the referrers of {digest} in {}", image.name())),
        None => {
            let tag = fallback_tag(digest);
            let looked = format!("{}:{tag}", image.name());
            match client.get_manifest(&at_tag(image, &tag)?).await {
                Ok(index) => match manifest::parse(&index.bytes, &index.media_type) {
                    Ok(Parsed::Index { manifests }) => (manifests, looked),
                    _ => (Vec::new(), looked),
                },
                Err(RegistryError::NotFound { .. }) => (Vec::new(), looked),
                Err(e) => return Err(e),
            }
        }
    };
    let mut bundles = 0;
    for referrer in referrers {
        if bundles == MAX_SIGNATURES {
            break;
        }
        let location = format!("referrer {} of {}", referrer.digest, image.name());
        let manifest = match client.get_manifest(&image.with_digest(referrer.digest.clone())).await {
            Ok(manifest) => manifest,
            Err(RegistryError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let document: Value = serde_json::from_slice(&manifest.bytes).unwrap_or(Value::Null);
        let layer = document["layers"].as_array().and_then(|l| l.iter().find(|l| l["mediaType"] == BUNDLE_V03));
        // SBOMs, attestations of other kinds, and other artifacts are not signatures.
        let Some(layer) = layer else { continue };
        bundles += 1;
        let content = match descriptor(layer) {
            Err(failure) => Err(failure),
            Ok(blob) => read_blob(client, image, &blob).await?.map(Content::Bundle),
        };
        found.push(Found { layout: Layout::Bundle, location, content });
    }
    Ok(looked)
}

fn descriptor(layer: &Value) -> Result<Descriptor, Failure> {
    let digest = layer["digest"]
        .as_str()
        .and_then(|d| d.parse::<Digest>().ok())
        .ok_or_else(|| Failure::Malformed("a layer without a valid digest".into()))?;
    let size = layer["size"].as_u64().ok_or_else(|| Failure::Malformed("a layer without a size".into()))?;
    if size > MAX_BLOB {
        return Err(Failure::Malformed(format!("a {size}-byte payload (more than {MAX_BLOB} bytes)")));
    }
    Ok(Descriptor {
        media_type: layer["mediaType"].as_str().unwrap_or_default().to_owned(),
        digest,
        size,
        platform: None,
    })
}

/// A payload blob, its digest and size checked against the descriptor; a mismatch is a
/// tampered payload, not an error of the run.
async fn read_blob(
    client: &RegistryClient,
    repository: &Reference,
    blob: &Descriptor,
) -> Result<Result<Vec<u8>, Failure>, RegistryError> {
    let mut bytes = Vec::with_capacity(blob.size as usize);
    match client.download_blob(repository, blob, &mut bytes).await {
        Ok(_) => Ok(Ok(bytes)),
        Err(DownloadError::Registry(RegistryError::DigestMismatch { actual, .. })) => Ok(Err(Failure::Tampered(
            format!("the registry served bytes with digest {actual} for blob {}", blob.digest),
        ))),
        Err(DownloadError::Registry(RegistryError::BlobTooLarge { .. })) => {
            Ok(Err(Failure::Tampered(format!("blob {} is longer than its descriptor says", blob.digest))))
        }
        Err(DownloadError::Registry(RegistryError::NotFound { .. })) => {
            Ok(Err(Failure::Malformed(format!("blob {} is missing", blob.digest))))
        }
        Err(DownloadError::Registry(e)) => Err(e),
        Err(DownloadError::Write(e)) => unreachable!("writing to memory does not fail: {e}"),
    }
}
