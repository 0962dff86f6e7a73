//! A pass store for docker-credential-pass in a test's HOME: a passphrase-less gpg key and
//! `pass init`, with the gpg-agent stopped when dropped.

use std::path::PathBuf;
use std::process::Command;

use super::{TestHome, assert_success, require, run_with_stdin};

pub struct PassStore {
    gnupg: PathBuf,
    store: PathBuf,
    helper: PathBuf,
}

impl PassStore {
    pub fn new(home: &TestHome) -> Self {
        let helper = require("docker-credential-pass", "golang-docker-credential-helpers");
        require("pass", "pass");
        require("gpg", "gnupg");
        let gnupg = home.dir.join(".gnupg");
        std::fs::create_dir_all(&gnupg).unwrap();
        std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let pass = Self { gnupg, store: home.dir.join(".password-store"), helper };
        let keygen = pass
            .command(home, "gpg")
            .args([
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                "imgctl test <test@localhost>",
                "default",
                "default",
                "never",
            ])
            .output()
            .unwrap();
        assert_success(&keygen, "gpg --quick-gen-key");
        assert_success(&pass.command(home, "pass").args(["init", "test@localhost"]).output().unwrap(), "pass init");
        pass
    }

    /// A command in `home` that sees this pass store and gpg home.
    pub fn command(&self, home: &TestHome, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = home.command(program);
        command.env("GNUPGHOME", &self.gnupg).env("PASSWORD_STORE_DIR", &self.store);
        command
    }

    /// Stores a credential with the real docker-credential-pass.
    pub fn store(&self, home: &TestHome, server: &str, username: &str, secret: &str) {
        let request = serde_json::json!({"ServerURL": server, "Username": username, "Secret": secret});
        let out = run_with_stdin(self.command(home, &self.helper).arg("store"), request.to_string().as_bytes());
        assert_success(&out, "docker-credential-pass store");
    }

    /// docker-credential-pass's own `list`.
    pub fn list(&self, home: &TestHome) -> String {
        super::stdout(&run_with_stdin(self.command(home, &self.helper).arg("list"), b"unused"))
    }
}

impl Drop for PassStore {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").args(["--kill", "all"]).env("GNUPGHOME", &self.gnupg).output();
    }
}
