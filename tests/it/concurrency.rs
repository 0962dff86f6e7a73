//! Parallel writers lose nothing; a writer killed at any instant leaves the old or the new store;
//! a promote killed in the middle of its audit append leaves every complete record readable.

#![allow(clippy::print_stderr)] // the test reports how the kills landed

use crate::common;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Instant;

use common::oci::Layout;
use common::registry::Registry;
use common::{HELPER, IMGCTL, TestHome, assert_success, stderr, stdout};

fn spawn_store(home: &TestHome, server: &str, secret: &str) -> Child {
    use std::io::Write;
    let mut child = home
        .command(HELPER)
        .arg("store")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let request = serde_json::json!({"ServerURL": server, "Username": "u", "Secret": secret});
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    child
}

#[test]
fn thirty_two_parallel_stores_all_land() {
    let mut home = TestHome::new("parallel");
    // Start on a store that does not exist yet: the identity is created under the lock too.
    let secrets: Vec<String> = (0..32).map(|i| home.secret(&format!("parallel{i}"))).collect();
    let children: Vec<Child> =
        secrets.iter().enumerate().map(|(i, s)| spawn_store(&home, &format!("r{i}.example.com"), s)).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a store failed: {}", stdout(&out));
    }
    let list: BTreeMap<String, String> = serde_json::from_str(&stdout(&home.helper("list", b"unused"))).unwrap();
    assert_eq!(list.len(), 32, "{list:?}");
    for (i, secret) in secrets.iter().enumerate() {
        assert_eq!(home.get(&format!("r{i}.example.com")).unwrap()["Secret"], secret.as_str());
    }
}

/// A small deterministic generator: the test needs spread, not cryptographic randomness.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_9_at_any_instant_leaves_old_or_new() {
    let mut home = TestHome::new("kill9");
    // A store big enough that a write takes a few milliseconds, so kills land inside it.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..60 {
        let server = format!("k{i}.example.com");
        let secret = format!("{}{}", home.secret(&format!("kill{i}")), "x".repeat(8 * 1024));
        home.store(&server, "u", &secret);
        expected.insert(server, secret);
    }
    let started = Instant::now();
    home.store("timing.example.com", "u", "t");
    let write_time = started.elapsed();

    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let (mut kept_old, mut got_new) = (0, 0);
    for round in 0..120 {
        let server = format!("k{}.example.com", rng.next() % 10);
        let new_secret = format!("{}-round{round}", home.secret("new"));
        let mut child = spawn_store(&home, &server, &new_secret);
        let delay = write_time.mul_f64((rng.next() % 1500) as f64 / 1000.0);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let got = home.get(&server).unwrap_or_else(|| panic!("round {round}: {server} vanished"));
        let got = got["Secret"].as_str().unwrap().to_owned();
        if got == new_secret {
            got_new += 1;
            expected.insert(server, got);
        } else {
            assert_eq!(&got, &expected[&server], "round {round}: neither the old nor the new value");
            kept_old += 1;
        }
    }
    // The store opens and holds exactly the expected values for every key.
    let list: BTreeMap<String, String> = serde_json::from_str(&stdout(&home.helper("list", b"unused"))).unwrap();
    assert_eq!(list.len(), expected.len() + 1);
    for (server, secret) in &expected {
        assert_eq!(home.get(server).unwrap()["Secret"], secret.as_str(), "{server}");
    }
    eprintln!("write time {write_time:?}: {kept_old} kills kept the old value, {got_new} let the new one land");
    assert!(
        kept_old > 0 && got_new > 0,
        "the kills did not land both before and after the rename ({kept_old} old, {got_new} new)"
    );
    // Killed writers' temporary files are cleaned up by the next writer.
    home.store("final.example.com", "u", "f");
    let leftovers: Vec<_> = std::fs::read_dir(home.store_file().parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The `tags` of every line of the audit log that parses, and how many lines do not.
fn audit_lines(path: &std::path::Path) -> (Vec<String>, usize) {
    let text = std::fs::read(path).unwrap();
    let (mut tags, mut torn) = (Vec::new(), 0);
    for line in text.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(record) => tags.push(record["tags"][0].as_str().unwrap().to_owned()),
            Err(_) => torn += 1,
        }
    }
    (tags, torn)
}

#[test]
fn a_promote_killed_mid_append_leaves_every_complete_audit_record_readable() {
    let mut home = TestHome::new("audit-kill");
    let password = home.secret("audit-pw");
    let registry = Registry::start_htpasswd("ci", &password);
    home.store(&registry.addr, "ci", &password);
    std::fs::write(home.docker_config_dir().join("config.json"), r#"{"credsStore":"imgctl"}"#).unwrap();
    let layout = Layout::two_platform(&home.dir, "1", 1, 1024);
    let source = format!("{}/staging/app:1", registry.addr);
    let pushed = home.imgctl(&["push", &layout.dir.display().to_string(), &source], b"");
    assert_success(&pushed, "imgctl push");
    let audit = home.dir.join("audit.jsonl");
    let audit_arg = audit.display().to_string();
    let destination = format!("{}/prod/app", registry.addr);
    let promote = |tag: &str| {
        home.command(IMGCTL).args(["promote", &source, &destination, "--tag", tag, "--audit-log", &audit_arg]).output()
    };
    assert_success(&promote("first").unwrap(), "the first promote");
    let record_len = std::fs::metadata(&audit).unwrap().len();

    // A writer that dies k bytes into its append, for random k: the file size limit makes the
    // kernel cut the append there and kill the writer (SIGXFSZ). A SIGKILL sent at a random
    // instant would almost never land inside the append: one write() of a few hundred bytes,
    // microseconds of a run that takes a tenth of a second or more.
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D ^ u64::from(std::process::id()));
    let (mut expected, mut torn_expected) = (vec!["first".to_owned()], 0);
    for round in 1..=12 {
        let before = std::fs::metadata(&audit).unwrap().len();
        let cut = rng.next() % record_len;
        let limit = format!("--fsize={}", before + cut);
        let tag = format!("killed-{round}");
        let killed = home
            .command("prlimit")
            .args(["--core=0", &limit, "--", IMGCTL, "promote", &source, &destination, "--tag", &tag])
            .args(["--audit-log", &audit_arg])
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(killed.status.signal(), Some(25), "round {round}: not killed mid-append: {}", stderr(&killed));
        assert_eq!(
            std::fs::metadata(&audit).unwrap().len(),
            before + cut,
            "round {round}: the append was cut at {cut}"
        );
        torn_expected += usize::from(cut > 0);

        let tag = format!("after-{round}");
        assert_success(&promote(&tag).unwrap(), &format!("round {round}: the promote after the kill"));
        expected.push(tag);
        let (tags, torn) = audit_lines(&audit);
        assert_eq!(
            tags, expected,
            "round {round} (cut at {cut} of {record_len} bytes): a complete record is unreadable"
        );
        assert_eq!(torn, torn_expected, "round {round}: torn lines stay apart");
    }
}
