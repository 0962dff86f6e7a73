//! Promotion manifests in the Kubernetes image promoter's format, so existing manifests work
//! unchanged:
//!
//! ```yaml
//! registries:
//! - name: harbor.example.com/staging      # the source
//!   src: true
//! - name: registry.example.com/prod       # every other entry is a destination
//! images:
//! - name: app
//!   dmap:
//!     "sha256:0cf2...": ["1.4.0", "latest"]
//! ```
//!
//! Each image, digest and destination registry is one promotion edge:
//! `<src>/<name>@<digest>` to `<dst>/<name>` with the digest's tags.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Promotion;
use crate::digest::Digest;
use crate::reference::{InvalidReference, Reference};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoterManifest {
    registries: Vec<RegistryEntry>,
    #[serde(default)]
    images: Vec<ImageEntry>,
}

#[derive(Deserialize)]
struct RegistryEntry {
    name: String,
    #[serde(default)]
    src: bool,
    // Read and ignored: imgctl authenticates through docker's configuration.
    #[serde(rename = "service-account", default)]
    _service_account: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageEntry {
    name: String,
    dmap: BTreeMap<Digest, Vec<String>>,
}

/// A promotion manifest that cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum ManifestFileError {
    /// Not YAML of this format.
    #[error("not a promotion manifest: {0}")]
    Syntax(String),
    /// Not exactly one registry has `src: true`.
    #[error("the manifest must name exactly one source registry (src: true), it names {0}")]
    Sources(usize),
    /// No destination registry.
    #[error("the manifest names no destination registry (an entry without src: true)")]
    NoDestination,
    /// A registry, image name or tag does not make a reference.
    #[error("image {image}: {source}")]
    Reference {
        /// The image entry's name.
        image: String,
        /// Why.
        #[source]
        source: InvalidReference,
    },
}

/// The promotion edges of a manifest, in file order (image, then digest, then destination).
pub fn plan(
    text: &str,
    allow_tag_move: bool,
    dry_run: bool,
    referrers: bool,
) -> Result<Vec<Promotion>, ManifestFileError> {
    let manifest: PromoterManifest =
        serde_norway::from_str(text).map_err(|e| ManifestFileError::Syntax(e.to_string()))?;
    let sources: Vec<&RegistryEntry> = manifest.registries.iter().filter(|r| r.src).collect();
    let [source] = sources.as_slice() else {
        return Err(ManifestFileError::Sources(sources.len()));
    };
    let destinations: Vec<&RegistryEntry> = manifest.registries.iter().filter(|r| !r.src).collect();
    if destinations.is_empty() {
        return Err(ManifestFileError::NoDestination);
    }
    let mut edges = Vec::new();
    for image in &manifest.images {
        let at = |registry: &str| -> Result<Reference, ManifestFileError> {
            format!("{}/{}", registry.trim_end_matches('/'), image.name)
                .parse()
                .map_err(|source| ManifestFileError::Reference { image: image.name.clone(), source })
        };
        let source_repository = at(&source.name)?;
        for (digest, tags) in &image.dmap {
            for destination in &destinations {
                let destination = at(&destination.name)?;
                for tag in tags {
                    destination
                        .with_tag(tag)
                        .map_err(|source| ManifestFileError::Reference { image: image.name.clone(), source })?;
                }
                edges.push(Promotion {
                    source: source_repository.with_digest(digest.clone()),
                    destination,
                    tags: tags.clone(),
                    allow_tag_move,
                    dry_run,
                    referrers,
                });
            }
        }
    }
    Ok(edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:0cf2a3c5d4e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80";
    const B: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn kubernetes_promoter_manifests_plan_one_edge_per_image_digest_and_destination() {
        let text = format!(
            r#"
registries:
- name: gcr.io/k8s-staging-foo
  src: true
- name: us.gcr.io/k8s-artifacts-prod/foo
  service-account: promoter@example.iam.gserviceaccount.com
- name: eu.gcr.io/k8s-artifacts-prod/foo/
images:
- name: foo-controller
  dmap:
    "{A}": ["v1.0.0"]
    "{B}": ["v1.1.0", "latest"]
- name: untagged
  dmap:
    "{A}": []
"#
        );
        let edges = plan(&text, false, true, false).unwrap();
        assert_eq!(edges.len(), 6);
        assert_eq!(edges[0].source.to_string(), format!("gcr.io/k8s-staging-foo/foo-controller@{A}"));
        assert_eq!(edges[0].destination.to_string(), "us.gcr.io/k8s-artifacts-prod/foo/foo-controller");
        assert_eq!(edges[1].destination.to_string(), "eu.gcr.io/k8s-artifacts-prod/foo/foo-controller");
        assert_eq!(edges[2].tags, vec!["v1.1.0", "latest"]);
        assert!(edges[5].tags.is_empty() && edges[5].dry_run);
    }

    #[test]
    fn refuses_manifests_it_cannot_plan() {
        let no_src = "registries:\n- name: a.io/x\nimages: []\n";
        assert!(matches!(plan(no_src, false, false, false), Err(ManifestFileError::Sources(0))));
        let no_dst = "registries:\n- name: a.io/x\n  src: true\nimages: []\n";
        assert!(matches!(plan(no_dst, false, false, false), Err(ManifestFileError::NoDestination)));
        let bad_digest = "registries:\n- name: a.io/x\n  src: true\n- name: b.io/y\nimages:\n- name: app\n  dmap:\n    \"sha256:nope\": [v1]\n";
        assert!(matches!(plan(bad_digest, false, false, false), Err(ManifestFileError::Syntax(_))));
        let bad_tag = format!(
            "registries:\n- name: a.io/x\n  src: true\n- name: b.io/y\nimages:\n- name: app\n  dmap:\n    \"{A}\": [\"-bad\"]\n"
        );
        assert!(matches!(plan(&bad_tag, false, false, false), Err(ManifestFileError::Reference { .. })));
    }
}
