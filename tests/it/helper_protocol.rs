//! The helper conformance suite on the age-encrypted file store (the default backend), and the
//! helper's process kept closed to other processes of its user.

use crate::common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

use common::{HELPER, TestHome, stdout};

crate::conformance_tests!(common::TestHome::new);

/// Switches to `nobody` (the tests run as root) so that two processes share one plain uid.
fn as_nobody(home: &TestHome) -> Command {
    let mut command = home.command(common::require("setpriv", "util-linux"));
    command.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]);
    command
}

/// A child that is killed and reaped however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `/proc/PID/environ` of `pid`, read by another process of `nobody`.
fn environ_as_seen_by_nobody(home: &TestHome, pid: u32) -> std::process::Output {
    as_nobody(home).args(["cat", &format!("/proc/{pid}/environ")]).output().unwrap()
}

#[test]
fn a_helper_waiting_on_stdin_is_closed_to_other_processes_of_its_user() {
    let mut home = TestHome::new("private-memory");
    let passphrase = home.secret("passphrase");

    // The probe works: a plain process of nobody is open to another one of nobody.
    let mut plain = Running(
        as_nobody(&home)
            .arg("cat")
            .env("IMGCTL_PASSPHRASE", &passphrase)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    plain.0.stdin.as_mut().unwrap().write_all(b"ready\n").unwrap();
    let mut echo = [0; 6];
    plain.0.stdout.as_mut().unwrap().read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ready\n", "cat runs as nobody");
    let seen = environ_as_seen_by_nobody(&home, plain.0.id());
    assert!(
        seen.status.success() && common::contains(&seen.stdout, passphrase.as_bytes()),
        "nobody could not read the environment of its own cat: {} {}",
        seen.status,
        common::stderr(&seen)
    );

    let mut helper = Running(
        as_nobody(&home)
            .args([HELPER, "get"])
            .env("IMGCTL_PASSPHRASE", &passphrase)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // More than a pipe holds: once written, the helper is reading its request, so whatever it
    // does at start is done. It then waits for the end of input.
    let written = helper.0.stdin.as_mut().unwrap().write_all(&vec![b'a'; 512 * 1024]);
    assert!(written.is_ok(), "the helper stopped before reading its request: {written:?}");
    let seen = environ_as_seen_by_nobody(&home, helper.0.id());
    assert!(
        !seen.status.success() && !common::contains(&seen.stdout, passphrase.as_bytes()),
        "another process of the helper's user read its environment: {}",
        stdout(&seen).replace(&passphrase, "<passphrase>")
    );
    assert!(common::stderr(&seen).contains("Permission denied"), "{}", common::stderr(&seen));

    // End of input: the helper answers (no such registry) and exits.
    drop(helper.0.stdin.take());
    let mut answer = String::new();
    helper.0.stdout.take().unwrap().read_to_string(&mut answer).unwrap();
    assert_eq!(answer.trim(), "credentials not found in native keychain");
}
