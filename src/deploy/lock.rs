//! One deploy of a service at a time: an exclusive `flock` on a file that lives beside what it
//! protects ([`place`]), with who holds it written inside so a refused run can say who is
//! deploying.
//!
//! The kernel releases a `flock` when its holder dies, SIGKILL included, so a dead holder never
//! blocks the next run; the record it left is reported as a lock taken over. Saying who holds a
//! lock ([`holder_for`]) takes no lock and creates nothing: it asks the kernel's table of locks
//! ([`kernel`]). Testing the lock with `flock(LOCK_NB)` instead would take it whenever it is
//! free, and a deploy starting at that instant would be refused because of an `imgctl status`.
//!
//! On a shared host the lock file may sit in a directory others can write to (nginx's, a
//! deploy group's), so it is opened without following a link, must be a regular file with one
//! name, and is written only when it is ours: a file a dead run of another user left is not
//! written into but replaced, by a file of ours renamed over it while both are locked.

mod kernel;
pub mod place;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use place::{HOST_DIR, LockPlace, Scope};

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

    /// A holder whose record cannot be read (it has not written it yet).
    fn unknown() -> Self {
        Self { pid: 0, host: hostname(), performer: "unknown".into(), action: "starting".into(), since: String::new() }
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
    /// The lock file, or its directory, is something a lock cannot be trusted in: a link, a
    /// file with several names, a directory anyone can write to.
    #[error("refusing the lock {path}: {reason}")]
    Unsafe {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        reason: String,
    },
    /// A directory above the host's lock directory can be changed by someone else than root.
    #[error("the host's lock directory {HOST_DIR} cannot be trusted: {0}")]
    HostDir(#[source] crate::private_path::NotPrivate),
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
    place: LockPlace,
    /// The record of a holder that died with the lock (its run was cut off half-way).
    pub taken_over: Option<Holder>,
}

impl DeployLock {
    /// Where the lock lives, and so which runs it keeps out.
    pub fn place(&self) -> &LockPlace {
        &self.place
    }
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        // An empty file means "released cleanly"; the flock goes with the file handle.
        let _ = self.file.set_len(0);
    }
}

/// Takes the lock of `service` for `holder`, where [`place::resolve`] puts it: beside its
/// upstream file, else in the host's lock directory, else in `state_locks` (the run's
/// `state_dir/locks`). Every run that switches the same upstream meets the same lock,
/// whoever runs it and whatever its state directory.
pub fn acquire_for(
    upstream_file: Option<&Path>,
    state_locks: &Path,
    service: &str,
    holder: &Holder,
) -> Result<DeployLock, LockError> {
    acquire_at(place::resolve(upstream_file, state_locks, service)?, service, holder)
}

/// Takes the lock at `place` (its directory is created when missing and checked).
pub fn acquire_at(place: LockPlace, service: &str, holder: &Holder) -> Result<DeployLock, LockError> {
    place.prepare()?;
    let (file, taken_over) = lock_file(&place.file, service, holder, rustix::process::geteuid().as_raw())?;
    Ok(DeployLock { file, place, taken_over })
}

/// Takes the lock of `service` in `dir` (`dir/SERVICE.lock`), the place of the lock before
/// it moved beside the upstream file. Kept for callers that still name the state directory;
/// [`acquire_for`] is the lock that covers the host.
pub fn acquire(dir: &Path, service: &str, holder: &Holder) -> Result<DeployLock, LockError> {
    acquire_at(LockPlace::in_state_dir(dir, service), service, holder)
}

/// Who holds the lock of `service` now (`None`: nobody), looked up where [`acquire_for`]
/// takes it and, for runs of an older imgctl, in `state_locks`. Takes no lock, creates no
/// file: a run starting meanwhile is never refused because of it.
pub fn holder_for(upstream_file: Option<&Path>, state_locks: &Path, service: &str) -> Option<Holder> {
    let legacy = LockPlace::in_state_dir(state_locks, service);
    let current = place::resolve(upstream_file, state_locks, service).ok();
    current.iter().chain([&legacy]).find_map(|place| holder_at(&place.file))
}

/// Who holds the lock of `service` in `dir` now, without taking it (`None`: nobody).
pub fn holder(dir: &Path, service: &str) -> Option<Holder> {
    holder_at(&LockPlace::in_state_dir(dir, service).file)
}

/// Who holds the lock file `path`: a pure read, by the kernel's table of locks.
fn holder_at(path: &Path) -> Option<Holder> {
    let mut file = OpenOptions::new().read(true).custom_flags(no_follow()).open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let record = read_holder(&mut file);
    match kernel::flocked(meta.ino()) {
        Some(true) => Some(record.unwrap_or_else(Holder::unknown)),
        // The table can skip a line while other locks change (see `kernel::flocked_by`): the
        // process the record names is asked before the lock is called free. Otherwise it is
        // free, or the record of a run that died: the next run takes the lock over.
        Some(false) => record.filter(|r| r.host == hostname() && kernel::flocked_by(r.pid, meta.ino()) == Some(true)),
        // No table to ask (no /proc): a record is all there is to go by.
        None => record,
    }
}

/// Fresh looks at the lock file before giving up, when it is replaced under us each time.
const ATTEMPTS: usize = 4;

/// Locks the file at `path` for `holder` and writes its record; returns the handle that holds
/// the lock and the record of a dead holder found there. `euid` is the user we run as.
fn lock_file(path: &Path, service: &str, holder: &Holder, euid: u32) -> Result<(File, Option<Holder>), LockError> {
    let io = |source| LockError::Io { path: path.to_owned(), source };
    for _ in 0..ATTEMPTS {
        let (mut file, writable) = open_or_create(path)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() || meta.nlink() != 1 {
            return Err(LockError::Unsafe {
                path: path.to_owned(),
                reason: "it is not a regular file with a single name (a hard link to another file?); remove it".into(),
            });
        }
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
        // Whoever held it before us may have replaced the file meanwhile (taking over a dead
        // run's): the lock that counts is the one on the file at `path` now.
        if !names(path, &meta) {
            continue;
        }
        // The lock is ours: a record still in the file belongs to a holder that died with it.
        let taken_over = read_holder(&mut file).filter(|old| old.pid != holder.pid || old.host != holder.host);
        let record = serde_json::to_vec(holder).expect("holder serializes");
        if writable && meta.uid() == euid {
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(&record).map_err(io)?;
            file.sync_data().map_err(io)?;
            return Ok((file, taken_over));
        }
        // Another user's file: ours goes in its place, locked before anyone can open it. The
        // old one stays locked until the rename, so no one takes the lock in between.
        let (tmp, mut ours) = crate::atomic_file::create_beside(path, 0o644).map_err(io)?;
        let replaced = (|| {
            ours.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            ours.lock()?;
            ours.write_all(&record)?;
            ours.sync_all()?;
            std::fs::rename(&tmp, path)?;
            File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
        })();
        if let Err(e) = replaced {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        return Ok((ours, taken_over));
    }
    Err(io(std::io::Error::other("the lock file was replaced each time it was locked; try again")))
}

/// Whether `path` still names the file `meta` describes.
fn names(path: &Path, meta: &std::fs::Metadata) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|now| now.dev() == meta.dev() && now.ino() == meta.ino())
}

/// The flags every open of a lock file gets: a link is refused, not followed, and a FIFO
/// planted under the name does not block the open.
fn no_follow() -> i32 {
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32
}

/// Creates the lock file (mode 0644: anyone may read who holds it), or opens the one there,
/// for writing when we may. Returns the file and whether it is open for writing.
fn open_or_create(path: &Path) -> Result<(File, bool), LockError> {
    let created =
        OpenOptions::new().read(true).write(true).create_new(true).custom_flags(no_follow()).mode(0o644).open(path);
    match created {
        Ok(file) => {
            // The mode given at creation is narrowed by the umask.
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o644));
            Ok((file, true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => open_existing(path),
        Err(source) => Err(open_error(path, source)),
    }
}

/// Opens the lock file there, for writing when we may: a flock needs no write access, so
/// another user's file can still be locked (and then replaced).
fn open_existing(path: &Path) -> Result<(File, bool), LockError> {
    let open = |write| OpenOptions::new().read(true).write(write).custom_flags(no_follow()).open(path);
    match open(true) {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            open(false).map(|file| (file, false)).map_err(|source| open_error(path, source))
        }
        Err(source) => Err(open_error(path, source)),
    }
}

fn open_error(path: &Path, source: std::io::Error) -> LockError {
    if source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return LockError::Unsafe {
            path: path.to_owned(),
            reason: "it is a symbolic link, which a lock never follows; remove it".into(),
        };
    }
    LockError::Io { path: path.to_owned(), source }
}

/// Records are a few hundred bytes; a planted huge file is not read whole.
const RECORD_LIMIT: u64 = 64 * 1024;

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(RECORD_LIMIT).read_to_string(&mut text).ok()?;
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

    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("imgctl-lock-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self(dir)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let scratch = Scratch::new("second");
        let dir = &scratch.0;
        let first = Holder::this_process("deploy sha256:aa", "alice");
        let lock = acquire(dir, "web", &first).unwrap();
        assert_eq!(lock.taken_over, None);
        // flock locks belong to the open file description: a second open in the same process
        // conflicts just as another process would.
        let second = Holder { pid: 1, ..Holder::this_process("rollback", "bob") };
        let error = acquire(dir, "web", &second).unwrap_err();
        assert!(matches!(&error, LockError::Held { holder: HolderText(Some(h)), .. } if **h == first), "{error}");
        assert!(error.to_string().contains("deploy sha256:aa by alice"), "{error}");
        acquire(dir, "api", &second).expect("another service has its own lock");
        assert_eq!(holder(dir, "web"), Some(first));
        drop(lock);
        assert_eq!(holder(dir, "web"), None, "released");
        let again = acquire(dir, "web", &second).unwrap();
        assert_eq!(again.taken_over, None, "a clean release leaves no record");
    }

    #[test]
    fn a_dead_holders_record_is_reported_as_taken_over() {
        let scratch = Scratch::new("dead");
        std::fs::create_dir_all(&scratch.0).unwrap();
        let dead = Holder { pid: 999_999, ..Holder::this_process("deploy sha256:aa", "ci") };
        std::fs::write(scratch.0.join("web.lock"), serde_json::to_vec(&dead).unwrap()).unwrap();
        assert_eq!(holder(&scratch.0, "web"), None, "a dead run holds nothing");
        let lock = acquire(&scratch.0, "web", &Holder::this_process("deploy", "me")).unwrap();
        assert_eq!(lock.taken_over, Some(dead));
    }

    // Issue 11: `imgctl status` tested the lock by taking it, so a deploy starting at that
    // instant was refused. Before the fix, this failed within the first few hundred rounds.
    #[test]
    fn a_status_read_never_refuses_a_deploy() {
        const ROUNDS: &str = "IMGCTL_TEST_LOCK_ROUNDS";
        // The rounds run in a process of their own: other tests start programs meanwhile, and
        // a child holds a copy of every open file of the test process from its fork to its
        // exec, the locked one included, so a release could come late and refuse a round.
        if std::env::var_os(ROUNDS).is_none() {
            let name = "deploy::lock::tests::a_status_read_never_refuses_a_deploy";
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads=1", "--nocapture"])
                .env(ROUNDS, "1000")
                .output()
                .unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
            return;
        }
        let rounds: usize = std::env::var(ROUNDS).unwrap().parse().unwrap();
        let scratch = Scratch::new("status");
        let dir = scratch.0.clone();
        let me = Holder::this_process("deploy sha256:aa", "alice");
        drop(acquire(&dir, "web", &me).unwrap());
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (dir, done) = (dir.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = holder(&dir, "web");
                    reads += 1;
                }
                reads
            })
        };
        for round in 0..rounds {
            let lock =
                acquire(&dir, "web", &me).unwrap_or_else(|e| panic!("round {round}: refused by a status read: {e}"));
            assert_eq!(holder(&dir, "web").as_ref(), Some(&me));
            drop(lock);
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }

    #[test]
    fn reading_the_holder_creates_nothing() {
        let scratch = Scratch::new("pure");
        assert_eq!(holder(&scratch.0, "web"), None);
        assert_eq!(holder_for(Some(&scratch.0.join("nginx/web.conf")), &scratch.0.join("state"), "web"), None);
        assert!(!scratch.0.exists(), "a read made {}", scratch.0.display());
    }

    #[test]
    fn a_link_at_the_lock_path_is_refused_not_followed() {
        let scratch = Scratch::new("link");
        std::fs::create_dir_all(&scratch.0).unwrap();
        let target = scratch.0.join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        std::os::unix::fs::symlink(&target, scratch.0.join("web.lock")).unwrap();
        let error = acquire(&scratch.0, "web", &Holder::this_process("deploy", "me")).unwrap_err();
        assert!(matches!(error, LockError::Unsafe { .. }), "{error}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        // A second name of another file is refused as well: the release would empty it.
        std::fs::remove_file(scratch.0.join("web.lock")).unwrap();
        std::fs::hard_link(&target, scratch.0.join("web.lock")).unwrap();
        let error = acquire(&scratch.0, "web", &Holder::this_process("deploy", "me")).unwrap_err();
        assert!(matches!(error, LockError::Unsafe { .. }), "{error}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    }

    #[test]
    fn another_users_leftover_is_replaced_not_written_into() {
        let scratch = Scratch::new("other");
        std::fs::create_dir_all(&scratch.0).unwrap();
        let path = scratch.0.join("web.lock");
        let dead = Holder { pid: 999_999, ..Holder::this_process("deploy sha256:aa", "bob") };
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        let theirs = File::open(&path).unwrap();
        // Run as someone who does not own the file.
        let stranger = rustix::process::geteuid().as_raw() + 1;
        let me = Holder::this_process("deploy sha256:bb", "alice");
        let (held, taken_over) = lock_file(&path, "web", &me, stranger).unwrap();
        assert_eq!(taken_over, Some(dead.clone()));
        let mut old = String::new();
        (&theirs).read_to_string(&mut old).unwrap();
        assert_eq!(serde_json::from_str::<Holder>(&old).unwrap(), dead, "their file was not written to");
        assert_ne!(theirs.metadata().unwrap().ino(), std::fs::metadata(&path).unwrap().ino());
        assert_eq!(holder(&scratch.0, "web"), Some(me), "ours is in its place, locked");
        let error = acquire(&scratch.0, "web", &Holder::this_process("rollback", "carol")).unwrap_err();
        assert!(matches!(error, LockError::Held { .. }), "{error}");
        drop(held);
    }
}
