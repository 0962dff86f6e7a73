//! A real Secret Service for one test: a private D-Bus session bus and gnome-keyring-daemon,
//! unlocked with a password from stdin, in the test's HOME. Stopped when dropped.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::require;

const LOGIN: &str = "/org/freedesktop/secrets/collection/login";

pub struct Keyring {
    bus: Child,
    daemon: Option<Child>,
    log: PathBuf,
    address: String,
    runtime_dir: PathBuf,
}

impl Keyring {
    pub fn start(home: &Path, password: &str) -> Self {
        let gnome_keyring = require("gnome-keyring-daemon", "gnome-keyring");
        let mut keyring = Self::bus_only(home);
        let mut daemon = Command::new(gnome_keyring)
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", &keyring.runtime_dir)
            .env("DBUS_SESSION_BUS_ADDRESS", &keyring.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(home.join("daemon.log")).unwrap())
            .spawn()
            .expect("starting gnome-keyring-daemon");
        // The login password on stdin, then EOF.
        daemon.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
        keyring.daemon = Some(daemon);
        keyring.wait_unlocked();
        keyring
    }

    /// A session bus with no Secret Service on it (and nothing that could be activated).
    pub fn bus_only(home: &Path) -> Self {
        let dbus_daemon = require("dbus-daemon", "dbus-daemon");
        require("dbus-send", "dbus-bin");
        let runtime_dir = home.join("run");
        std::fs::create_dir_all(&runtime_dir).unwrap();
        std::fs::set_permissions(&runtime_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        // No service directories: nothing is ever activated on this bus, so a client that asks
        // too early cannot start a second, locked gnome-keyring behind our back.
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/dbus-session.conf");
        let mut bus = Command::new(dbus_daemon)
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .env("HOME", home)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dbus-daemon");
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap()).read_line(&mut address).unwrap();
        let address = address.trim().to_owned();
        assert!(!address.is_empty(), "dbus-daemon printed no address");
        Self { bus, daemon: None, address, runtime_dir, log: home.join("daemon.log") }
    }

    /// The environment a client needs to reach this keyring.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DBUS_SESSION_BUS_ADDRESS", self.address.clone()),
            ("XDG_RUNTIME_DIR", self.runtime_dir.display().to_string()),
        ]
    }

    /// The login collection's `Locked` property (a wrong password still exits 0, so look).
    pub fn locked(&self) -> Option<bool> {
        let out = self
            .dbus_send(&[
                "--print-reply",
                "--dest=org.freedesktop.secrets",
                LOGIN,
                "org.freedesktop.DBus.Properties.Get",
                "string:org.freedesktop.Secret.Collection",
                "string:Locked",
            ])
            .ok()?;
        if out.contains("boolean true") {
            Some(true)
        } else if out.contains("boolean false") {
            Some(false)
        } else {
            None
        }
    }

    /// Locks the login collection, as a screen lock or a timeout would.
    pub fn lock(&self) {
        self.dbus_send(&[
            "--print-reply",
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            &format!("array:objpath:{LOGIN}"),
        ])
        .expect("locking the login collection");
        assert_eq!(self.locked(), Some(true));
    }

    fn dbus_send(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("dbus-send")
            .arg("--session")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn has_owner(&self) -> bool {
        self.dbus_send(&[
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.freedesktop.secrets",
        ])
        .is_ok_and(|out| out.contains("boolean true"))
    }

    /// Why the daemon is gone, with its log, if it died before the test ended. Whatever the
    /// test saw, a client that brings the keyring down has failed: a desktop loses every
    /// secret it holds until the next unlock.
    pub fn death(&mut self) -> Option<String> {
        let status = self.daemon.as_mut()?.try_wait().ok()??;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        Some(format!("gnome-keyring-daemon died during the test ({status}); its log:\n{log}"))
    }

    fn wait_unlocked(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.has_owner() && self.locked() == Some(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gnome-keyring-daemon did not unlock the login collection within 10 s (locked: {:?})", self.locked());
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        if let Some(daemon) = &mut self.daemon {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
        // A killed dbus-daemon leaves its socket file behind (unix:path=/tmp/dbus-…,guid=…).
        if let Some(path) = self.address.strip_prefix("unix:path=").and_then(|rest| rest.split(',').next()) {
            let _ = std::fs::remove_file(path);
        }
    }
}
