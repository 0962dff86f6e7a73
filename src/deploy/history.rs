//! The per-service history: one JSON line per deploy, rollback or abort, appended and synced.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::color::Color;
use crate::jsonl::{self, JsonlError};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Traffic is on the new version.
    Succeeded,
    /// Stopped before traffic moved, or traffic was moved back: the old version serves.
    Failed,
    /// Waiting for `--continue` (a canary pause, `--no-auto-promote`, a paused rolling update).
    Paused,
    /// `--abort`: the new version was removed, traffic is on the stable color.
    Aborted,
}

/// One step of a run and how long it took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// What it was (`pull`, `start green`, `health gate`, `switch`, ...).
    pub step: String,
    /// Milliseconds.
    pub ms: u64,
}

/// One history line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The run's id (also the containers' `imgctl.deploy-id`).
    pub id: String,
    /// `deploy`, `continue`, `abort` or `rollback`.
    pub action: String,
    /// The compose service.
    pub service: String,
    /// The strategy.
    pub strategy: String,
    /// The image it deployed (`repo@sha256:...`).
    pub image: String,
    /// The digest it deployed.
    pub digest: String,
    /// The color it deployed into.
    pub color: Color,
    /// The digest that was live before, if any.
    pub previous_digest: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed or paused.
    pub reason: Option<String>,
    /// Who ran it.
    pub performer: String,
    /// Start (RFC 3339).
    pub started: String,
    /// End (RFC 3339).
    pub finished: String,
    /// Steps with timings.
    pub steps: Vec<StepTiming>,
    /// The compose project whose running containers this run took over as the live color
    /// (`docker-compose up -d` ran them before imgctl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<String>,
}

/// The history file of `service` under `dir`.
pub fn path(dir: &Path, service: &str) -> PathBuf {
    dir.join(format!("{service}.jsonl"))
}

/// Appends `record` to the history kept under `name` in `dir` (one line, synced before
/// returning; a torn last line left by a killed writer cannot swallow it: see [`crate::jsonl`]).
pub fn append(dir: &Path, name: &str, record: &Record) -> Result<(), JsonlError> {
    jsonl::append(&path(dir, name), record)
}

/// Every record of `service`, oldest first; lines that do not parse (a torn line after a
/// crash) are skipped.
pub fn read(dir: &Path, service: &str) -> Result<Vec<Record>, JsonlError> {
    jsonl::read(&path(dir, service))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn appends_and_reads_back_skipping_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("imgctl-history-{}", std::process::id()));
        let record = Record {
            id: "d1".into(),
            action: "deploy".into(),
            service: "web".into(),
            strategy: "blue-green".into(),
            image: "r/web@sha256:aa".into(),
            digest: "sha256:aa".into(),
            color: Color::Green,
            previous_digest: None,
            outcome: Outcome::Succeeded,
            reason: None,
            performer: "ci".into(),
            started: "2026-11-22T10:00:00Z".into(),
            finished: "2026-11-22T10:00:05Z".into(),
            steps: vec![StepTiming { step: "switch".into(), ms: 40 }],
            adopted: None,
        };
        append(&dir, "web", &record).unwrap();
        std::fs::OpenOptions::new().append(true).open(path(&dir, "web")).unwrap().write_all(b"{\"id\":\"torn").unwrap();
        let second = Record { id: "d2".into(), ..record.clone() };
        append(&dir, "web", &second).unwrap();
        let back = read(&dir, "web").unwrap();
        assert_eq!(back, [record, second], "the torn line is skipped, the record after it kept");
        assert_eq!(read(&dir, "api").unwrap(), vec![]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
