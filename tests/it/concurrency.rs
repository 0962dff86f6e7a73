//! Parallel writers lose nothing; a writer killed at any instant leaves the old or the new store.

#![allow(clippy::print_stderr)] // the test reports how the kills landed

use crate::common;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Instant;

use common::{HELPER, TestHome, stdout};

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
