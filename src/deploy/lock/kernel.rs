//! The kernel's table of file locks, `/proc/locks`: whether a file is `flock`ed, read without
//! taking the lock or testing it.
//!
//! Two limits, both only of what `imgctl status` shows, never of the lock itself: in a PID
//! namespace of its own (imgctl in a container) the table lists only that namespace's locks;
//! and a lock is matched by inode number alone, since the table names the device of the
//! filesystem's superblock, which differs from what `stat` says on btrfs subvolumes and some
//! overlay mounts. Mistaking another file for ours would take another `flock`ed file with the
//! same inode number on another filesystem while a dead run's record lies in ours.

/// Whether a process holds a `flock` on inode `ino`; `None` when the table cannot be read.
pub(super) fn flocked(ino: u64) -> Option<bool> {
    std::fs::read_to_string("/proc/locks").ok().map(|table| flocked_in(&table, ino))
}

/// Whether process `pid` holds a `flock` on inode `ino`, by the `lock:` lines of its open
/// files (`/proc/PID/fdinfo/FD`); `None` when they cannot be read.
///
/// `/proc/locks` is read a page at a time, and a lock taken or released elsewhere between two
/// reads shifts the table under the reader: a line can be skipped. One small file per open
/// file is read whole, so the record's own process is asked when the table says "free".
pub(super) fn flocked_by(pid: u32, ino: u64) -> Option<bool> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()?;
    let found = dir.flatten().any(|fd| {
        std::fs::read_to_string(fd.path()).is_ok_and(|info| {
            let locks = info.lines().filter_map(|line| line.strip_prefix("lock:"));
            flocked_in(&locks.map(|l| format!("{}\n", l.trim_start())).collect::<String>(), ino)
        })
    });
    Some(found)
}

/// `1: FLOCK  ADVISORY  WRITE 4858 fe:00:5317230 0 EOF`, one lock a line; a process waiting
/// for a lock is listed under it as `1: -> FLOCK ...` and holds nothing.
fn flocked_in(table: &str, ino: u64) -> bool {
    table.lines().any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        fields.next() == Some("FLOCK")
            && fields.nth(3).and_then(|id| id.rsplit(':').next()).and_then(|i| i.parse::<u64>().ok()) == Some(ino)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn holders_are_found_and_waiters_and_other_kinds_are_not() {
        let table = "1: FLOCK  ADVISORY  WRITE 4858 fe:00:5317230 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 4900 fe:00:77 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 2615 fe:00:88 0 EOF\n\
                     3: OFDLCK ADVISORY  READ -1 00:06:3 0 EOF\n";
        assert!(flocked_in(table, 5317230));
        assert!(!flocked_in(table, 77), "a waiter holds nothing");
        assert!(!flocked_in(table, 88), "a POSIX lock is not imgctl's");
        assert!(!flocked_in(table, 53172));
    }

    #[test]
    fn a_flock_of_this_process_is_in_the_table() {
        let path = std::env::temp_dir().join(format!("imgctl-kernel-lock-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let ino = file.metadata().unwrap().ino();
        assert_eq!(flocked(ino), Some(false));
        file.lock().unwrap();
        assert_eq!(flocked(ino), Some(true));
        assert_eq!(flocked_by(std::process::id(), ino), Some(true), "by this process's fdinfo");
        file.unlock().unwrap();
        assert_eq!(flocked(ino), Some(false));
        assert_eq!(flocked_by(std::process::id(), ino), Some(false));
        std::fs::remove_file(&path).unwrap();
    }
}
