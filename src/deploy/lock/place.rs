//! Where a service's deploy lock lives. What a deploy changes belongs to the host, not to
//! whoever runs it: the containers, and the upstream file nginx includes. So the lock lives
//! beside them, and two runs with different state directories (`IMGCTL_STATE_DIR`), or of
//! different users, meet the same lock:
//!
//! - [`Scope::Upstream`]: beside the upstream file, `.NAME.imgctl-lock` in its directory.
//!   Every run that can switch the service's traffic writes to that directory anyway; the
//!   leading dot keeps the file out of an `include conf.d/*;`, whose glob skips hidden names.
//! - [`Scope::Host`]: without an upstream file (swarm's own rolling update), in [`HOST_DIR`].
//!   Root creates it; another user locks there when it exists and they may write to it (an
//!   administrator shares it with a deploy group). Under `/var/lib`, not `/run`: the record of
//!   a run a reboot cut off is still reported as a lock taken over.
//! - [`Scope::StateDir`]: otherwise in the run's own `state_dir/locks`, as before: a user who
//!   cannot write to the host's directory has no place shared with other users. (Swarm still
//!   refuses an update written against a service version that changed since it was read.)

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::LockError;

/// The host's lock directory, for services without an upstream file.
pub const HOST_DIR: &str = "/var/lib/imgctl/locks";

/// Which runs a lock keeps out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every run on this host that switches the same upstream file, whoever runs it.
    Upstream,
    /// Every run on this host that may write to [`HOST_DIR`].
    Host,
    /// Only the runs that share this state directory.
    StateDir,
}

/// Where a service's lock file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockPlace {
    /// The lock file.
    pub file: PathBuf,
    /// Which runs it keeps out.
    pub scope: Scope,
}

/// Decides where the lock of `service` lives; creates nothing. `state_locks` is the run's
/// `state_dir/locks`, the place of last resort.
pub fn resolve(upstream_file: Option<&Path>, state_locks: &Path, service: &str) -> Result<LockPlace, LockError> {
    resolve_with(upstream_file, state_locks, service, Path::new(HOST_DIR), rustix::process::geteuid().as_raw())
}

fn resolve_with(
    upstream_file: Option<&Path>,
    state_locks: &Path,
    service: &str,
    host_dir: &Path,
    euid: u32,
) -> Result<LockPlace, LockError> {
    if let Some(upstream) = upstream_file {
        // One lock per upstream file: two services that (wrongly) share one are serialized too.
        let mut name = OsString::from(".");
        name.push(upstream.file_name().unwrap_or(service.as_ref()));
        name.push(".imgctl-lock");
        return Ok(LockPlace { file: parent(upstream).join(name), scope: Scope::Upstream });
    }
    let host = LockPlace { file: host_dir.join(format!("{service}.lock")), scope: Scope::Host };
    if euid == 0 {
        return Ok(host);
    }
    match std::fs::symlink_metadata(host_dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockPlace::in_state_dir(state_locks, service)),
        Err(source) => return Err(LockError::Io { path: host_dir.to_owned(), source }),
    }
    // It is there: someone meant it to be shared, so one that cannot be trusted is an error,
    // never a quiet fallback to a lock no one else sees.
    check_host_dir(host_dir, euid)?;
    let writable = rustix::fs::accessat(
        rustix::fs::CWD,
        host_dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
        rustix::fs::AtFlags::EACCESS,
    )
    .is_ok();
    Ok(if writable { host } else { LockPlace::in_state_dir(state_locks, service) })
}

impl LockPlace {
    /// `dir/SERVICE.lock` in a state directory.
    pub(super) fn in_state_dir(dir: &Path, service: &str) -> Self {
        Self { file: dir.join(format!("{service}.lock")), scope: Scope::StateDir }
    }

    /// Creates the lock's directory when missing, and checks it.
    pub(super) fn prepare(&self) -> Result<(), LockError> {
        let dir = parent(&self.file);
        let io = |source| LockError::Io { path: dir.to_owned(), source };
        match self.scope {
            // nginx reads this directory: 0755, as the upstream file's writer makes it.
            Scope::Upstream => {
                crate::atomic_file::create_dir(dir, 0o755).map_err(io)?;
                check_shared_dir(dir)
            }
            Scope::Host => {
                crate::atomic_file::create_dir(dir, 0o755).map_err(io)?;
                check_host_dir(dir, rustix::process::geteuid().as_raw())
            }
            Scope::StateDir => crate::atomic_file::create_dir(dir, 0o700).map_err(io),
        }
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

const WRITABLE_BY_ANYONE: u32 = 0o002;
const STICKY: u32 = 0o1000;

/// A directory anyone on the host may write to lets anyone swap the lock for their own, unless
/// it is sticky (`/tmp`): then no one can rename or remove another user's file. A group may
/// write to it: that is how a deploy group shares nginx's directory.
fn check_shared_dir(dir: &Path) -> Result<(), LockError> {
    let meta = std::fs::metadata(dir).map_err(|source| LockError::Io { path: dir.to_owned(), source })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & WRITABLE_BY_ANYONE != 0 && mode & STICKY == 0 {
        return Err(LockError::Unsafe {
            path: dir.to_owned(),
            reason: format!(
                "the directory has mode {mode:04o}, so anyone on the host can replace the lock (and nginx's files); run: chmod o-w {}",
                dir.display()
            ),
        });
    }
    Ok(())
}

/// The host's lock directory: a real directory (not a link), owned by root or by us, that
/// others may not write to (a group may); the directories above it owned by root and not
/// writable by group or others, by the rule of [`crate::private_path`].
fn check_host_dir(dir: &Path, euid: u32) -> Result<(), LockError> {
    if let Some(above) = dir.parent() {
        crate::private_path::check_dir(above).map_err(LockError::HostDir)?;
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|source| LockError::Io { path: dir.to_owned(), source })?;
    let unsafe_dir = |reason: String| Err(LockError::Unsafe { path: dir.to_owned(), reason });
    if !meta.is_dir() {
        return unsafe_dir("it is not a directory (a symbolic link is not followed); remove it".into());
    }
    if meta.uid() != 0 && meta.uid() != euid {
        return unsafe_dir(format!(
            "it is owned by uid {}, who could replace every lock in it; run: sudo chown root {}",
            meta.uid(),
            dir.display()
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & WRITABLE_BY_ANYONE != 0 {
        return unsafe_dir(format!(
            "it has mode {mode:04o}, so anyone on the host can replace the locks; share it with a group instead: sudo chmod 2775 {0} && sudo chgrp GROUP {0}",
            dir.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Holder, acquire_at, acquire_for};
    use super::*;

    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("imgctl-lockplace-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            Self(dir)
        }
        fn chmod(&self, path: &Path, mode: u32) {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    // Issue 11: the lock lived in each run's state directory, so two runs with different
    // IMGCTL_STATE_DIR deployed one service at once. Now both meet the lock beside the
    // upstream file.
    #[test]
    fn two_state_dirs_deploying_one_upstream_are_serialized() {
        let scratch = Scratch::new("two-states");
        let upstream = scratch.0.join("nginx/conf.d/web.conf");
        let alice = Holder::this_process("deploy sha256:aa", "alice");
        let lock = acquire_for(Some(&upstream), &scratch.0.join("alice/locks"), "web", &alice).unwrap();
        assert_eq!(lock.place().scope, Scope::Upstream);
        assert_eq!(lock.place().file, scratch.0.join("nginx/conf.d/.web.conf.imgctl-lock"));
        let bob = Holder { pid: 1, ..Holder::this_process("deploy sha256:bb", "bob") };
        let error = acquire_for(Some(&upstream), &scratch.0.join("bob/locks"), "web", &bob).unwrap_err();
        assert!(error.to_string().contains("deploy sha256:aa by alice"), "{error}");
        assert_eq!(super::super::holder_for(Some(&upstream), &scratch.0.join("bob/locks"), "web"), Some(alice));
        drop(lock);
        acquire_for(Some(&upstream), &scratch.0.join("bob/locks"), "web", &bob).unwrap();
    }

    #[test]
    fn without_an_upstream_file_the_host_directory_is_used_when_it_can_be() {
        let scratch = Scratch::new("host");
        let host = scratch.0.join("var-lib-imgctl/locks");
        let state = scratch.0.join("state/locks");
        let me = rustix::process::geteuid().as_raw();
        // Root creates the host directory; anyone else falls back while it does not exist.
        let place = resolve_with(None, &state, "worker", &host, 0).unwrap();
        assert_eq!(place, LockPlace { file: host.join("worker.lock"), scope: Scope::Host });
        let place = resolve_with(None, &state, "worker", &host, me.max(1)).unwrap();
        assert_eq!(place, LockPlace::in_state_dir(&state, "worker"));
        // Once it exists (made by root, shared with a group) everyone who may write locks there.
        std::fs::create_dir_all(&host).unwrap();
        scratch.chmod(&host, 0o2775);
        let place = resolve_with(None, &state, "worker", &host, me).unwrap();
        assert_eq!(place.scope, Scope::Host);
        let held = acquire_at(place, "worker", &Holder::this_process("deploy", "me")).unwrap();
        assert_eq!(super::super::holder(&host, "worker").map(|h| h.performer), Some("me".into()));
        drop(held);
    }

    #[test]
    fn a_host_directory_others_control_is_refused() {
        let scratch = Scratch::new("host-unsafe");
        let host = scratch.0.join("var-lib-imgctl/locks");
        let state = scratch.0.join("state/locks");
        std::fs::create_dir_all(&host).unwrap();
        // Checked as a user other than root (root makes the directory its own way).
        let me = rustix::process::geteuid().as_raw();
        let user = me.max(1);

        scratch.chmod(&host, 0o777);
        let error = resolve_with(None, &state, "worker", &host, user).unwrap_err();
        assert!(matches!(&error, LockError::Unsafe { reason, .. } if reason.contains("0777")), "{error}");
        scratch.chmod(&host, 0o755);

        // Owned by someone else than root or the user: as root, hand it to nobody; as anyone
        // else, pretend to be another user.
        let stranger = if me == 0 {
            rustix::fs::chown(&host, Some(rustix::process::Uid::from_raw(65534)), None).unwrap();
            user
        } else {
            me + 1
        };
        let error = resolve_with(None, &state, "worker", &host, stranger).unwrap_err();
        assert!(matches!(&error, LockError::Unsafe { reason, .. } if reason.contains("owned by uid")), "{error}");
        if me == 0 {
            rustix::fs::chown(&host, Some(rustix::process::Uid::from_raw(0)), None).unwrap();
        }

        // A link in its place is not followed.
        std::fs::remove_dir(&host).unwrap();
        std::os::unix::fs::symlink(&state, &host).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let error = resolve_with(None, &state, "worker", &host, user).unwrap_err();
        assert!(matches!(&error, LockError::Unsafe { reason, .. } if reason.contains("not a directory")), "{error}");

        // The directory above it must not be open to others either.
        std::fs::remove_file(&host).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        scratch.chmod(&scratch.0.join("var-lib-imgctl"), 0o777);
        let error = resolve_with(None, &state, "worker", &host, user).unwrap_err();
        assert!(matches!(error, LockError::HostDir(_)), "{error}");
    }

    #[test]
    fn an_upstream_directory_anyone_can_write_to_is_refused_unless_sticky() {
        let scratch = Scratch::new("open-dir");
        let upstream = scratch.0.join("conf.d/web.conf");
        std::fs::create_dir_all(upstream.parent().unwrap()).unwrap();
        scratch.chmod(upstream.parent().unwrap(), 0o777);
        let me = Holder::this_process("deploy", "me");
        let error = acquire_for(Some(&upstream), &scratch.0.join("state"), "web", &me).unwrap_err();
        assert!(matches!(error, LockError::Unsafe { .. }), "{error}");
        scratch.chmod(upstream.parent().unwrap(), 0o1777);
        acquire_for(Some(&upstream), &scratch.0.join("state"), "web", &me).unwrap();
    }
}
