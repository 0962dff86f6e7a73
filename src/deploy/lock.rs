//! One deploy of a service at a time: an exclusive `flock` on a per-service file, with who
//! holds it written inside so a refused run can say who is deploying.
//!
//! The kernel releases a `flock` when its holder dies, SIGKILL included, so a dead holder never
//! blocks the next run; the record it left is reported as a lock taken over.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who holds (or held) a lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The process.
    pub pid: u32,
    /// The machine.
    pub host: String,
    /// The person or CI job.
    pub performer: String,
    /// What it is doing (`deploy sha256:...`, `rollback`).
    pub action: String,
    /// Since when (RFC 3339).
    pub since: String,
}

impl Holder {
    /// This process, doing `action`.
    pub fn this_process(action: impl Into<String>, performer: impl Into<String>) -> Self {
        Self {
            pid: std::process::id(),
            host: hostname(),
            performer: performer.into(),
            action: action.into(),
            since: crate::promote::audit::rfc3339(std::time::SystemTime::now()),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} by {} (pid {} on {}) since {}", self.action, self.performer, self.pid, self.host, self.since)
    }
}

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it.
    #[error(
        "{service} is locked by another run: {holder}; wait for it to finish (imgctl status {service} shows progress)"
    )]
    Held {
        /// The service.
        service: String,
        /// Who holds it (when its record could be read).
        holder: HolderText,
    },
    /// The lock file could not be opened.
    #[error("opening the lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A holder record, or why there is none.
#[derive(Debug)]
pub struct HolderText(pub Option<Box<Holder>>);

impl std::fmt::Display for HolderText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(holder) => holder.fmt(f),
            None => f.write_str("a process that has not written its record yet"),
        }
    }
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct DeployLock {
    file: File,
    /// The record of a holder that died with the lock (its run was cut off half-way).
    pub taken_over: Option<Holder>,
}

/// Takes the lock of `service` under `dir` for `holder`, or says who has it.
pub fn acquire(dir: &Path, service: &str, holder: &Holder) -> Result<DeployLock, LockError> {
    let path = dir.join(format!("{service}.lock"));
    let io = |source| LockError::Io { path: path.clone(), source };
    crate::atomic_file::create_dir(dir, 0o700).map_err(io)?;
    let mut file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(LockError::Held {
                service: service.into(),
                holder: HolderText(read_holder(&mut file).map(Box::new)),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    // The lock is ours: a record still in the file belongs to a holder that died with it.
    let taken_over = read_holder(&mut file).filter(|old| old.pid != holder.pid || old.host != holder.host);
    let record = serde_json::to_vec(holder).expect("holder serializes");
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&record).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(DeployLock { file, taken_over })
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        // An empty file means "released cleanly"; the flock goes with the file handle.
        let _ = self.file.set_len(0);
    }
}

/// Who holds the lock of `service` now, without taking it (`None`: nobody).
pub fn holder(dir: &Path, service: &str) -> Option<Holder> {
    let mut file = OpenOptions::new().read(true).write(true).open(dir.join(format!("{service}.lock"))).ok()?;
    match file.try_lock() {
        Ok(()) => None,
        Err(_) => Some(read_holder(&mut file).unwrap_or_else(|| Holder {
            pid: 0,
            host: hostname(),
            performer: "unknown".into(),
            action: "starting".into(),
            since: String::new(),
        })),
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// This machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = std::env::temp_dir().join(format!("imgctl-lock-{}", std::process::id()));
        let first = Holder::this_process("deploy sha256:aa", "alice");
        let lock = acquire(&dir, "web", &first).unwrap();
        assert_eq!(lock.taken_over, None);
        // flock locks belong to the open file description: a second open in the same process
        // conflicts just as another process would.
        let second = Holder { pid: 1, ..Holder::this_process("rollback", "bob") };
        let error = acquire(&dir, "web", &second).unwrap_err();
        assert!(matches!(&error, LockError::Held { holder: HolderText(Some(h)), .. } if **h == first), "{error}");
        assert!(error.to_string().contains("deploy sha256:aa by alice"), "{error}");
        acquire(&dir, "api", &second).expect("another service has its own lock");
        assert_eq!(holder(&dir, "web"), Some(first));
        drop(lock);
        let again = acquire(&dir, "web", &second).unwrap();
        assert_eq!(again.taken_over, None, "a clean release leaves no record");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_dead_holders_record_is_reported_as_taken_over() {
        let dir = std::env::temp_dir().join(format!("imgctl-lock-dead-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dead = Holder { pid: 999_999, ..Holder::this_process("deploy sha256:aa", "ci") };
        std::fs::write(dir.join("web.lock"), serde_json::to_vec(&dead).unwrap()).unwrap();
        let lock = acquire(&dir, "web", &Holder::this_process("deploy", "me")).unwrap();
        assert_eq!(lock.taken_over, Some(dead));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
