//! Replacing a file so that a crash at any instant leaves the old or the new contents.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What separates a file's name from the random suffix of its temporary files.
const TEMPORARY_MARK: &str = ".tmp-";
/// Random bytes in a temporary file's name: 64 bits, hex-encoded.
const SUFFIX_BYTES: usize = 8;
/// Fresh names tried before giving up, when one is taken (by chance, or by a planted file).
const ATTEMPTS: usize = 4;

/// Writes `contents` to `path` through a temporary file in the same directory: write, fsync,
/// rename over `path`, fsync the directory. The file gets exactly `mode` (the temporary one
/// too, so a secret-bearing file is never readable by others, not even half-written).
///
/// The temporary file has a random name and is created new (`O_CREAT|O_EXCL`, `O_NOFOLLOW`):
/// whoever can guess or plant a name in the directory (a link to a file of theirs) is never
/// written through, and the final rename replaces a link at `path` instead of following it.
/// Racing writers never share a temporary file; callers that race on the same `path` must
/// still serialize themselves to keep each other's contents.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let (tmp, mut file) = create_beside(path, mode)?;
    let dir = parent(path);
    let result = (|| {
        // The mode given at creation is narrowed by the umask; a file nginx must read (0644)
        // needs exactly its mode.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A new file beside `path` (`<name>.tmp-<random hex>`, mode `mode`), created by this call and
/// no one else's: for a caller that streams into it and renames it over `path` itself.
pub fn create_beside(path: &Path, mode: u32) -> io::Result<(PathBuf, File)> {
    let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
    create_temporary(parent(path), name, mode)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A new file `dir/<name>.tmp-<random hex>`, created by this call and no one else's.
fn create_temporary(dir: &Path, name: &OsStr, mode: u32) -> io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let mut random = [0u8; SUFFIX_BYTES];
        getrandom::getrandom(&mut random)?;
        let mut tmp_name = name.to_os_string();
        tmp_name.push(TEMPORARY_MARK);
        tmp_name.push(random.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let tmp = dir.join(tmp_name);
        match create_new(&tmp, mode) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("ATTEMPTS > 0"))
}

/// Creates `path`, failing if anything is there already, a link included (even a dangling one).
fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    // O_EXCL alone already refuses a link at the final component; O_NOFOLLOW says so outright
    // and keeps it so should the flags ever change.
    let no_follow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    OpenOptions::new().write(true).create_new(true).custom_flags(no_follow).mode(mode).open(path)
}

/// Removes temporary files [`write`] left for `path` when its process was killed mid-write.
/// Only call it while holding the lock that serializes writers of `path`.
///
/// Only names [`write`] makes (the file name, `.tmp-`, hex digits; older versions put a
/// decimal pid there) are considered, and only regular files owned by the current user are
/// removed: a link or another user's file planted under such a name is left alone, and
/// removing never follows a link.
pub fn remove_stale_temporaries(path: &Path) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return Ok(()) };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let mut prefix = name.to_os_string();
    prefix.push(TEMPORARY_MARK);
    let prefix = prefix.as_encoded_bytes();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let uid = rustix::process::geteuid().as_raw();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(suffix) = file_name.as_encoded_bytes().strip_prefix(prefix) else { continue };
        if suffix.is_empty() || !suffix.iter().all(u8::is_ascii_hexdigit) {
            continue;
        }
        // Not followed: the entry itself.
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        if meta.file_type().is_file() && meta.uid() == uid {
            match fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Creates `dir` and its parents; a directory this creates gets `mode` (0700 for ours).
pub fn create_dir(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("imgctl-atomic-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            create_dir(&dir, 0o700).unwrap();
            Self(dir)
        }
        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> =
                fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            names
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn replaces_contents_and_sets_the_mode() {
        let dir = Scratch::new("replace");
        let path = dir.0.join("file");
        write(&path, b"old", 0o600).unwrap();
        write(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(dir.names(), ["file"], "no temporary file is left behind");
    }

    #[test]
    fn a_link_at_the_temporary_name_is_never_followed() {
        let dir = Scratch::new("link");
        let target = dir.0.join("someone-elses");
        fs::write(&target, b"theirs").unwrap();
        let planted = dir.0.join("file.tmp-0123abcd");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let err = create_new(&planted, 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&target).unwrap(), b"theirs");
        // A dangling link creates nothing where it points.
        let dangling = dir.0.join("file.tmp-dead");
        std::os::unix::fs::symlink(dir.0.join("nowhere"), &dangling).unwrap();
        assert_eq!(create_new(&dangling, 0o600).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert!(!dir.0.join("nowhere").exists());
    }

    #[test]
    fn stale_temporaries_are_removed_but_links_and_other_names_are_kept() {
        let dir = Scratch::new("stale");
        let path = dir.0.join("store");
        for leftover in ["store.tmp-9f86d081884c7d65", "store.tmp-4242"] {
            fs::write(dir.0.join(leftover), b"half").unwrap();
        }
        fs::write(dir.0.join("store.tmp-notes.txt"), b"kept").unwrap();
        fs::write(dir.0.join("other.tmp-1234"), b"kept").unwrap();
        let target = dir.0.join("target");
        fs::write(&target, b"kept").unwrap();
        std::os::unix::fs::symlink(&target, dir.0.join("store.tmp-abcd")).unwrap();
        remove_stale_temporaries(&path).unwrap();
        assert_eq!(dir.names(), ["other.tmp-1234", "store.tmp-abcd", "store.tmp-notes.txt", "target"]);
        assert_eq!(fs::read(&target).unwrap(), b"kept");
    }
}
