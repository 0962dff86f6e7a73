//! A one-file image imported from Debian's static busybox (no base image is pulled), removed
//! from the engine when dropped.

use std::fs;
use std::process::Command;

use super::{assert_success, require, run_with_stdin};

/// A one-file image built from Debian's static busybox (no base image is pulled).
pub struct TestImage {
    pub tags: Vec<String>,
}

impl TestImage {
    pub fn import(tag: &str) -> Self {
        let busybox = require("busybox", "busybox-static");
        let root = std::env::temp_dir().join(format!("imgctl-rootfs-{}", super::random_hex(4)));
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::copy(&busybox, root.join("bin/busybox")).unwrap();
        let tar = Command::new("tar").arg("-C").arg(&root).args(["-cf", "-", "."]).output().unwrap();
        assert_success(&tar, "tar");
        let out = run_with_stdin(
            Command::new("docker").args(["import", "--change", "CMD [\"/bin/busybox\",\"true\"]", "-", tag]),
            &tar.stdout,
        );
        fs::remove_dir_all(&root).unwrap();
        assert_success(&out, "docker import");
        Self { tags: vec![tag.to_owned()] }
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        for tag in &self.tags {
            let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
        }
    }
}
