//! The parts of image manifests and indexes the copy engine reads: which blobs and which child
//! manifests a manifest names. The bytes themselves are never re-serialized (that would change
//! the digest); these types only look inside.

use serde::Deserialize;

use crate::digest::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest type imgctl asks for, index types included.
pub const ACCEPTED: &[&str] = &[OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// A pointer to content: its type, digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Descriptor {
    /// The content's media type.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// The content's digest.
    pub digest: Digest,
    /// The content's size in bytes.
    pub size: u64,
    /// The platform, for an index entry.
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// An index entry's platform.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// `linux`, ...
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v8`, ...
    #[serde(default)]
    pub variant: Option<String>,
}

/// What a manifest's bytes say, as far as copying goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An index / manifest list: child manifests.
    Index {
        /// The children, in order.
        manifests: Vec<Descriptor>,
    },
    /// An image (or artifact) manifest: blobs.
    Image {
        /// The config blob.
        config: Descriptor,
        /// The layers, in order.
        layers: Vec<Descriptor>,
        /// The manifest this one refers to (a signature or SBOM's `subject`).
        subject: Option<Box<Descriptor>>,
    },
}

/// The bytes are not a manifest of a known kind.
#[derive(Debug, thiserror::Error)]
#[error("not a manifest imgctl can copy ({media_type}): {reason}")]
pub struct InvalidManifest {
    /// The media type it was served as.
    pub media_type: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

/// Whether `media_type` names an index.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Reads a manifest served as `media_type` (the `mediaType` field decides when present).
pub fn parse(bytes: &[u8], media_type: &str) -> Result<Parsed, InvalidManifest> {
    let invalid = |reason: String| InvalidManifest { media_type: media_type.to_owned(), reason };
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let kind = raw.media_type.as_deref().unwrap_or(media_type);
    if is_index(kind) || (raw.manifests.is_some() && raw.layers.is_none()) {
        return Ok(Parsed::Index { manifests: raw.manifests.unwrap_or_default() });
    }
    let config = raw.config.ok_or_else(|| invalid("no config descriptor".into()))?;
    Ok(Parsed::Image { config, layers: raw.layers.unwrap_or_default(), subject: raw.subject.map(Box::new) })
}

/// The media type of manifest bytes: their `mediaType` field, else `served_as`.
pub fn media_type_of(bytes: &[u8], served_as: &str) -> String {
    serde_json::from_slice::<Raw>(bytes).ok().and_then(|raw| raw.media_type).unwrap_or_else(|| served_as.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn reads_images_and_indexes() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"c","digest":"{D1}","size":3}},"layers":[{{"mediaType":"l","digest":"{D2}","size":5}}]}}"#
        );
        let Parsed::Image { config, layers, subject } = parse(image.as_bytes(), "ignored").unwrap() else { panic!() };
        assert_eq!((config.size, layers.len(), subject), (3, 1, None));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":7,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let Parsed::Index { manifests } = parse(index.as_bytes(), OCI_INDEX).unwrap() else { panic!() };
        assert_eq!(manifests[0].platform.as_ref().unwrap().architecture, "arm64");
        assert_eq!(media_type_of(index.as_bytes(), OCI_INDEX), OCI_INDEX);
    }

    #[test]
    fn all_four_media_types() {
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{D1}","size":9}}]}}"#
        );
        assert!(matches!(parse(list.as_bytes(), "application/json").unwrap(), Parsed::Index { .. }));
        let oci = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D1}","size":1}},"layers":[]}}"#);
        assert!(matches!(parse(oci.as_bytes(), OCI_MANIFEST).unwrap(), Parsed::Image { .. }));
        // No mediaType field: the served type decides.
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(parse(index.as_bytes(), OCI_INDEX).unwrap(), Parsed::Index { .. }));
        assert_eq!(media_type_of(index.as_bytes(), OCI_INDEX), OCI_INDEX);
        assert_eq!(media_type_of(list.as_bytes(), OCI_INDEX), DOCKER_MANIFEST_LIST);
        assert!(is_index(DOCKER_MANIFEST_LIST) && is_index(OCI_INDEX) && !is_index(DOCKER_MANIFEST));
    }

    #[test]
    fn refuses_what_is_not_a_manifest() {
        assert!(parse(b"[]", OCI_MANIFEST).is_err());
        assert!(parse(br#"{"layers":[]}"#, OCI_MANIFEST).is_err());
        let bad_digest = r#"{"config":{"digest":"sha256:short","size":1}}"#;
        assert!(parse(bad_digest.as_bytes(), OCI_MANIFEST).is_err());
    }
}
