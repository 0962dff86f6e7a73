//! Promotion from a registry that misbehaves (inside the test process) to a real
//! docker-registry: lies about digests are refused with nothing tagged, bursts of 429 and 503
//! are waited out, credentials never follow a redirect to another origin nor a challenge,
//! upload location or token realm that leads elsewhere, bodies without end are cut at their
//! caps, a trickle is given up on, and retries do not multiply.

use crate::common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::hostile::wiretap::Wiretap;
use common::hostile::{ENDLESS, HostileRegistry};
use common::registry::Registry;
use common::{IMGCTL, TestHome, assert_success, run_with_stdin, stderr};

struct Setup {
    home: TestHome,
    hostile: HostileRegistry,
    destination: Registry,
}

fn setup(name: &str) -> Setup {
    let mut home = TestHome::new(name);
    let (source_pw, destination_pw) = (home.secret("hostile-pw"), home.secret("dest-pw"));
    let hostile = HostileRegistry::start("reader", &source_pw);
    let destination = Registry::start_htpasswd("writer", &destination_pw);
    home.store(&hostile.addr, "reader", &source_pw);
    home.store(&destination.addr, "writer", &destination_pw);
    std::fs::write(home.docker_config_dir().join("config.json"), r#"{"credsStore":"imgctl"}"#).unwrap();
    Setup { home, hostile, destination }
}

impl Setup {
    fn promote(&self, repository: &str) -> std::process::Output {
        let source = format!("{}/{repository}:1", self.hostile.addr);
        let destination = format!("{}/prod/{repository}:1", self.destination.addr);
        let audit = self.home.dir.join("audit.jsonl").display().to_string();
        self.home.imgctl(&["promote", &source, &destination, "--audit-log", &audit, "-o", "json"], b"")
    }

    /// `imgctl ARGS` with `env` added.
    fn imgctl_with(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut command = self.home.command(IMGCTL);
        command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        run_with_stdin(&mut command, b"")
    }

    fn source(&self, repository: &str) -> String {
        format!("{}/{repository}:1", self.hostile.addr)
    }

    fn leaked_to(&self) -> Vec<String> {
        self.hostile.seen.leaked_to.lock().unwrap().clone()
    }

    fn destination_tag_exists(&self, repository: &str) -> bool {
        self.home.imgctl(&["resolve", &format!("{}/prod/{repository}:1", self.destination.addr)], b"").status.success()
    }
}

#[test]
fn a_well_behaved_source_copies() {
    let s = setup("hostile-control");
    let out = s.promote("plain");
    assert_success(&out, "promote from the in-process registry");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["digest"], s.hostile.digest.as_str());
    assert!(s.destination_tag_exists("plain"));
}

#[test]
fn a_blob_with_other_bytes_than_its_digest_is_refused_and_nothing_is_tagged() {
    let s = setup("hostile-blob");
    let out = s.promote("liar-blob");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expected sha256:") && stderr(&out).contains("no tag was written"),
        "{}",
        stderr(&out)
    );
    assert!(!s.destination_tag_exists("liar-blob"));
    assert!(!s.home.dir.join("audit.jsonl").exists(), "nothing promoted, nothing recorded");
}

#[test]
fn a_manifest_that_is_not_what_its_digest_says_is_refused() {
    let s = setup("hostile-manifest");
    let out = s.promote("liar-manifest");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("the registry served other bytes than asked for"), "{}", stderr(&out));
    assert!(!s.destination_tag_exists("liar-manifest"));
}

#[test]
fn bursts_of_429_and_503_are_waited_out() {
    let s = setup("hostile-flaky");
    let out = s.promote("flaky");
    assert_success(&out, "promote through 429 and 503 bursts");
    assert!(s.hostile.seen.injected_failures.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    assert!(s.destination_tag_exists("flaky"));
}

#[test]
fn credentials_never_follow_a_redirect_to_another_origin() {
    let s = setup("hostile-redirect");
    let out = s.promote("redirect");
    assert_success(&out, "promote with blobs redirected");
    use std::sync::atomic::Ordering;
    assert!(s.hostile.seen.redirected.load(Ordering::SeqCst) >= 2, "the blobs came from the redirect target");
    assert!(!s.hostile.seen.leaked_authorization.load(Ordering::SeqCst), "Authorization was sent to another origin");
}

#[test]
fn an_oversized_manifest_is_refused() {
    let s = setup("hostile-huge");
    let out = s.promote("huge");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is larger than 4194304 bytes"), "{}", stderr(&out));
}

/// A promotion within the hostile registry, from `plain` to `repository`; None when it is still
/// running after two minutes (it is killed then).
fn promote_within(s: &Setup, repository: &str) -> Option<Output> {
    let destination = format!("{}/{repository}:1", s.hostile.addr);
    let mut command = s.home.command(IMGCTL);
    command.args(["promote", &s.source("plain"), &destination, "--audit-log", "audit.jsonl"]);
    run_within(&mut command, Duration::from_secs(120))
}

#[test]
fn a_401_from_another_origin_never_changes_the_challenge() {
    // The layer is redirected to a CDN that answers 401 with a challenge naming itself.
    let s = setup("hostile-cdn-401");
    let out = s.promote("cdn-401");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(s.leaked_to().is_empty(), "the registry's credential went to the CDN: {:?}", s.leaked_to());
    let said = format!("{} answered 401 to a request for {}", s.hostile.elsewhere, s.hostile.addr);
    assert!(stderr(&out).contains(&said), "{}", stderr(&out));
}

/// A hostile registry on a port P whose lookalike origins listen on 127.0.0.1:P<d> (a port
/// that starts with P) and 127.0.0.2; returns them with the registry.
fn lookalike_setup(name: &str) -> (Setup, String, String) {
    let (registry, lookalike) = (1024..=6553u32)
        .cycle()
        .skip(rand_index(5530))
        .take(5530)
        .find_map(|port| {
            let registry = TcpListener::bind(("127.0.0.1", port as u16)).ok()?;
            let lookalike = (0..10).find_map(|d| TcpListener::bind(("127.0.0.1", (port * 10 + d) as u16)).ok())?;
            Some((registry, lookalike))
        })
        .expect("a free port P below 6554 with a free port P<d>");
    let second = TcpListener::bind("127.0.0.2:0").expect("127.0.0.2 is loopback too");
    let (p, lookalike_addr, second_addr) = (
        registry.local_addr().unwrap().port(),
        lookalike.local_addr().unwrap().to_string(),
        second.local_addr().unwrap().to_string(),
    );
    let prefix_location = format!("http://{lookalike_addr}/upload/prefix");
    let userinfo_location = format!("http://127.0.0.1:{p}@{second_addr}/upload/userinfo");
    let locations = HashMap::from([("prefix".to_owned(), prefix_location), ("userinfo".to_owned(), userinfo_location)]);
    let mut home = TestHome::new(name);
    let password = home.secret("hostile-pw");
    let hostile = HostileRegistry::start_on(registry, vec![lookalike, second], "reader", &password, locations);
    home.store(&hostile.addr, "reader", &password);
    std::fs::write(home.docker_config_dir().join("config.json"), r#"{"credsStore":"imgctl"}"#).unwrap();
    // The destination registry is not used: these copies stay within the hostile one.
    let destination = Registry::start_htpasswd("writer", "unused");
    (Setup { home, hostile, destination }, lookalike_addr, second_addr)
}

fn rand_index(n: usize) -> usize {
    usize::from_str_radix(&common::random_hex(4), 16).unwrap() % n
}

#[test]
fn an_upload_location_on_a_port_that_starts_like_the_registrys_gets_no_credentials() {
    // http://127.0.0.1:P<d>/…: another port, so another origin, whatever the text says.
    let (s, lookalike, _) = lookalike_setup("hostile-lookalike-port");
    let out = promote_within(&s, "upload-prefix");
    assert!(s.leaked_to().is_empty(), "Authorization went to {lookalike}: {:?}", s.leaked_to());
    let out = out.expect("the promotion ends");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("{lookalike} answered 401")), "{}", stderr(&out));
}

#[test]
fn an_upload_location_with_user_info_spelling_the_registry_is_refused() {
    // http://127.0.0.1:P@127.0.0.2:Q/…: the registry's name as user info, then another host.
    let (s, _, second) = lookalike_setup("hostile-lookalike-userinfo");
    let out = promote_within(&s, "upload-userinfo");
    assert!(s.leaked_to().is_empty(), "Authorization went to {second}: {:?}", s.leaked_to());
    assert_eq!(s.hostile.seen.redirected.load(Ordering::SeqCst), 0, "nothing was sent to {second}");
    let out = out.expect("the promotion ends");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("as its upload location; refusing it: it carries user info"), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("http://{second}/upload/userinfo")), "{}", stderr(&out));
}

#[test]
fn a_token_realm_with_user_info_gets_no_credentials() {
    let s = setup("hostile-realm-userinfo");
    let out = s.home.imgctl(&["resolve", &s.source("realm-userinfo")], b"");
    assert!(s.leaked_to().is_empty(), "the credential went to the realm: {:?}", s.leaked_to());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("as its token realm; refusing it: it carries user info"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("hunter2"), "the realm's password is not repeated: {}", stderr(&out));
}

#[test]
fn a_plain_http_token_realm_on_another_host_gets_no_credentials() {
    // A realm on another host is fine over HTTPS; this one is plain HTTP across the network.
    let s = setup("hostile-realm-plain");
    let wiretap = Wiretap::start();
    let out = s.imgctl_with(&["resolve", &s.source("realm-plain")], &wiretap.env());
    let heard = wiretap.heard.lock().unwrap();
    assert!(heard.credentials.is_empty(), "credentials crossed the network in clear: {:?}", heard.credentials);
    assert!(heard.plain.is_empty() && heard.tunnels.is_empty(), "the realm was not contacted: {:?}", heard.plain);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "named http://auth.hostile.test/token as its token realm; refusing it: it is plain HTTP to a host"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_registry_named_127_dot_something_is_not_loopback() {
    let mut home = TestHome::new("hostile-127-name");
    let password = home.secret("remote-pw");
    let registry = "127.hostile.test:5000";
    home.store(registry, "reader", &password);
    std::fs::write(home.docker_config_dir().join("config.json"), r#"{"credsStore":"imgctl"}"#).unwrap();
    let wiretap = Wiretap::start();
    let mut command = home.command(IMGCTL);
    command.args(["resolve", &format!("{registry}/app:1")]).envs(wiretap.env());
    let out = run_with_stdin(&mut command, b"");
    let heard = wiretap.heard.lock().unwrap();
    assert!(heard.credentials.is_empty(), "credentials in clear to {registry}: {:?}", heard.credentials);
    assert!(heard.plain.is_empty(), "plain HTTP to a name that is not loopback: {:?}", heard.plain);
    assert!(heard.tunnels.iter().any(|t| t == registry), "HTTPS was tried: {:?}", heard.tunnels);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn endless_bodies_are_read_no_further_than_their_caps() {
    let s = setup("hostile-endless");
    let layout = s.home.dir.join("layout").display().to_string();
    let destination = format!("{}/prod/huge-referrers:1", s.destination.addr);
    let source = |repository: &str| s.source(repository);
    let (error, token, referrers, blob) =
        (source("huge-error"), source("huge-token"), source("huge-referrers"), source("endless-blob"));
    let cases: [(&str, Vec<&str>, &str); 4] = [
        ("a 400 with an endless error page", vec!["resolve", &error], ": 400"),
        ("an endless token answer", vec!["resolve", &token], "the answer is larger than 65536 bytes"),
        (
            "an endless referrers answer",
            vec!["promote", &referrers, &destination, "--referrers", "--audit-log", "a.jsonl"],
            "is larger than 4194304 bytes",
        ),
        (
            "a layer longer than its descriptor",
            vec!["pull", &blob, &layout],
            "the registry sent more than the 100000 bytes its descriptor says",
        ),
    ];
    let mut failures = Vec::new();
    for (what, args, said) in cases {
        let before = s.hostile.seen.body_bytes_taken.load(Ordering::SeqCst);
        let out = s.home.imgctl(&args, b"");
        let taken = s.hostile.seen.body_bytes_taken.load(Ordering::SeqCst) - before;
        // What the client read, plus what the sockets buffer: far below the body's length.
        if taken >= ENDLESS / 8 {
            failures.push(format!("{what}: {taken} of {ENDLESS} bytes taken"));
        }
        if out.status.code() != Some(1) || !stderr(&out).contains(said) {
            failures.push(format!("{what}: {:?}, {}", out.status.code(), stderr(&out)));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let partial = walk_sizes(&s.home.dir.join("layout"));
    assert!(partial.iter().all(|(_, size)| *size <= 100_000), "nothing on disk past a descriptor's size: {partial:?}");
}

fn walk_sizes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk_sizes(&path));
        } else {
            found.push((path.clone(), entry.metadata().map_or(0, |m| m.len())));
        }
    }
    found
}

/// Runs `command`; None when it is still running after `limit` (it is killed then).
fn run_within(command: &mut Command, limit: Duration) -> Option<Output> {
    let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    match receiver.recv_timeout(limit) {
        Ok(out) => Some(out.unwrap()),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            let _ = receiver.recv();
            None
        }
    }
}

#[test]
fn a_registry_that_trickles_bytes_is_given_up_on() {
    // Ten bytes a second against a floor of 1 KiB a second (IMGCTL_MIN_THROUGHPUT).
    let s = setup("hostile-trickle");
    let mut command = s.home.command(IMGCTL);
    command.args(["resolve", &s.source("trickle")]).env("IMGCTL_MIN_THROUGHPUT", "1KiB/1s");
    let out = run_within(&mut command, Duration::from_secs(60)).expect("imgctl gave up within 60 s");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("fewer than 1024 bytes in 1s moved"), "{}", stderr(&out));
}

#[test]
fn a_token_that_never_expires_does_not_overflow_the_clock() {
    // expires_in: u64::MAX.
    let s = setup("hostile-token-forever");
    assert_success(&s.promote("token-forever"), "promote with a token that never expires");
}

#[test]
fn a_token_of_one_second_is_not_fetched_per_request() {
    // expires_in: 1, taken as the token spec's floor of 60 s: one token for the whole copy.
    let s = setup("hostile-token-instant");
    assert_success(&s.promote("token-instant"), "promote with a token of one second");
    let tokens = s.hostile.seen.token_requests.load(Ordering::SeqCst);
    assert_eq!(tokens, 1, "token requests for one manifest and two blobs");
}

#[test]
fn a_registry_answering_503_gets_one_retry_budget_per_blob() {
    let s = setup("hostile-503");
    let out = promote_within(&s, "post-503").expect("the promotion ends");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(": 503"), "{}", stderr(&out));
    // Six attempts per blob (the default policy), two blobs; the copy stops at the first failure.
    let posts = s.hostile.seen.upload_posts.load(Ordering::SeqCst);
    assert!((6..=12).contains(&posts), "{posts} upload POSTs for two blobs");
}
