//! One switch at a time through an nginx. Two services' switches must not interleave: a file
//! written by one between the other's test and reload would be loaded untested, and a broken
//! one fails the other's test. The services of one nginx keep their upstream files in one
//! directory (its `conf.d`), so the lock is a file there, `.imgctl-switch.lock` (hidden from
//! an `include conf.d/*;`), held only around stage, test, rename, test and reload.
//!
//! The file is never written, so whoever created it, anyone who can open it can lock it; it is
//! opened without following a link, so a link planted under its name creates nothing where it
//! points.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::ProxyError;

const NAME: &str = ".imgctl-switch.lock";
const POLL: Duration = Duration::from_millis(20);

/// The switch lock of a directory, held until dropped.
#[derive(Debug)]
pub(super) struct SwitchLock {
    _file: File,
}

/// Takes the switch lock of `dir`, waiting up to `wait` for the switch in progress to end.
pub(super) fn take(dir: &Path, wait: Duration) -> Result<SwitchLock, ProxyError> {
    let path = dir.join(NAME);
    let failed = |source| ProxyError::File { action: "locking the nginx switch", path: path.clone(), source };
    let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32;
    let open =
        |write| OpenOptions::new().read(true).write(write).create(write).custom_flags(flags).mode(0o644).open(&path);
    let file = match open(true) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => open(false),
        opened => opened,
    }
    .map_err(failed)?;
    if !file.metadata().map_err(failed)?.is_file() {
        return Err(failed(std::io::Error::other("not a regular file; remove it")));
    }
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(SwitchLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => std::thread::sleep(POLL),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(ProxyError::SwitchBusy { path: path.clone(), waited: started.elapsed() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(failed(e)),
        }
    }
}
