//! compose `secrets:` and `configs:` in a container on one Docker Engine, as compose runs
//! them there:
//!
//! - a file-backed one is bind-mounted read-only at its target (docker-compose 1.29 and v2 do
//!   this for secrets, v2 for configs too), so the replica reads the file as it is on the host;
//! - one from imgctl's environment, or a config's inline `content:`, is copied into the created
//!   container before it starts (compose v2 does the same), as a tar archive sent through the
//!   Engine API with its owner and mode. Nothing is written to a file of imgctl's own: the
//!   content lives in the container's own layer, and goes with it.

use bollard::models::{Mount, MountType};
use zeroize::Zeroizing;

use crate::deploy::model::{FileMount, FileSource, Workload};

/// The read-only bind mounts of the file-backed secrets and configs.
pub(super) fn binds(workload: &Workload) -> Vec<Mount> {
    workload
        .files
        .iter()
        .filter_map(|file| match &file.source {
            FileSource::File(path) => Some(Mount {
                target: Some(file.target.clone()),
                source: Some(path.display().to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            }),
            _ => None,
        })
        .collect()
}

/// The secrets and configs copied into the container (from the environment, or inline).
pub(super) fn copied(workload: &Workload) -> impl Iterator<Item = &FileMount> {
    workload.files.iter().filter(|f| f.is_copied_on_engine())
}

/// A tar archive of the copied files at their absolute targets, to unpack at `/` (the engine
/// makes missing parent directories, 0755 root), or `None` when nothing is copied. `Err`
/// names a mount whose content was not read or whose target a tar header cannot hold.
pub(in crate::deploy::docker) fn archive(workload: &Workload) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    // Sized once: a growing Vec would free outgrown buffers with content still in them.
    let size: usize =
        copied(workload).map(|f| 512 + f.content.as_ref().map_or(0, |c| c.len().div_ceil(512) * 512)).sum();
    let mut tar = Zeroizing::new(Vec::with_capacity(size + 1024));
    for file in copied(workload) {
        let content = file.content.as_ref().ok_or_else(|| format!("{}: its content was not read", file.at()))?;
        let header =
            header(file, content.len()).map_err(|why| format!("{}: target {}: {why}", file.at(), file.target))?;
        tar.extend_from_slice(&header);
        tar.extend_from_slice(content.expose());
        let padded = tar.len().div_ceil(512) * 512;
        tar.resize(padded, 0);
    }
    if tar.is_empty() {
        return Ok(None);
    }
    // The end of an archive: two empty blocks.
    let end = tar.len() + 1024;
    tar.resize(end, 0);
    Ok(Some(tar))
}

/// A ustar header for a regular file at `file.target` (without its leading `/`).
fn header(file: &FileMount, size: usize) -> Result<[u8; 512], String> {
    let path = file.target.trim_start_matches('/');
    let (prefix, name) = split_path(path).ok_or("longer than a tar header holds (255 bytes, 100 per name)")?;
    let mut h = [0u8; 512];
    let octal = |h: &mut [u8; 512], at: usize, width: usize, value: u64| -> Result<(), String> {
        let text = format!("{value:0w$o}", w = width - 1);
        if text.len() != width - 1 {
            return Err(format!("{value} does not fit a tar header"));
        }
        h[at..at + width - 1].copy_from_slice(text.as_bytes());
        Ok(())
    };
    let id = |text: &Option<String>| text.as_deref().map_or(Ok(0), str::parse::<u64>).map_err(|e| e.to_string());
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h, 100, 8, u64::from(file.file_mode()))?;
    octal(&mut h, 108, 8, id(&file.uid)?)?;
    octal(&mut h, 116, 8, id(&file.gid)?)?;
    octal(&mut h, 124, 12, size as u64)?;
    octal(&mut h, 136, 12, 0)?;
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    // The checksum is computed with its own field as spaces.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    Ok(h)
}

/// `path` as a ustar prefix (up to 155 bytes) and name (up to 100), split at a `/`.
fn split_path(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    path.match_indices('/')
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .find(|(prefix, name)| prefix.len() <= 155 && name.len() <= 100 && !name.is_empty())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::deploy::model::{Content, FileKind};

    fn mount(source: FileSource, target: &str, content: &[u8]) -> FileMount {
        FileMount {
            kind: FileKind::Secret,
            key: "k".into(),
            name: "k".into(),
            source,
            target: target.into(),
            uid: Some("100".into()),
            gid: None,
            mode: Some(0o400),
            content: Some(Content::new(Zeroizing::new(content.to_vec()))),
        }
    }

    #[test]
    fn files_are_bound_read_only_and_the_rest_copied_with_owner_and_mode() {
        let workload = Workload {
            files: vec![
                mount(FileSource::File("/srv/token.txt".into()), "/run/secrets/token", b"from a file"),
                mount(FileSource::Environment("API".into()), "/run/secrets/api", b"from the environment"),
                FileMount {
                    kind: FileKind::Config,
                    mode: None,
                    uid: None,
                    ..mount(FileSource::Inline, &format!("/etc/{}/app.conf", "d".repeat(120)), b"inline = 1\n")
                },
            ],
            ..Default::default()
        };
        let binds = serde_json::to_value(binds(&workload)).unwrap();
        assert_eq!(
            binds,
            serde_json::json!([{"Target": "/run/secrets/token", "Source": "/srv/token.txt", "Type": "bind", "ReadOnly": true}])
        );
        let tar = archive(&workload).unwrap().unwrap();
        assert_eq!(tar.len() % 512, 0);
        // GNU tar reads it back: names, owners, modes and contents.
        let dir = std::env::temp_dir().join(format!("imgctl-tar-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.tar"), &*tar).unwrap();
        let listed = Command::new("tar").args(["-tvf"]).arg(dir.join("a.tar")).arg("--numeric-owner").output().unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        let lines: Vec<Vec<&str>> = listed.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines.len(), 2, "{listed}");
        assert_eq!((lines[0][0], lines[0][1], lines[0][5]), ("-r--------", "100/0", "run/secrets/api"), "{listed}");
        assert_eq!((lines[1][0], lines[1][1]), ("-r--r--r--", "0/0"), "{listed}");
        assert!(lines[1][5].ends_with("/app.conf") && lines[1][5].len() > 100, "{listed}");
        let out = Command::new("tar").args(["-xOf"]).arg(dir.join("a.tar")).arg("run/secrets/api").output().unwrap();
        assert_eq!(out.stdout, b"from the environment");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(archive(&Workload::default()).unwrap().is_none(), "nothing copied, nothing sent");
        let unread = Workload {
            files: vec![FileMount { content: None, ..mount(FileSource::Inline, "/x", b"") }],
            ..Default::default()
        };
        assert!(archive(&unread).unwrap_err().contains("not read"));
    }

    #[test]
    fn a_read_only_root_refuses_a_copied_file_by_name_and_takes_a_bound_one() {
        use super::super::{ContainerSpec, create_body};
        let spec = |source: FileSource| ContainerSpec {
            name: "web-blue-1".into(),
            image: "i".into(),
            workload: Workload {
                files: vec![mount(source, "/run/secrets/k", b"x")],
                runtime: crate::deploy::model::Runtime { read_only: true, ..Default::default() },
                ..Default::default()
            },
            ..Default::default()
        };
        let error = create_body(&spec(FileSource::Environment("K".into()))).unwrap_err().to_string();
        assert!(
            error.contains("secrets.k is copied into the container before it starts, and read_only forbids"),
            "{error}"
        );
        let body = serde_json::to_value(create_body(&spec(FileSource::File("/srv/k".into()))).unwrap()).unwrap();
        assert_eq!(body["HostConfig"]["Mounts"][0]["ReadOnly"], true);
        assert!(!body.to_string().contains("\"x\""), "no content in the body: {body}");
    }
}
