//! Directories and files that only the current user (or root) can change.
//!
//! The rule is ssh's StrictModes. A directory imgctl keeps files in must be owned by the current
//! user or root and not writable by group or others, and so must every directory above it up to
//! and including the home directory: whoever can write to one of them can swap imgctl's files (an
//! identity of their own, a link to a file of theirs) or the directory itself. Above the home
//! directory the system's layout is the administrator's, as for ssh; a directory outside the home
//! is checked up to `/`. An ancestor that others may write to is accepted when it is sticky and
//! owned by root or the user (`/tmp`): the sticky bit keeps others from renaming or removing the
//! entries they do not own, and the entry below it is checked in turn. The directory itself gets
//! no such allowance, since others could still plant names in it. Files holding the identity or
//! the store must have no group or other bits (0600), like ssh's private keys.
//!
//! Paths are resolved first (symbolic links followed, as ssh does with `realpath`), so a linked
//! `~/.config` is judged by the directories it really lives in.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode bits that let group or others write.
const WRITABLE_BY_OTHERS: u32 = 0o022;
/// The mode bits that let group or others read, write or search.
const OPEN_TO_OTHERS: u32 = 0o077;
const STICKY: u32 = 0o1000;

/// A directory or file that someone else than the current user (or root) can change.
#[derive(Debug, thiserror::Error)]
pub enum NotPrivate {
    /// Owned by another user, who could replace what imgctl keeps there.
    #[error(
        "{path} is owned by uid {owner}, not by you (uid {uid}) or root, so its owner can replace imgctl's files: use a directory of your own, or run: chown {uid} {path}"
    )]
    OwnedByOther {
        /// The directory or file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The current (effective) user.
        uid: u32,
    },
    /// A directory group or others can write to.
    #[error("{path} has mode {mode:04o}, so group or others can replace imgctl's files in it; run: {fix} {path}")]
    WritableByOthers {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The command that puts it right: `chmod 700` for imgctl's own directory, `chmod go-w`
        /// for one above it.
        fix: &'static str,
    },
    /// A file group or others can read or write.
    #[error("{path} has mode {mode:04o}, so group or others can read or change it; run: chmod 600 {path}")]
    OpenToOthers {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Something other than a directory where imgctl keeps its files.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The path could not be inspected.
    #[error("checking {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// Creates `dir` (and its parents) with mode 0700 where missing, then [`check_dir`]s it.
pub fn ensure_dir(dir: &Path) -> Result<(), NotPrivate> {
    crate::atomic_file::create_dir(dir, 0o700).map_err(|source| NotPrivate::Io { path: dir.to_owned(), source })?;
    check_dir(dir)
}

/// Checks `dir` and the directories above it, up to the home directory (`$HOME`), by the rule
/// of this module.
pub fn check_dir(dir: &Path) -> Result<(), NotPrivate> {
    let home = std::env::var_os("HOME").filter(|home| !home.is_empty()).map(PathBuf::from);
    check_dir_under(dir, home.as_deref())
}

/// [`check_dir`] when it exists; `Ok(false)` when it does not.
pub fn check_dir_if_present(dir: &Path) -> Result<bool, NotPrivate> {
    match fs::symlink_metadata(dir) {
        Ok(_) => check_dir(dir).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(NotPrivate::Io { path: dir.to_owned(), source }),
    }
}

/// Checks an open file: owned by the current user or root, no group or other bits. The check
/// is on the open file, so what is checked is what is read.
pub fn check_file(file: &File, path: &Path) -> Result<(), NotPrivate> {
    let meta = file.metadata().map_err(|source| NotPrivate::Io { path: path.to_owned(), source })?;
    check_owner(path, &meta)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & OPEN_TO_OTHERS != 0 {
        return Err(NotPrivate::OpenToOthers { path: path.to_owned(), mode });
    }
    Ok(())
}

fn check_dir_under(dir: &Path, home: Option<&Path>) -> Result<(), NotPrivate> {
    let real = fs::canonicalize(dir).map_err(|source| NotPrivate::Io { path: dir.to_owned(), source })?;
    let home = home.and_then(|home| fs::canonicalize(home).ok());
    let mut current = real.as_path();
    let mut own = true;
    loop {
        let meta = fs::metadata(current).map_err(|source| NotPrivate::Io { path: current.to_owned(), source })?;
        if !meta.is_dir() {
            return Err(NotPrivate::NotADirectory { path: current.to_owned() });
        }
        check_owner(current, &meta)?;
        let mode = meta.permissions().mode() & 0o7777;
        let sticky_ancestor = !own && mode & STICKY != 0;
        if mode & WRITABLE_BY_OTHERS != 0 && !sticky_ancestor {
            let fix = if own { "chmod 700" } else { "chmod go-w" };
            return Err(NotPrivate::WritableByOthers { path: current.to_owned(), mode, fix });
        }
        if home.as_deref() == Some(current) {
            return Ok(());
        }
        match current.parent() {
            Some(parent) => current = parent,
            None => return Ok(()),
        }
        own = false;
    }
}

fn check_owner(path: &Path, meta: &Metadata) -> Result<(), NotPrivate> {
    let uid = rustix::process::geteuid().as_raw();
    let owner = meta.uid();
    if owner != uid && owner != 0 {
        return Err(NotPrivate::OwnedByOther { path: path.to_owned(), owner, uid });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("imgctl-private-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            crate::atomic_file::create_dir(&dir.join("home/.config/imgctl"), 0o700).unwrap();
            Self(dir)
        }
        fn home(&self) -> PathBuf {
            self.0.join("home")
        }
        fn chmod(&self, path: &Path, mode: u32) {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_directory_and_its_parents_up_to_the_home_must_not_be_writable_by_others() {
        let scratch = Scratch::new("modes");
        let home = scratch.home();
        let dir = home.join(".config/imgctl");
        check_dir_under(&dir, Some(&home)).unwrap();

        scratch.chmod(&dir, 0o770);
        let err = check_dir_under(&dir, Some(&home)).unwrap_err();
        assert!(matches!(&err, NotPrivate::WritableByOthers { fix: "chmod 700", .. }), "{err}");
        assert!(err.to_string().ends_with(&format!("run: chmod 700 {}", dir.display())), "{err}");
        scratch.chmod(&dir, 0o700);

        scratch.chmod(&home.join(".config"), 0o777);
        let err = check_dir_under(&dir, Some(&home)).unwrap_err();
        assert!(
            matches!(&err, NotPrivate::WritableByOthers { path, fix: "chmod go-w", .. } if path.ends_with(".config"))
        );
        scratch.chmod(&home.join(".config"), 0o755);

        // Above the home the check stops; without a home it goes on to `/`.
        scratch.chmod(&scratch.0, 0o777);
        check_dir_under(&dir, Some(&home)).unwrap();
        assert!(matches!(check_dir_under(&dir, None), Err(NotPrivate::WritableByOthers { .. })));
        // A sticky ancestor writable by others (as /tmp is) passes; the directory itself does not.
        scratch.chmod(&scratch.0, 0o1777);
        check_dir_under(&dir, None).unwrap();
        scratch.chmod(&dir, 0o1777);
        assert!(matches!(check_dir_under(&dir, None), Err(NotPrivate::WritableByOthers { .. })));
    }

    #[test]
    fn a_link_is_judged_by_where_it_leads() {
        let scratch = Scratch::new("link");
        let home = scratch.home();
        let open = scratch.0.join("open");
        fs::create_dir(&open).unwrap();
        scratch.chmod(&open, 0o777);
        std::os::unix::fs::symlink(&open, home.join("linked")).unwrap();
        let err = check_dir_under(&home.join("linked"), Some(&home)).unwrap_err();
        assert!(matches!(&err, NotPrivate::WritableByOthers { path, .. } if path.ends_with("open")), "{err}");
    }

    #[test]
    fn a_file_open_to_group_or_others_is_refused() {
        let scratch = Scratch::new("file");
        let path = scratch.0.join("identity.txt");
        fs::write(&path, "key").unwrap();
        scratch.chmod(&path, 0o600);
        check_file(&File::open(&path).unwrap(), &path).unwrap();
        scratch.chmod(&path, 0o640);
        let err = check_file(&File::open(&path).unwrap(), &path).unwrap_err();
        assert!(err.to_string().ends_with(&format!("run: chmod 600 {}", path.display())), "{err}");
    }
}
