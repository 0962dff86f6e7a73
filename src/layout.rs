//! OCI image layouts on disk, as skopeo's `oci:DIR:NAME` reads and writes them: `oci-layout`,
//! `index.json` (entries named by the `org.opencontainers.image.ref.name` annotation) and
//! `blobs/<algorithm>/<hex>`. `pull` writes an image and everything it names into one; `push`
//! sends one to a registry, so a CI build's output can be pushed byte for byte.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::atomic_file;
use crate::copy::{self, CopyReport, TagOutcome, TagWouldMove};
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Parsed};
use crate::reference::Reference;
use crate::registry::{BlobCopy, DownloadError, Manifest, RegistryClient, RegistryError};

/// The annotation that names an entry of `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A layout operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file of the layout could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Not an OCI layout, or a broken one.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No entry with that name (or several and no name given).
    #[error("{dir}: {reason}")]
    NoSuchImage {
        /// The layout.
        dir: PathBuf,
        /// What was looked for and what is there.
        reason: String,
    },
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] manifest::InvalidManifest),
    /// The destination tag points at another digest.
    #[error(transparent)]
    TagWouldMove(#[from] TagWouldMove),
}

/// An OCI image layout directory.
pub struct Layout {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io { path: path.to_owned(), source }
}

impl Layout {
    /// Opens `dir`, creating an empty layout when it does not exist.
    pub fn create(dir: &Path) -> Result<Self, LayoutError> {
        let layout = Self { dir: dir.to_owned() };
        std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(io(dir))?;
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            atomic_file::write(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644).map_err(io(&marker))?;
        }
        let index = dir.join("index.json");
        if !index.exists() {
            atomic_file::write(&index, br#"{"schemaVersion":2,"manifests":[]}"#, 0o644).map_err(io(&index))?;
        }
        Ok(layout)
    }

    /// Opens an existing layout.
    pub fn open(dir: &Path) -> Result<Self, LayoutError> {
        let marker = dir.join("oci-layout");
        if !marker.is_file() {
            return Err(LayoutError::Invalid {
                path: dir.to_owned(),
                reason: "not an OCI image layout (no oci-layout file)".into(),
            });
        }
        Ok(Self { dir: dir.to_owned() })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join(digest.algorithm()).join(digest.hex())
    }

    fn index(&self) -> Result<Value, LayoutError> {
        let path = self.dir.join("index.json");
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid { path, reason: e.to_string() })
    }

    /// The descriptor named `name` in `index.json` (with no name, the only entry).
    pub fn find(&self, name: Option<&str>) -> Result<Descriptor, LayoutError> {
        let index = self.index()?;
        let entries = index["manifests"].as_array().cloned().unwrap_or_default();
        let name_of = |entry: &Value| entry["annotations"][REF_NAME].as_str().map(str::to_owned);
        let chosen = match name {
            Some(name) => entries.iter().find(|e| name_of(e).as_deref() == Some(name)),
            None if entries.len() == 1 => entries.first(),
            None => None,
        };
        let Some(entry) = chosen else {
            let names: Vec<String> = entries.iter().filter_map(name_of).collect();
            let reason = match name {
                Some(name) => format!("no image named {name:?} (names: {names:?})"),
                None => format!("{} images; name one of {names:?}", entries.len()),
            };
            return Err(LayoutError::NoSuchImage { dir: self.dir.clone(), reason });
        };
        serde_json::from_value(entry.clone())
            .map_err(|e| LayoutError::Invalid { path: self.dir.join("index.json"), reason: e.to_string() })
    }

    /// Names `descriptor` `name` in `index.json`, replacing an entry of that name.
    fn set_ref(&self, name: Option<&str>, descriptor: &Manifest) -> Result<(), LayoutError> {
        let mut index = self.index()?;
        let mut entry =
            json!({"mediaType": descriptor.media_type, "digest": descriptor.digest, "size": descriptor.bytes.len()});
        if let Some(name) = name {
            entry["annotations"] = json!({ REF_NAME: name });
        }
        let entries = index["manifests"].as_array_mut().ok_or_else(|| LayoutError::Invalid {
            path: self.dir.join("index.json"),
            reason: "no manifests array".into(),
        })?;
        entries.retain(|e| {
            let existing = e["annotations"][REF_NAME].as_str();
            match name {
                Some(name) => existing != Some(name),
                None => !(existing.is_none() && e["digest"] == entry["digest"]),
            }
        });
        entries.push(entry);
        let path = self.dir.join("index.json");
        atomic_file::write(&path, &serde_json::to_vec(&index).expect("JSON"), 0o644).map_err(io(&path))
    }

    /// Reads a manifest blob and checks it against its descriptor.
    fn read_manifest(&self, descriptor: &Descriptor) -> Result<Manifest, LayoutError> {
        let path = self.blob_path(&descriptor.digest);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if !descriptor.digest.matches(&bytes) {
            return Err(LayoutError::Invalid { path, reason: format!("does not hash to {}", descriptor.digest) });
        }
        let media_type = manifest::media_type_of(&bytes, &descriptor.media_type);
        Ok(Manifest { digest: descriptor.digest.clone(), media_type, bytes })
    }
}

/// Writes `source` (every platform) into the layout at `dir` under `name` (default: the
/// source's tag). Blobs already in the layout are kept; each new one is verified as it is
/// written and renamed into place only then.
pub async fn pull(
    client: &RegistryClient,
    source: &Reference,
    dir: &Path,
    name: Option<&str>,
) -> Result<(Digest, CopyReport), LayoutError> {
    let layout = Layout::create(dir)?;
    let root = client.get_manifest(source).await?;
    let mut report = CopyReport::default();
    pull_tree(client, source, &layout, &root, &mut report).await?;
    layout.set_ref(name.or(source.tag()), &root)?;
    Ok((root.digest, report))
}

async fn pull_tree(
    client: &RegistryClient,
    source: &Reference,
    layout: &Layout,
    manifest: &Manifest,
    report: &mut CopyReport,
) -> Result<(), LayoutError> {
    match manifest::parse(&manifest.bytes, &manifest.media_type)? {
        Parsed::Index { manifests } => {
            for child in manifests {
                let child_manifest = client.get_manifest(&source.with_digest(child.digest.clone())).await?;
                Box::pin(pull_tree(client, source, layout, &child_manifest, report)).await?;
            }
        }
        Parsed::Image { config, layers, .. } => {
            for blob in std::iter::once(config).chain(layers) {
                let path = layout.blob_path(&blob.digest);
                if path.exists() {
                    report.record(BlobCopy::Present);
                    continue;
                }
                // A fresh, unguessable name: a link planted beside the blob is never written through.
                let (tmp, file) = atomic_file::create_beside(&path, 0o644).map_err(io(&path))?;
                let mut file = tokio::fs::File::from_std(file);
                match client.download_blob(source, &blob, &mut file).await {
                    Ok(bytes) => {
                        file.sync_all().await.map_err(io(&tmp))?;
                        tokio::fs::rename(&tmp, &path).await.map_err(io(&path))?;
                        report.record(BlobCopy::Uploaded(bytes));
                    }
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&tmp).await;
                        return Err(match e {
                            DownloadError::Registry(e) => e.into(),
                            DownloadError::Write(source) => LayoutError::Io { path: tmp, source },
                        });
                    }
                }
            }
        }
    }
    let path = layout.blob_path(&manifest.digest);
    atomic_file::write(&path, &manifest.bytes, 0o644).map_err(io(&path))?;
    report.manifests += 1;
    Ok(())
}

/// Pushes the image named `name` in the layout at `dir` to `destination` (a repository,
/// optionally with a tag to write under the tag-move guard). Children before the index, blobs
/// before manifests, each blob verified against its digest on the way.
pub async fn push(
    client: &RegistryClient,
    dir: &Path,
    name: Option<&str>,
    destination: &Reference,
    allow_tag_move: bool,
) -> Result<(Digest, CopyReport, Option<TagOutcome>), LayoutError> {
    let layout = Layout::open(dir)?;
    let root = layout.read_manifest(&layout.find(name)?)?;
    let outcome = match destination.tag() {
        Some(tag) => {
            let current = client.head_manifest(destination).await?;
            Some(copy::tag_decision(destination, tag, current.as_ref(), &root.digest, allow_tag_move)?)
        }
        None => None,
    };
    let mut report = CopyReport::default();
    push_tree(client, &layout, destination, &root, &mut report).await?;
    if let (Some(tag), Some(outcome)) = (destination.tag(), &outcome)
        && *outcome != TagOutcome::AlreadyThere
    {
        client.put_manifest(destination, tag, &root).await?;
    }
    Ok((root.digest, report, outcome))
}

async fn push_tree(
    client: &RegistryClient,
    layout: &Layout,
    destination: &Reference,
    manifest: &Manifest,
    report: &mut CopyReport,
) -> Result<(), LayoutError> {
    match manifest::parse(&manifest.bytes, &manifest.media_type)? {
        Parsed::Index { manifests } => {
            for child in manifests {
                let child_manifest = layout.read_manifest(&child)?;
                Box::pin(push_tree(client, layout, destination, &child_manifest, report)).await?;
            }
        }
        Parsed::Image { config, layers, .. } => {
            for blob in std::iter::once(config).chain(layers) {
                let path = layout.blob_path(&blob.digest);
                let file = tokio::fs::File::open(&path).await.map_err(io(&path))?;
                let body = Box::pin(tokio_util::io::ReaderStream::new(file));
                report.record(client.upload_blob(destination, &blob, body).await?);
            }
        }
    }
    client.put_manifest(destination, manifest.digest.as_str(), manifest).await?;
    report.manifests += 1;
    Ok(())
}
