//! The sample hooks in `hooks/`, run as imgctl runs them: the notifier is installed under both
//! of its names, posts valid JSON whatever the reason holds, and keeps its webhook URL (a
//! credential) off every command line.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestHome, assert_success, require, stdout};

fn hooks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks")
}

/// One HTTP request, answered 200: its request line and body.
fn serve_one(listener: TcpListener) -> std::thread::JoinHandle<(String, Vec<u8>)> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (&stream).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").unwrap();
        (request_line, body)
    })
}

#[test]
fn on_rollback_is_the_notifier_under_its_own_name() {
    let path = hooks_dir().join("on-rollback");
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.is_file() && meta.permissions().mode() & 0o111 != 0, "{} must be an executable hook", path.display());
    let home = TestHome::new("hook-on-rollback");
    let out = home
        .command(&path)
        .envs([
            ("IMGCTL_SERVICE", "web"),
            ("IMGCTL_ACTION", "rollback"),
            ("IMGCTL_PERFORMER", "ci"),
            ("IMGCTL_DEPLOY_ID", "d-1"),
            ("IMGCTL_OLD_COLOR", "blue"),
            ("IMGCTL_REASON", "verify failed"),
        ])
        .output()
        .unwrap();
    assert_success(&out, "hooks/on-rollback");
    let line = stdout(&out);
    assert!(line.contains("web rollback by ci rolled back to blue: verify failed (run d-1)"), "{line}");
}

#[test]
fn the_notifier_posts_valid_json_and_keeps_the_webhook_url_off_argv() {
    let real_curl = require("curl", "curl");
    let home = TestHome::new("hook-notify");
    // A curl that records its command line, as ps would show it, then does the real work.
    let bin = home.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let argv_log = home.dir.join("curl-argv");
    let wrapper = bin.join("curl");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\nexec '{}' \"$@\"\n",
            argv_log.display(),
            real_curl.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let token = common::random_hex(16);
    let url = format!("http://{}/hooks/{token}", listener.local_addr().unwrap());
    let server = serve_one(listener);
    let reason = "post-switch hook failed:\n\tline \"two\" \\ three\u{1}";
    // The notifier under the name imgctl runs it by on a rollback.
    let hook = home.dir.join("on-rollback");
    std::os::unix::fs::symlink(hooks_dir().join("post-deploy"), &hook).unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let out = home
        .command(&hook)
        .env("PATH", format!("{}:{path}:/usr/bin:/bin", bin.display()))
        .envs([
            ("IMGCTL_SERVICE", "web"),
            ("IMGCTL_ACTION", "deploy"),
            ("IMGCTL_PERFORMER", "ci"),
            ("IMGCTL_DEPLOY_ID", "d-2"),
            ("IMGCTL_OLD_COLOR", "green"),
            ("IMGCTL_REASON", reason),
            ("IMGCTL_NOTIFY_URL", &url),
            ("IMGCTL_NOTIFY_FILE", home.dir.join("notify.log").to_str().unwrap()),
        ])
        .output()
        .unwrap();
    assert_success(&out, "hooks/on-rollback with a webhook");
    let (request_line, body) = server.join().unwrap();
    let argv = std::fs::read_to_string(&argv_log).expect("the hook ran curl");
    assert!(!argv.contains(&token), "the webhook URL was on curl's command line: {argv}");
    assert!(request_line.starts_with(&format!("POST /hooks/{token} ")), "{request_line}");
    let json: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("the webhook got invalid JSON ({e}): {}", String::from_utf8_lossy(&body)));
    let text = json["text"].as_str().unwrap();
    assert!(
        text.ends_with("rolled back to green: post-switch hook failed:\n\tline \"two\" \\ three (run d-2)"),
        "{text}"
    );

    assert!(!String::from_utf8_lossy(&out.stderr).contains(&token), "the webhook URL was printed");
}

#[test]
fn a_failed_notification_never_names_the_webhook() {
    let home = TestHome::new("hook-notify-down");
    // A port nobody listens on: bind, note it, close.
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let token = common::random_hex(16);
    let out = Command::new(hooks_dir().join("post-deploy"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir(&home.dir)
        .envs([
            ("IMGCTL_SERVICE", "web"),
            ("IMGCTL_ACTION", "deploy"),
            ("IMGCTL_PERFORMER", "ci"),
            ("IMGCTL_DEPLOY_ID", "d-3"),
            ("IMGCTL_DIGEST", "sha256:00"),
            ("IMGCTL_NEW_COLOR", "blue"),
        ])
        .env("IMGCTL_NOTIFY_URL", format!("http://{addr}/hooks/{token}"))
        .output()
        .unwrap();
    assert_success(&out, "a notifier never fails a deploy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not notify"), "{stderr}");
    assert!(!stderr.contains(&token), "the webhook URL was printed: {stderr}");
}
