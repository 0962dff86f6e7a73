//! Append-only JSON-lines logs (the promotion audit log, the deploy history): one record per
//! line, each appended and synced before the caller reports its work done.
//!
//! A writer killed in the middle of an append (or a full disk) can leave a last line without
//! its newline. The next append ends that line first, so the torn record stays a line of its
//! own that readers skip, and the new record is whole on the line after it. Appenders take an
//! exclusive lock of the log for the check and the write, so a concurrent writer's torn line
//! cannot slip in between, and a lock dies with its holder.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::private_path::{self, NotPrivate};

/// A log could not be appended to or read.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    /// The log's directory is not private to this user.
    #[error(transparent)]
    NotPrivate(#[from] NotPrivate),
    /// The record has no JSON form (a map with non-string keys, say).
    #[error("encoding a record for {path}: {source}")]
    Encode {
        /// The log.
        path: PathBuf,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// The log could not be opened, locked, read, written or synced.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The log.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// Appends `record` as one line to the log at `path` and syncs it. The log is created 0600,
/// its directory 0700 where missing, and the directory must be private
/// ([`private_path::check_dir`]).
pub fn append(path: &Path, record: &impl Serialize) -> Result<(), JsonlError> {
    let io = |action: &'static str| move |source| JsonlError::Io { action, path: path.to_owned(), source };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    private_path::ensure_dir(dir)?;
    let mut line = serde_json::to_vec(record).map_err(|source| JsonlError::Encode { path: path.to_owned(), source })?;
    line.push(b'\n');
    // A link at `path` is followed: the directory is private, so only this user (or root)
    // could have made it.
    let mut file =
        OpenOptions::new().create(true).read(true).append(true).mode(0o600).open(path).map_err(io("opening"))?;
    // Released when the file is closed, also when the process dies.
    file.lock().map_err(io("locking"))?;
    if ends_torn(&file).map_err(io("reading"))? {
        line.insert(0, b'\n');
    }
    // One write of the whole line: a reader never sees half of it unless its writer died.
    file.write_all(&line).map_err(io("writing"))?;
    file.sync_data().map_err(io("syncing"))
}

/// Every record of the log at `path`, oldest first; none when there is no log. Lines that do
/// not parse (torn by a killed writer) are skipped.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, JsonlError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes.split(|&b| b == b'\n').filter_map(|line| serde_json::from_slice(line).ok()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(JsonlError::Io { action: "reading", path: path.to_owned(), source }),
    }
}

/// The file is not empty and its last byte is not a newline.
fn ends_torn(file: &File) -> io::Result<bool> {
    let len = file.metadata()?.len();
    let mut last = [0u8];
    Ok(len > 0 && file.read_at(&mut last, len - 1)? == 1 && last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Entry {
        n: u32,
        note: String,
    }

    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_torn_last_line_is_ended_and_the_next_record_reads_back() {
        let scratch = Scratch(std::env::temp_dir().join(format!("imgctl-jsonl-{}", std::process::id())));
        let path = scratch.0.join("log/records.jsonl");
        let entry = |n| Entry { n, note: format!("record {n}") };
        append(&path, &entry(1)).unwrap();
        // What a writer killed mid-append leaves: part of a line, no newline.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"n\":2,\"no").unwrap();
        append(&path, &entry(3)).unwrap();
        append(&path, &entry(4)).unwrap();
        assert_eq!(read::<Entry>(&path).unwrap(), [entry(1), entry(3), entry(4)]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().nth(1), Some("{\"n\":2,\"no"), "the torn line is kept as it was, alone");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read::<Entry>(&scratch.0.join("none.jsonl")).unwrap(), []);
    }
}
