//! A new upstream file goes live only once nginx has accepted it: it is written beside the
//! live one under a hidden name, tested alone, then renamed over it. A crash at any instant
//! leaves nginx's configuration with the old file or a tested new one, never an untested one
//! that the next reload by anyone (or nginx's next start) would pick up.
//!
//! `nginx -t` tests the configuration nginx.conf includes by path, so it cannot see a file
//! that is not in place yet. When the test command runs nginx itself, the staged file is tested
//! in a configuration of its own instead (`nginx -t -q -p DIR/ -c DIR/test.conf`): included in
//! an `http` block as nginx.conf includes it, with a `proxy_pass` to the upstream by its name,
//! so nginx parses it, resolves its servers and checks that it defines that upstream. Its pid,
//! lock, temp paths and socket are in a private temporary directory, so the test touches
//! nothing of the live nginx. What only the whole configuration shows (another file defining
//! the same upstream) is left to the configured test, after the rename; a test command that
//! is not nginx itself (`docker exec proxy nginx -t`, a script) cannot be pointed at the
//! staged file, and then that test is all there is.
//!
//! The hidden name keeps the staged file out of an `include conf.d/*;`, whose glob skips names
//! that start with a dot.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::super::child_env::ChildEnv;
use super::{Failure, run};

/// The directory of `path` (`.` for a bare name).
pub(super) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The name staged copies of `live` are made under, plus a random suffix
/// (`.web.conf.imgctl-staged.tmp-…`).
pub(super) fn staged_name(live: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(live.file_name().unwrap_or("upstream".as_ref()));
    name.push(".imgctl-staged");
    parent(live).join(name)
}

/// A new upstream file beside the live one, written and synced; removed when dropped unless
/// committed.
pub(super) struct Staged {
    path: PathBuf,
    committed: bool,
}

impl Staged {
    /// Writes `contents` into a new staged file beside `live` (mode 0644: nginx reads it).
    pub(super) fn write(live: &Path, contents: &[u8]) -> io::Result<Self> {
        let (path, mut file) = crate::atomic_file::create_beside(&staged_name(live), 0o644)?;
        let staged = Self { path, committed: false };
        // The mode given at creation is narrowed by the umask.
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        file.write_all(contents)?;
        file.sync_all()?;
        Ok(staged)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the staged file over `live`, state line and servers in one step, and syncs the
    /// directory so the rename survives a crash.
    pub(super) fn commit(mut self, live: &Path) -> io::Result<()> {
        fs::rename(&self.path, live)?;
        self.committed = true;
        File::open(parent(live))?.sync_all()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The nginx program of a test command that runs nginx itself (`nginx -t -q`,
/// `/usr/local/sbin/nginx -t -c …`): it can test a staged file alone.
pub(super) fn nginx_program(test: &[String]) -> Option<&str> {
    let (program, args) = test.split_first()?;
    let tests = args.iter().any(|a| a.starts_with('-') && !a.starts_with("--") && a[1..].contains(['t', 'T']));
    (Path::new(program).file_name()? == "nginx" && tests).then_some(program.as_str())
}

/// Tests `staged` alone with `nginx`; returns the command, in words for the error (its
/// temporary paths are gone once it ends), and how it went.
pub(super) fn test_alone(nginx: &str, staged: &Path, upstream: &str, env: &ChildEnv) -> (String, Result<(), Failure>) {
    let command = format!("{nginx} -t -c <a configuration of its own that includes it>");
    let cannot =
        |what: &str, e: io::Error| Err(Failure { status: format!("cannot {what}: {e}"), output: Default::default() });
    let scratch = match Scratch::new() {
        Ok(scratch) => scratch,
        Err(e) => return (command, cannot("make its temporary directory", e)),
    };
    let conf = scratch.0.join("test.conf");
    // nginx takes a relative include from the configuration's directory: the path is made
    // absolute. `logs/` is where a source build logs before it reads `error_log`.
    let prepared = (|| {
        fs::create_dir(scratch.0.join("logs"))?;
        fs::write(&conf, test_config(&scratch.0, &std::path::absolute(staged)?, upstream))
    })();
    if let Err(e) = prepared {
        return (command, cannot("write its configuration", e));
    }
    let argv = [
        nginx.to_owned(),
        "-t".into(),
        "-q".into(),
        "-p".into(),
        format!("{}/", scratch.0.display()),
        "-c".into(),
        conf.display().to_string(),
    ];
    (command, run(&argv, env))
}

/// The configuration a staged file is tested in. Every path is quoted: nginx takes `\` and `"`
/// escaped inside double quotes, and nothing else in a quoted path is special to it.
fn test_config(dir: &Path, staged: &Path, upstream: &str) -> String {
    let q = |path: &Path| quote(&path.display().to_string());
    format!(
        "# Written by imgctl deploy to test a new upstream file alone (nginx -t); never run.\n\
         pid {pid};\n\
         lock_file {lock};\n\
         error_log stderr;\n\
         events {{}}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {body};\n\
         \x20   proxy_temp_path {proxy};\n\
         \x20   include {staged};\n\
         \x20   server {{\n\
         \x20       listen {socket};\n\
         \x20       location / {{ proxy_pass http://{upstream}; }}\n\
         \x20   }}\n\
         }}\n",
        pid = q(&dir.join("nginx.pid")),
        lock = q(&dir.join("nginx.lock")),
        body = q(&dir.join("client_body")),
        proxy = q(&dir.join("proxy")),
        staged = q(staged),
        socket = quote(&format!("unix:{}", dir.join("s").display())),
    )
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A socket path longer than this does not fit `sun_path` (108 bytes on Linux).
const SOCKET_PATH_LIMIT: usize = 100;

/// A private temporary directory (0700, a fresh random name), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> io::Result<Self> {
        let mut base = std::env::temp_dir();
        if base.as_os_str().len() + 40 > SOCKET_PATH_LIMIT {
            base = PathBuf::from("/tmp");
        }
        let mut last = None;
        for _ in 0..4 {
            let mut random = [0u8; 8];
            getrandom::getrandom(&mut random)?;
            let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let dir = base.join(format!("imgctl-ngt-{hex}"));
            // Not recursive: a name someone planted (a link, a directory of theirs) is refused.
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Self(dir)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("tried at least once"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nginx_itself_is_pointed_at_the_staged_file() {
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(nginx_program(&argv("nginx -t -q")), Some("nginx"));
        assert_eq!(nginx_program(&argv("/usr/sbin/nginx -q -t -p /srv/ -c /srv/nginx.conf")), Some("/usr/sbin/nginx"));
        assert_eq!(nginx_program(&argv("nginx -tq")), Some("nginx"));
        assert_eq!(nginx_program(&argv("docker exec proxy nginx -t")), None);
        assert_eq!(nginx_program(&argv("sudo nginx -t")), None);
        assert_eq!(nginx_program(&argv("nginx -s reload")), None);
        assert_eq!(nginx_program(&argv("/opt/bin/check-nginx -t")), None);
    }

    #[test]
    fn paths_are_quoted_for_nginx() {
        let text =
            test_config(Path::new("/tmp/imgctl-ngt-1"), Path::new("/etc/my \"nginx\"\\conf.d/.web.conf.x"), "web");
        assert!(text.contains("    include \"/etc/my \\\"nginx\\\"\\\\conf.d/.web.conf.x\";\n"), "{text}");
        assert!(text.contains("listen \"unix:/tmp/imgctl-ngt-1/s\";"), "{text}");
        assert!(text.contains("proxy_pass http://web;"), "{text}");
    }

    #[test]
    fn the_staged_name_is_hidden_from_an_include_glob() {
        assert_eq!(
            staged_name(Path::new("/etc/nginx/conf.d/web.conf")),
            Path::new("/etc/nginx/conf.d/.web.conf.imgctl-staged")
        );
        assert_eq!(staged_name(Path::new("web.conf")), Path::new("./.web.conf.imgctl-staged"));
    }
}
