//! Shared by the integration tests: a throwaway HOME per test, the binaries run in it with a
//! clean environment, and a check at the end that no secret the test used is on disk in plain
//! text anywhere under that HOME.
#![allow(dead_code)]

pub mod busybox;
pub mod compose_twin;
pub mod conformance;
pub mod haproxy;
pub mod hostile;
pub mod keyring;
pub mod load;
pub mod nginx;
pub mod nginx_container;
pub mod oci;
pub mod pass;
pub mod registry;
pub mod stream;
pub mod swarm;
pub mod web;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const HELPER: &str = env!("CARGO_BIN_EXE_docker-credential-imgctl");
pub const IMGCTL: &str = env!("CARGO_BIN_EXE_imgctl");

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A throwaway HOME with its own docker config directory and imgctl store.
pub struct TestHome {
    pub dir: PathBuf,
    secrets: Vec<String>,
    /// When set, the helper uses the Secret Service of this private keyring.
    pub keyring: Option<keyring::Keyring>,
}

impl TestHome {
    pub fn new(name: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("imgctl-test-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join(".docker")).unwrap();
        Self { dir, secrets: Vec::new(), keyring: None }
    }

    /// A home whose helper is on the secret-service backend, served by a private
    /// gnome-keyring-daemon on a private session bus, unlocked.
    pub fn with_keyring(name: &str) -> Self {
        let mut home = Self::new(name);
        let password = home.secret("keyring-login");
        home.keyring = Some(keyring::Keyring::start(&home.dir, &password));
        home
    }

    /// What the store holds, as clients see it (and, for the age file, its bytes): equal
    /// snapshots mean nothing changed.
    pub fn snapshot(&self) -> (String, Vec<String>, Option<Vec<u8>>) {
        let list = stdout(&self.helper("list", b"unused"));
        let servers: std::collections::BTreeMap<String, String> = serde_json::from_str(&list).unwrap_or_default();
        let gets = servers.keys().map(|server| stdout(&self.helper("get", server.as_bytes()))).collect();
        let file = if self.keyring.is_none() { fs::read(self.store_file()).ok() } else { None };
        (list, gets, file)
    }

    /// A secret this test uses: after the test it must not appear in plain text under HOME.
    pub fn secret(&mut self, prefix: &str) -> String {
        let secret = format!("{prefix}-{}", random_hex(12));
        self.secrets.push(secret.clone());
        secret
    }

    /// Remembers a secret made elsewhere (a large one, say).
    pub fn remember(&mut self, secret: &str) {
        self.secrets.push(secret.to_owned());
    }

    pub fn docker_config_dir(&self) -> PathBuf {
        self.dir.join(".docker")
    }

    pub fn store_file(&self) -> PathBuf {
        self.dir.join(".local/share/imgctl/credentials.age")
    }

    /// A command with a clean environment: this HOME, its docker config, the built binaries
    /// first on PATH.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let bin_dir = Path::new(HELPER).parent().unwrap();
        command
            .env_clear()
            .env("HOME", &self.dir)
            .env("DOCKER_CONFIG", self.docker_config_dir())
            .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", bin_dir.display()))
            .env("LANG", "C.UTF-8")
            .current_dir(&self.dir);
        if let Some(keyring) = &self.keyring {
            command.env("IMGCTL_BACKEND", "secret-service");
            command.envs(keyring.env());
        }
        command
    }

    /// Runs `docker-credential-imgctl ACTION` with `input` on stdin.
    pub fn helper(&self, action: &str, input: &[u8]) -> Output {
        run_with_stdin(self.command(HELPER).arg(action), input)
    }

    /// Runs `imgctl ARGS...` with `input` on stdin.
    pub fn imgctl(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_stdin(self.command(IMGCTL).args(args), input)
    }

    /// Stores a credential through the helper and asserts it succeeded.
    pub fn store(&self, server: &str, username: &str, secret: &str) {
        let request = serde_json::json!({"ServerURL": server, "Username": username, "Secret": secret});
        let out = self.helper("store", request.to_string().as_bytes());
        assert_success(&out, "store");
    }

    /// `get` through the helper, parsed; None on the not-found answer.
    pub fn get(&self, server: &str) -> Option<serde_json::Value> {
        let out = self.helper("get", server.as_bytes());
        if out.status.success() {
            return Some(serde_json::from_slice(&out.stdout).expect("get prints JSON"));
        }
        assert_eq!(stdout(&out).trim(), "credentials not found in native keychain", "get {server}");
        None
    }

    /// Fails if any remembered secret is in any file under HOME, in plain text.
    pub fn assert_no_plaintext_secrets(&self) {
        self.assert_no_plaintext_secrets_except("");
    }

    /// Like [`Self::assert_no_plaintext_secrets`], for every secret but `allowed` (one the test
    /// itself wrote in plain text, as a user's config.json would hold it).
    pub fn assert_no_plaintext_secrets_except(&self, allowed: &str) {
        for file in walk(&self.dir) {
            let Ok(bytes) = fs::read(&file) else { continue };
            for secret in self.secrets.iter().filter(|s| s.as_str() != allowed) {
                assert!(
                    !contains(&bytes, secret.as_bytes()),
                    "secret {}... found in plain text in {}",
                    &secret[..secret.len().min(12)],
                    file.display()
                );
            }
        }
    }
}

impl Drop for TestHome {
    fn drop(&mut self) {
        // Stop the keyring first: it writes into this HOME until it is gone.
        let death = self.keyring.as_mut().and_then(keyring::Keyring::death);
        drop(self.keyring.take());
        if !std::thread::panicking() {
            self.assert_no_plaintext_secrets();
        }
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(death) = death
            && !std::thread::panicking()
        {
            panic!("{death}");
        }
    }
}

pub fn run_with_stdin(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Write from a thread: a helper that refuses a huge body stops reading early.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {}: stdout {:?} stderr {:?}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Panics with an install hint when a peer the test needs is missing: a missing peer is a
/// failed test, never a skipped one.
pub fn require(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return path;
        }
    }
    panic!("{program} is missing: install the Debian package {package} (tests/setup.sh installs every peer)");
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    use std::io::Read;
    fs::File::open("/dev/urandom").unwrap().read_exact(&mut buf).unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(haystack, needle).is_some()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return files };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            files.extend(walk(&entry.path()));
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    files
}

/// Removes every container imgctl made for `service` (by its `imgctl.service` label), running
/// or not: a test's clean-up, also after a failure.
pub fn remove_service_containers(service: &str) {
    let ids = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=imgctl.service={service}")])
        .output()
        .map(|o| stdout(&o))
        .unwrap_or_default();
    for id in ids.split_whitespace() {
        let _ = Command::new("docker").args(["rm", "-f", id]).output();
    }
}
