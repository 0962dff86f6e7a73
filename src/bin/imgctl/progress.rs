//! How a copy's progress is shown: bars on a terminal, one line per blob and manifest
//! elsewhere (CI logs), on stderr either way (stdout is the result, JSON for CI).
#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use imgctl::copy::Progress;
use imgctl::digest::Digest;
use imgctl::registry::BlobCopy;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The reporter for this process's stderr.
pub fn reporter() -> std::sync::Arc<dyn Progress> {
    if std::io::stderr().is_terminal() { std::sync::Arc::new(Bars::new()) } else { std::sync::Arc::new(Lines) }
}

/// One bar of bytes, with blob and manifest counts.
struct Bars {
    bar: ProgressBar,
    sizes: Mutex<HashMap<Digest, u64>>,
    blobs_started: AtomicUsize,
    blobs_done: AtomicUsize,
    manifests: AtomicUsize,
}

impl Bars {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .expect("a valid template"),
        );
        Self {
            bar,
            sizes: Mutex::default(),
            blobs_started: AtomicUsize::new(0),
            blobs_done: AtomicUsize::new(0),
            manifests: AtomicUsize::new(0),
        }
    }

    fn message(&self) {
        self.bar.set_message(format!(
            "blobs {}/{} · manifests {}",
            self.blobs_done.load(Ordering::Relaxed),
            self.blobs_started.load(Ordering::Relaxed),
            self.manifests.load(Ordering::Relaxed)
        ));
    }
}

impl Progress for Bars {
    fn blob_started(&self, digest: &Digest, size: u64) {
        self.sizes.lock().expect("not poisoned").insert(digest.clone(), size);
        self.blobs_started.fetch_add(1, Ordering::Relaxed);
        self.bar.inc_length(size);
        self.message();
    }

    fn bytes(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn blob_finished(&self, digest: &Digest, outcome: BlobCopy) {
        // Blobs that did not stream still count as done bytes.
        if !matches!(outcome, BlobCopy::Uploaded(_)) {
            self.bar.inc(self.sizes.lock().expect("not poisoned").get(digest).copied().unwrap_or(0));
        }
        self.blobs_done.fetch_add(1, Ordering::Relaxed);
        self.message();
    }

    fn manifest_written(&self, _digest: &Digest, _media_type: &str) {
        self.manifests.fetch_add(1, Ordering::Relaxed);
        self.message();
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// One line per finished blob and manifest.
struct Lines;

impl Progress for Lines {
    fn blob_finished(&self, digest: &Digest, outcome: BlobCopy) {
        let what = match outcome {
            BlobCopy::Present => "already there".to_owned(),
            BlobCopy::Mounted => "mounted".to_owned(),
            BlobCopy::Uploaded(bytes) => format!("copied {bytes} bytes"),
        };
        eprintln!("blob {digest} {what}");
    }

    fn manifest_written(&self, digest: &Digest, media_type: &str) {
        eprintln!("manifest {digest} ({media_type}) written");
    }
}
