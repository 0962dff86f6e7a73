//! The command line pinned by snapshots (trycmd): help texts, usage errors, and the compose
//! refusals that need no Docker Engine, each with its exit status. One case per file,
//! `tests/cmd/<group>/<case>.toml` (arguments, status, stdout, stderr); its working directory
//! is `<case>.in/`, or the folder its `fs.cwd` names, and `[CWD]` in a snapshot stands for it.
//!
//! After a deliberate change of a help text or a message, re-bless the snapshots and review
//! the rewritten `.toml` files in the diff like code:
//!
//! ```text
//! TRYCMD=overwrite cargo test --test it cli_snapshots
//! ```
//!
//! One case alone: `cargo test --test it cli_snapshots -- trycmd=deploy/tag-without-resolve`.
//!
//! Every case starts from an empty environment (`[env] inherit = false`, checked below), so a
//! snapshot is the same on every machine: help is wrapped at clap's 100 columns (no COLUMNS,
//! no terminal), and no DOCKER_HOST or IMGCTL_* of the developer's reaches the binary. HOME,
//! DOCKER_CONFIG and IMGCTL_STATE_DIR point into an empty scratch folder, DOCKER_HOST at a
//! socket that does not exist: a refusal that came only after reaching for Docker would say
//! "cannot reach the Docker Engine" instead, and a command that wrote any state before
//! refusing would leave the scratch folder not empty.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{HELPER, IMGCTL};

/// Absolute, so that `[CWD]` in a snapshot stands for the whole path of the case's folder.
const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cmd");

#[test]
fn help_usage_errors_and_compose_refusals_are_as_pinned() {
    let cases = case_files();
    assert!(!cases.is_empty(), "no case under {CASES}");
    for case in &cases {
        let text = fs::read_to_string(case).unwrap();
        // A case without `stdout`/`stderr` keys would not check that stream at all.
        for needed in ["\nstdout = ", "\nstderr = ", "\n[env]\ninherit = false\n"] {
            assert!(text.contains(needed), "{} lacks {needed:?}", case.display());
        }
    }

    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_snapshots");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).unwrap();
    let at = |name: &str| scratch.join(name).to_str().expect("a UTF-8 target directory").to_owned();

    trycmd::TestCases::new()
        .register_bin("imgctl", Path::new(IMGCTL))
        .register_bin("docker-credential-imgctl", Path::new(HELPER))
        .env("HOME", at("home"))
        .env("DOCKER_CONFIG", at("home/.docker"))
        .env("IMGCTL_STATE_DIR", at("state"))
        .env("DOCKER_HOST", format!("unix://{}", at("no-docker.sock")))
        .case(format!("{CASES}/*/*.toml"))
        .run();

    let left: Vec<_> = fs::read_dir(&scratch).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert!(left.is_empty(), "a refused or help-only command wrote {left:?}");
}

/// `tests/cmd/*/*.toml`, as the glob given to trycmd finds them.
fn case_files() -> Vec<PathBuf> {
    let mut cases = Vec::new();
    for group in fs::read_dir(CASES).unwrap() {
        let group = group.unwrap().path();
        if group.is_dir() {
            for entry in fs::read_dir(&group).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|ext| ext == "toml") {
                    cases.push(path);
                }
            }
        }
    }
    cases
}
