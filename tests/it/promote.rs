//! Promotion against two real docker-registry instances with htpasswd auth on loopback, with
//! credentials served by imgctl's own store: byte-identical manifests (checked with skopeo),
//! every platform of an index, mounts within a registry, the tag-move guard, idempotence,
//! dry runs and the audit log; the promoted image pulls by digest with the docker CLI.

use crate::common;

use std::fs;

use common::busybox::TestImage;
use common::oci::{Layout, sha256_digest, skopeo_auth_file, skopeo_raw};
use common::registry::Registry;
use common::{TestHome, assert_success, run_with_stdin, stderr, stdout};

fn imgctl_json(home: &TestHome, args: &[&str]) -> serde_json::Value {
    let out = home.imgctl(&[args, &["-o", "json"]].concat(), b"");
    assert_success(&out, &format!("imgctl {}", args.join(" ")));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// Two registries with htpasswd users (a Harbor-style robot name with `$` among them), their
/// credentials in imgctl's store, docker and skopeo pointed at it.
fn two_registries(name: &str) -> (TestHome, Registry, Registry) {
    let mut home = TestHome::new(name);
    let (staging_pw, prod_pw) = (home.secret("staging-pw"), home.secret("prod-pw"));
    let staging = Registry::start_htpasswd("robot$ci", &staging_pw);
    let prod = Registry::start_htpasswd("deployer", &prod_pw);
    home.store(&staging.addr, "robot$ci", &staging_pw);
    home.store(&prod.addr, "deployer", &prod_pw);
    fs::write(home.docker_config_dir().join("config.json"), r#"{"credsStore":"imgctl"}"#).unwrap();
    skopeo_auth_file(&home, &[&staging.addr, &prod.addr]);
    (home, staging, prod)
}

#[test]
fn promote_between_registries_byte_for_byte() {
    let (home, staging, prod) = two_registries("promote");
    let audit = home.dir.join("audit.jsonl");
    let audit_arg = audit.display().to_string();

    // A single-platform Docker image pushed with the docker CLI (credentials through the helper).
    let local = format!("imgctl-test/promote:{}", common::random_hex(4));
    let source = format!("{}/staging/app:1", staging.addr);
    let mut image = TestImage::import(&local);
    image.tags.push(source.clone());
    let docker = |args: &[&str]| run_with_stdin(home.command("docker").args(args), b"");
    assert_success(&docker(&["tag", &local, &source]), "docker tag");
    assert_success(&docker(&["push", &source]), "docker push");

    let resolved = imgctl_json(&home, &["resolve", &source]);
    let digest = resolved["digest"].as_str().unwrap().to_owned();
    assert_eq!(sha256_digest(&skopeo_raw(&home, &source)), digest);

    // Across registries.
    let destination = format!("{}/prod/app:1.0", prod.addr);
    let result = imgctl_json(&home, &["promote", &source, &destination, "--audit-log", &audit_arg]);
    assert_eq!(result["digest"], digest.as_str());
    assert_eq!(result["tags"], serde_json::json!([{"tag": "1.0", "outcome": "created"}]));
    assert_eq!((result["copy"]["manifests"].as_u64(), result["copy"]["blobs_uploaded"].as_u64()), (Some(1), Some(2)));
    assert_eq!(skopeo_raw(&home, &destination), skopeo_raw(&home, &source), "manifest bytes are identical");
    let pinned = format!("{}/prod/app@{digest}", prod.addr);
    image.tags.push(pinned.clone());
    assert_success(&docker(&["pull", &pinned]), "docker pull by digest from the destination");

    // Again: nothing to move, the tag is left alone (Harbor answers 412 to rewriting one).
    // Not on a terminal, progress is one line per blob and manifest on stderr.
    let out = home.imgctl(&["promote", &source, &destination, "--audit-log", &audit_arg, "-o", "json"], b"");
    assert_success(&out, "promote again");
    assert_eq!(stderr(&out).matches(" already there\n").count(), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("manifest {digest} (")), "{}", stderr(&out));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["tags"][0]["outcome"], "already-there");
    assert_eq!((again["copy"]["blobs_present"].as_u64(), again["copy"]["blobs_uploaded"].as_u64()), (Some(2), Some(0)));

    // Within one registry: blobs are mounted, not streamed.
    let same =
        imgctl_json(&home, &["promote", &source, &format!("{}/prod/app:1", staging.addr), "--audit-log", &audit_arg]);
    assert_eq!(
        (same["copy"]["blobs_mounted"].as_u64(), same["copy"]["blobs_uploaded"].as_u64()),
        (Some(2), Some(0)),
        "{same}"
    );

    // A two-platform OCI index: every platform, children before the index.
    let layout = Layout::two_platform(&home.dir, "multi", 3, 64 * 1024);
    let multi = format!("{}/staging/multi:1", staging.addr);
    layout.push(&home, &multi);
    let multi_dest = format!("{}/prod/multi:1", prod.addr);
    let result = imgctl_json(&home, &["promote", &multi, &multi_dest, "--audit-log", &audit_arg]);
    assert_eq!(result["copy"]["manifests"].as_u64(), Some(3), "{result}");
    assert_eq!(result["copy"]["blobs_uploaded"].as_u64(), Some(8), "3 layers and a config per platform");
    let index_bytes = skopeo_raw(&home, &multi_dest);
    assert_eq!(index_bytes, skopeo_raw(&home, &multi));
    let index: serde_json::Value = serde_json::from_slice(&index_bytes).unwrap();
    for child in index["manifests"].as_array().unwrap() {
        let child_ref = format!("{}/prod/multi@{}", prod.addr, child["digest"].as_str().unwrap());
        assert_eq!(sha256_digest(&skopeo_raw(&home, &child_ref)), child["digest"].as_str().unwrap());
    }

    // The tag-move guard: another image to an existing tag is refused, and nothing changes.
    let moved = home.imgctl(&["promote", &multi, &destination, "--audit-log", &audit_arg], b"");
    assert_eq!(moved.status.code(), Some(1));
    assert!(stderr(&moved).contains("--allow-tag-move"), "{}", stderr(&moved));
    assert_eq!(sha256_digest(&skopeo_raw(&home, &destination)), digest, "the tag did not move");
    let forced = imgctl_json(&home, &["promote", &multi, &destination, "--allow-tag-move", "--audit-log", &audit_arg]);
    assert_eq!(forced["tags"][0]["outcome"], "moved");
    assert_eq!(forced["tags"][0]["from"], digest.as_str());

    // A dry run reads both sides and writes nothing.
    let dry = imgctl_json(
        &home,
        &["promote", &source, &format!("{}/prod/other:1", prod.addr), "--dry-run", "--audit-log", &audit_arg],
    );
    assert_eq!((dry["dry_run"].as_bool(), dry["tags"][0]["outcome"].as_str()), (Some(true), Some("created")));
    let missing = home.imgctl(&["resolve", &format!("{}/prod/other:1", prod.addr)], b"");
    assert!(!missing.status.success() && stderr(&missing).contains("not found"), "{}", stderr(&missing));

    // imgctl tag: a digest in its own repository, no blob moves.
    let tagged = imgctl_json(&home, &["tag", &pinned, "stable"]);
    assert_eq!(tagged["copy"]["manifests"].as_u64(), Some(0));
    assert_eq!(sha256_digest(&skopeo_raw(&home, &format!("{}/prod/app:stable", prod.addr))), digest);

    // One audit line per promotion that wrote: cross, again, same-registry, index, forced move.
    let lines: Vec<serde_json::Value> =
        fs::read_to_string(&audit).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[0]["digest"], digest.as_str());
    assert_eq!(lines[0]["destination"], format!("{}/prod/app", prod.addr));
    assert_eq!(lines[0]["tags"], serde_json::json!(["1.0"]));
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z') && !lines[0]["actor"].as_str().unwrap().is_empty());
}

#[test]
fn a_promotion_manifest_promotes_every_edge_and_reports_the_failed_one() {
    let (home, staging, prod) = two_registries("promote-file");
    let first = Layout::two_platform(&home.dir, "a", 2, 16 * 1024);
    let second = Layout::two_platform(&home.dir, "b", 1, 16 * 1024);
    first.push(&home, &format!("{}/staging/api:build-1", staging.addr));
    second.push(&home, &format!("{}/staging/worker:build-7", staging.addr));
    let digest_of = |reference: &str| sha256_digest(&skopeo_raw(&home, reference));
    let (api, worker) = (
        digest_of(&format!("{}/staging/api:build-1", staging.addr)),
        digest_of(&format!("{}/staging/worker:build-7", staging.addr)),
    );
    let missing = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let manifest = format!(
        r#"# The Kubernetes image promoter's format, unchanged.
registries:
- name: {staging}/staging
  src: true
- name: {prod}/prod
  service-account: ignored@example.iam.gserviceaccount.com
- name: {staging}/release
images:
- name: api
  dmap:
    "{api}": ["1.4.0", "latest"]
- name: worker
  dmap:
    "{worker}": ["2.0.1"]
    "{missing}": ["2.0.0"]
"#,
        staging = staging.addr,
        prod = prod.addr
    );
    let file = home.dir.join("promoter-manifest.yaml");
    fs::write(&file, manifest).unwrap();
    let audit = home.dir.join("audit.jsonl");
    let out = home.imgctl(
        &["promote", "--file", &file.display().to_string(), "--audit-log", &audit.display().to_string(), "-o", "json"],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "one edge fails: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["promoted"].as_array().unwrap().len(), 4, "{report}");
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "the missing digest, to each destination: {report}");
    assert!(failed[0]["error"].as_str().unwrap().contains("not found"), "{report}");
    for (reference, digest) in [
        (format!("{}/prod/api:1.4.0", prod.addr), &api),
        (format!("{}/prod/api:latest", prod.addr), &api),
        (format!("{}/release/api:1.4.0", staging.addr), &api),
        (format!("{}/prod/worker:2.0.1", prod.addr), &worker),
        (format!("{}/release/worker:2.0.1", staging.addr), &worker),
    ] {
        assert_eq!(&digest_of(&reference), digest, "{reference}");
    }
    assert_eq!(fs::read_to_string(&audit).unwrap().lines().count(), 4);
}

#[test]
fn oci_layouts_pull_and_push_byte_for_byte_and_skopeo_reads_them() {
    let (home, staging, prod) = two_registries("layout");
    // A layout written by the test (not by imgctl), pushed with imgctl.
    let built = Layout::two_platform(&home.dir, "build-42", 2, 32 * 1024);
    let staged = format!("{}/staging/multi:build-42", staging.addr);
    let pushed = imgctl_json(&home, &["push", &built.dir.display().to_string(), &staged]);
    assert_eq!(pushed["copy"]["manifests"].as_u64(), Some(3), "{pushed}");
    assert_eq!(pushed["tag"]["outcome"], "created");
    let index_json: serde_json::Value =
        serde_json::from_slice(&fs::read(built.dir.join("index.json")).unwrap()).unwrap();
    let built_digest = index_json["manifests"][0]["digest"].as_str().unwrap().to_owned();
    assert_eq!(pushed["digest"], built_digest.as_str());
    assert_eq!(sha256_digest(&skopeo_raw(&home, &staged)), built_digest);
    let again = imgctl_json(&home, &["push", &built.dir.display().to_string(), &staged]);
    assert_eq!(
        (again["copy"]["blobs_uploaded"].as_u64(), again["tag"]["outcome"].as_str()),
        (Some(0), Some("already-there"))
    );

    // Pulled into a new layout with imgctl; skopeo reads that layout and copies it on.
    let out_dir = home.dir.join("pulled");
    let pulled = imgctl_json(&home, &["pull", &staged, &out_dir.display().to_string()]);
    assert_eq!(
        (pulled["digest"].as_str(), pulled["copy"]["blobs_uploaded"].as_u64()),
        (Some(built_digest.as_str()), Some(6))
    );
    let out = common::oci::skopeo(
        &home,
        &["copy", "--all", "--preserve-digests", "--dest-tls-verify=false"],
        &[&format!("oci:{}:build-42", out_dir.display()), &format!("docker://{}/prod/copied:1", prod.addr)],
    );
    assert_success(&out, "skopeo copy from imgctl's layout");
    assert_eq!(sha256_digest(&skopeo_raw(&home, &format!("{}/prod/copied:1", prod.addr))), built_digest);
    // Pulling again keeps what is there.
    let repeat = imgctl_json(&home, &["pull", &staged, &out_dir.display().to_string()]);
    assert_eq!(
        (repeat["copy"]["blobs_present"].as_u64(), repeat["copy"]["blobs_uploaded"].as_u64()),
        (Some(6), Some(0))
    );
    let index: serde_json::Value = serde_json::from_slice(&fs::read(out_dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "one entry per name: {index}");
}

#[test]
fn referrers_follow_the_digest_with_the_fallback_tag_scheme() {
    let (home, staging, prod) = two_registries("referrers");
    let layout = Layout::two_platform(&home.dir, "1", 1, 8 * 1024);
    let (sbom, fallback) = layout.attach_sbom("1");
    let dir = layout.dir.display().to_string();
    let source = format!("{}/staging/signed:1", staging.addr);
    assert_success(&home.imgctl(&["push", &dir, &source, "--name", "1"], b""), "push the image");
    let referrers_tag = format!("{}/staging/signed:{fallback}", staging.addr);
    assert_success(&home.imgctl(&["push", &dir, &referrers_tag, "--name", &fallback], b""), "push the referrers index");

    // Without --referrers the SBOM stays behind; with it, it follows.
    let plain =
        imgctl_json(&home, &["promote", &source, &format!("{}/prod/plain:1", prod.addr), "--audit-log", "a.jsonl"]);
    assert!(plain.get("referrers").is_none(), "{plain}");
    let result = imgctl_json(
        &home,
        &["promote", &source, &format!("{}/prod/signed:1", prod.addr), "--referrers", "--audit-log", "a.jsonl"],
    );
    assert_eq!(result["referrers"]["copied"], serde_json::json!([sbom]), "{result}");
    assert_eq!(result["referrers"]["fallback_tag"], fallback.as_str());
    let copied = format!("{}/prod/signed@{sbom}", prod.addr);
    assert_eq!(sha256_digest(&skopeo_raw(&home, &copied)), sbom, "the SBOM is at the destination, byte for byte");
    let index: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&home, &format!("{}/prod/signed:{fallback}", prod.addr))).unwrap();
    assert_eq!(index["manifests"][0]["digest"], sbom.as_str());
    assert!(!home.imgctl(&["resolve", &format!("{}/prod/plain:{fallback}", prod.addr)], b"").status.success());
}

#[test]
fn a_link_planted_beside_a_pulled_blob_is_never_written_through() {
    let (home, staging, _prod) = two_registries("layout-link");
    let built = Layout::two_platform(&home.dir, "build-7", 2, 4 * 1024);
    let staged = format!("{}/staging/linked:build-7", staging.addr);
    imgctl_json(&home, &["push", &built.dir.display().to_string(), &staged]);

    // Someone who can write into the layout's directory links the names a download could use
    // to a file of theirs.
    let out_dir = home.dir.join("pulled");
    let blobs = out_dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let victim = home.dir.join("victim");
    fs::write(&victim, "untouched").unwrap();
    let mut planted = 0;
    for entry in fs::read_dir(built.dir.join("blobs/sha256")).unwrap() {
        let hex = entry.unwrap().file_name().into_string().unwrap();
        for name in [format!("{hex}.partial"), format!("{hex}.tmp-{}", std::process::id())] {
            std::os::unix::fs::symlink(&victim, blobs.join(name)).unwrap();
            planted += 1;
        }
    }
    assert!(planted >= 12, "{planted} links");

    imgctl_json(&home, &["pull", &staged, &out_dir.display().to_string()]);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched", "a download was written through a planted link");
    for entry in fs::read_dir(&blobs).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if !name.contains('.') {
            assert!(entry.file_type().unwrap().is_file(), "blob {name} is not a regular file");
        }
    }
}
