//! The same compose file run by docker-compose 1.29 beside imgctl's replicas, so a test can
//! compare what each made of it: a project of its own, under a local tag of the image (nothing
//! to pull), taken down on drop, also after a failed assertion.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct ComposeTwin {
    bin: PathBuf,
    dir: PathBuf,
    project: String,
    local: String,
}

impl ComposeTwin {
    /// Tags `image` as `imgctl-test-SERVICE:v1`, writes `compose(that tag)` as
    /// `DIR/compose-1.29/docker-compose.yml` and runs `docker-compose up -d` there. Returns the
    /// twin and what `up` answered (the caller asserts on it once it has looked).
    pub fn up(dir: &Path, service: &str, image: &str, compose: impl Fn(&str) -> String) -> (Self, Output) {
        let bin = super::require("docker-compose", "docker-compose");
        let local = format!("imgctl-test-{service}:v1");
        let tagged = Command::new("docker").args(["tag", image, &local]).output().unwrap();
        super::assert_success(&tagged, "docker tag");
        let dir = dir.join("compose-1.29");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("docker-compose.yml"), compose(&local)).unwrap();
        let twin = Self { bin, dir, project: format!("imgctltest{service}"), local };
        let up = twin.run(&["up", "-d", "--no-build"]);
        (twin, up)
    }

    /// The compose project's name (`com.docker.compose.project`).
    pub fn project(&self) -> &str {
        &self.project
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(["-p", &self.project])
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for ComposeTwin {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--timeout", "0"]);
        let _ = Command::new("docker").args(["rmi", &self.local]).output();
    }
}
