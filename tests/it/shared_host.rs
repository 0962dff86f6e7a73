//! On a host shared with other users: imgctl never writes through a link planted at a
//! temporary name, refuses directories and files others can change (and `creds doctor` says
//! why), and `erase` never claims success it cannot vouch for. The other user is `nobody`,
//! reached with setpriv (the tests run as root).

use crate::common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{HELPER, IMGCTL, TestHome, assert_success, stderr, stdout};

const AS_NOBODY: [&str; 4] = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"];

/// A directory under `home` that belongs to `nobody` (mode 0700); removed with the home.
fn nobody_dir(home: &TestHome, name: &str) -> PathBuf {
    let dir = home.dir.join(name);
    fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    let out = Command::new("chown").arg("nobody:nogroup").arg(&dir).output().unwrap();
    assert_success(&out, "chown nobody");
    dir
}

/// `program args...` run as `nobody` with `home`'s clean environment, `HOME` set to `their_home`.
fn as_nobody(home: &TestHome, their_home: &Path, program: &str, args: &[&str]) -> Command {
    let mut command = home.command(common::require("setpriv", "util-linux"));
    command.args(AS_NOBODY).arg(program).args(args).env("HOME", their_home).current_dir(their_home);
    command
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// What a failed command said, wherever it said it (the helper answers on stdout).
fn said(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// `imgctl creds doctor -o json` with `envs`: its exit code and the check called `name`.
fn doctor_check(home: &TestHome, envs: &[(&str, &Path)], name: &str) -> (Option<i32>, serde_json::Value) {
    let out = home.command(IMGCTL).args(["creds", "doctor", "-o", "json"]).envs(envs.iter().copied()).output().unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", said(&out)));
    let check = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned();
    (out.status.code(), check.unwrap_or_else(|| panic!("no {name} check in {report}")))
}

#[test]
fn a_planted_symlink_at_the_temp_name_is_never_written_through() {
    let home = TestHome::new("planted-link");
    // A file of another user's, and a link to it where the identity's temporary file goes.
    let theirs = nobody_dir(&home, "theirs");
    let notes = theirs.join("notes.txt");
    let out = as_nobody(&home, &theirs, "sh", &["-c", "printf %s 'nobody wrote this' > notes.txt"]).output().unwrap();
    assert_success(&out, "nobody writes a file");
    let config = home.dir.join(".config/imgctl");
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&config).unwrap();

    // The shell waits for the link before it execs imgctl, which keeps the shell's pid: the
    // name that pid gives is known before imgctl runs.
    let mut init = home
        .command("sh")
        .args(["-c", "read go && exec \"$0\" creds init", IMGCTL])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::os::unix::fs::symlink(&notes, config.join(format!("identity.txt.tmp-{}", init.id()))).unwrap();
    init.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = init.wait_with_output().unwrap();
    assert_success(&out, "creds init");

    // Compared without printing: on failure the file holds the identity.
    let behind = fs::read(&notes).unwrap();
    let holds_key = common::contains(&behind, b"AGE-SECRET-KEY-");
    assert!(behind == b"nobody wrote this", "the file behind the link was written (holds the identity: {holds_key})");
    let identity = config.join("identity.txt");
    assert!(fs::symlink_metadata(&identity).unwrap().is_file(), "identity.txt is a file of its own, not the link");
    assert!(common::contains(&fs::read(&identity).unwrap(), b"AGE-SECRET-KEY-"), "identity.txt holds no identity");
    assert_eq!(fs::metadata(&identity).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_config_dir_owned_by_another_user_is_refused_and_doctor_says_why() {
    let mut home = TestHome::new("foreign-config");
    let theirs = nobody_dir(&home, "theirs");
    let secret = home.secret("foreign");
    let request = serde_json::json!({"ServerURL": "reg.example.com", "Username": "u", "Secret": secret});
    let out = common::run_with_stdin(
        home.command(HELPER).arg("store").env("IMGCTL_CONFIG_DIR", &theirs),
        request.to_string().as_bytes(),
    );
    assert!(!out.status.success(), "a store with its identity in nobody's directory was accepted");
    let message = said(&out);
    assert!(message.contains(&format!("{} is owned by uid", theirs.display())), "{message}");
    assert_eq!(fs::read_dir(&theirs).unwrap().count(), 0, "nothing was written into nobody's directory");

    let (code, check) = doctor_check(&home, &[("IMGCTL_CONFIG_DIR", &theirs)], "directories");
    assert_eq!((code, check["status"].as_str()), (Some(1), Some("fail")), "{check}");
    assert!(check["detail"].as_str().unwrap().contains(&format!("{} is owned by uid", theirs.display())), "{check}");
}

#[test]
fn a_store_directory_writable_by_others_is_refused_and_doctor_says_why() {
    let mut home = TestHome::new("open-data");
    let secret = home.secret("open");
    home.store("reg.example.com", "u", &secret);
    let data = home.store_file().parent().unwrap().to_owned();

    chmod(&data, 0o777);
    let out = home.helper("get", b"reg.example.com");
    assert!(!out.status.success(), "a store in a world-writable directory was read");
    assert!(said(&out).contains(&format!("run: chmod 700 {}", data.display())), "{}", said(&out));
    let (code, check) = doctor_check(&home, &[], "directories");
    assert_eq!((code, check["status"].as_str()), (Some(1), Some("fail")), "{check}");
    assert!(check["detail"].as_str().unwrap().contains("mode 0777"), "{check}");
    chmod(&data, 0o700);

    // A parent others can write to lets them swap the whole directory.
    let local = home.dir.join(".local");
    chmod(&local, 0o775);
    let out = home.helper("get", b"reg.example.com");
    assert!(!out.status.success(), "a store under a group-writable parent was read");
    assert!(said(&out).contains(&format!("run: chmod go-w {}", local.display())), "{}", said(&out));
    chmod(&local, 0o700);
    assert_eq!(home.get("reg.example.com").unwrap()["Secret"], secret.as_str(), "put right, it serves again");
    assert_eq!(doctor_check(&home, &[], "directories").1["status"], "ok");
}

#[test]
fn an_identity_readable_by_others_is_refused_like_an_unprotected_ssh_key() {
    let mut home = TestHome::new("open-identity");
    let secret = home.secret("open-identity");
    home.store("reg.example.com", "u", &secret);
    let identity = home.dir.join(".config/imgctl/identity.txt");
    chmod(&identity, 0o644);
    let out = home.helper("get", b"reg.example.com");
    assert!(!out.status.success(), "an identity readable by others was used");
    assert!(said(&out).contains(&format!("run: chmod 600 {}", identity.display())), "{}", said(&out));
}

#[test]
fn erase_fails_when_the_identity_directory_cannot_be_read() {
    let mut home = TestHome::new("erase-unreadable");
    let their_home = nobody_dir(&home, "nobody-home");
    let secret = home.secret("unreadable");
    let request = serde_json::json!({"ServerURL": "reg.example.com", "Username": "u", "Secret": secret});
    // The backend named in the environment, as CI sets it: no settings file is read from the
    // config directory before the store looks for its identity.
    let helper = |action: &str, input: &[u8]| {
        common::run_with_stdin(
            as_nobody(&home, &their_home, HELPER, &[action]).env("IMGCTL_BACKEND", "age-file"),
            input,
        )
    };
    assert_success(&helper("store", request.to_string().as_bytes()), "store as nobody");
    let config = their_home.join(".config/imgctl");
    chmod(&config, 0o000);
    let out = helper("erase", b"reg.example.com");
    chmod(&config, 0o700);
    assert!(!out.status.success(), "erase said it erased, but it could not even look: {}", said(&out));
    assert!(said(&out).contains(&config.display().to_string()), "{}", said(&out));
    let got = helper("get", b"reg.example.com");
    assert_success(&got, "get as nobody");
    assert!(stdout(&got).contains(&secret), "the credential is still there, as the failure said");
}

#[test]
fn erase_fails_when_the_identity_is_gone_but_the_store_is_not() {
    let mut home = TestHome::new("erase-no-identity");
    let secret = home.secret("orphan");
    home.store("reg.example.com", "u", &secret);
    let identity = home.dir.join(".config/imgctl/identity.txt");
    fs::rename(&identity, home.dir.join("identity.txt.bak")).unwrap();
    let before = fs::read(home.store_file()).unwrap();
    let out = home.helper("erase", b"reg.example.com");
    assert!(!out.status.success(), "erase said it erased from a store it cannot open");
    assert!(said(&out).contains("is missing"), "{}", said(&out));
    assert_eq!(fs::read(home.store_file()).unwrap(), before, "the store is untouched");
    assert!(!identity.exists(), "no new identity was made");
}
