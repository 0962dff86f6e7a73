//! Test images made by the tests: an OCI image layout on disk (several layers, two platforms
//! under one index), pushed to a registry with skopeo, a client nobody here wrote.

use std::fs;
use std::path::{Path, PathBuf};

use super::{TestHome, assert_success, random_hex, require};

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// An OCI layout directory with one two-platform index tagged `tag`.
pub struct Layout {
    pub dir: PathBuf,
    pub tag: String,
}

fn write_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = sha256_hex(bytes);
    fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

impl Layout {
    /// Two platforms (linux/amd64, linux/arm64), `layers` random layers of `layer_size` bytes each.
    pub fn two_platform(parent: &Path, tag: &str, layers: usize, layer_size: usize) -> Self {
        let dir = parent.join(format!("layout-{}", random_hex(4)));
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let mut children = Vec::new();
        for arch in ["amd64", "arm64"] {
            let layer_descriptors: Vec<serde_json::Value> = (0..layers)
                .map(|_| {
                    let mut bytes = vec![0u8; layer_size];
                    let noise = random_hex(layer_size.min(4096) / 2);
                    bytes[..noise.len()].copy_from_slice(noise.as_bytes());
                    let (digest, size) = write_blob(&dir, &bytes);
                    serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})
                })
                .collect();
            let diff_ids: Vec<&serde_json::Value> = layer_descriptors.iter().map(|l| &l["digest"]).collect();
            let config = serde_json::json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}});
            let (config_digest, config_size) = write_blob(&dir, config.to_string().as_bytes());
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
                "layers": layer_descriptors,
            });
            let (digest, size) = write_blob(&dir, manifest.to_string().as_bytes());
            children.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
                "platform": {"os": "linux", "architecture": arch},
            }));
        }
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children});
        let (digest, size) = write_blob(&dir, index.to_string().as_bytes());
        let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }]});
        fs::write(dir.join("index.json"), top.to_string()).unwrap();
        Self { dir, tag: tag.to_owned() }
    }

    /// The digest, media type and size of the image named `name` in index.json.
    pub fn entry(&self, name: &str) -> serde_json::Value {
        let index: serde_json::Value = serde_json::from_slice(&fs::read(self.dir.join("index.json")).unwrap()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == name)
            .unwrap()
            .clone()
    }

    /// Attaches an SBOM artifact to the image named `name` (its manifest's `subject`), and the
    /// OCI fallback index listing it under the name `sha256-<hex>`, as a registry without the
    /// referrers API holds referrers. Returns the artifact's digest and the fallback name.
    pub fn attach_sbom(&self, name: &str) -> (String, String) {
        let subject = self.entry(name);
        let subject = serde_json::json!({"mediaType": subject["mediaType"], "digest": subject["digest"], "size": subject["size"]});
        let (config_digest, config_size) = write_blob(&self.dir, b"{}");
        let sbom = format!(r#"{{"spdxVersion":"SPDX-2.3","name":"{}"}}"#, random_hex(8));
        let (sbom_digest, sbom_size) = write_blob(&self.dir, sbom.as_bytes());
        let artifact = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": "application/spdx+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/spdx+json", "digest": sbom_digest, "size": sbom_size}],
            "subject": subject,
        });
        let (artifact_digest, artifact_size) = write_blob(&self.dir, artifact.to_string().as_bytes());
        let referrers = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": artifact_digest, "size": artifact_size, "artifactType": "application/spdx+json",
        }]});
        let (index_digest, index_size) = write_blob(&self.dir, referrers.to_string().as_bytes());
        let fallback = subject["digest"].as_str().unwrap().replace(':', "-");
        let mut top: serde_json::Value =
            serde_json::from_slice(&fs::read(self.dir.join("index.json")).unwrap()).unwrap();
        top["manifests"].as_array_mut().unwrap().push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index_size,
            "annotations": {"org.opencontainers.image.ref.name": fallback},
        }));
        fs::write(self.dir.join("index.json"), top.to_string()).unwrap();
        (artifact_digest, fallback)
    }

    /// `skopeo copy --all oci:DIR:TAG docker://DEST`, authenticating through imgctl's helper.
    pub fn push(&self, home: &TestHome, destination: &str) {
        let out = skopeo(
            home,
            &["copy", "--all", "--preserve-digests", "--dest-tls-verify=false"],
            &[&format!("oci:{}:{}", self.dir.display(), self.tag), &format!("docker://{destination}")],
        );
        assert_success(&out, "skopeo copy");
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Runs skopeo in `home` with an auth file whose credHelpers send every registry the test
/// uses to docker-credential-imgctl (written by [`skopeo_auth_file`]).
pub fn skopeo(home: &TestHome, args: &[&str], rest: &[&str]) -> std::process::Output {
    let program = require("skopeo", "skopeo");
    let authfile = home.dir.join("skopeo-auth.json");
    let mut command = home.command(program);
    command.args(args);
    if args.first() == Some(&"copy") {
        command.arg("--src-authfile").arg(&authfile).arg("--dest-authfile").arg(&authfile);
    } else {
        command.arg("--authfile").arg(&authfile);
    }
    command.args(rest).env("TMPDIR", &home.dir).output().unwrap()
}

/// Points skopeo's credential lookup for `registries` at imgctl's helper.
pub fn skopeo_auth_file(home: &TestHome, registries: &[&str]) {
    let helpers: serde_json::Map<String, serde_json::Value> =
        registries.iter().map(|r| (r.to_string(), serde_json::Value::String("imgctl".into()))).collect();
    fs::write(home.dir.join("skopeo-auth.json"), serde_json::json!({"auths": {}, "credHelpers": helpers}).to_string())
        .unwrap();
}

/// The raw manifest bytes skopeo reads at `reference`.
pub fn skopeo_raw(home: &TestHome, reference: &str) -> Vec<u8> {
    let out = skopeo(home, &["inspect", "--raw", "--tls-verify=false"], &[&format!("docker://{reference}")]);
    assert_success(&out, "skopeo inspect --raw");
    out.stdout
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}
