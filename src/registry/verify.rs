//! A blob's bytes verified as they stream from a source to an upload: hashed on the way, cut
//! the moment they pass the announced size, counted for progress and for the watchdog.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::client::{ByteStream, OnBytes};
use super::watchdog::Meter;
use crate::digest::{Digest, DigestHasher};
use crate::manifest::Descriptor;

/// Passes a blob's bytes through while hashing them. The digest is decided when the last of
/// the announced bytes arrives, before that chunk goes out: the HTTP client stops reading the
/// body once Content-Length bytes are sent, so a check at end of stream would come too late.
/// A mismatch (or a wrong length) fails the stream, so the upload is never committed, and is
/// recorded for the error message.
pub struct VerifyingStream {
    on_bytes: OnBytes,
    meter: Meter,
    inner: ByteStream,
    hasher: Option<DigestHasher>,
    expected: Digest,
    size: u64,
    sent: u64,
    mismatch: Arc<Mutex<Option<Digest>>>,
}

impl VerifyingStream {
    /// `body`, checked against `blob`; progress goes to `on_bytes` and `meter`, a mismatch to
    /// `mismatch`.
    pub fn new(
        body: ByteStream,
        blob: &Descriptor,
        on_bytes: OnBytes,
        meter: Meter,
        mismatch: Arc<Mutex<Option<Digest>>>,
    ) -> Self {
        Self {
            on_bytes,
            meter,
            inner: body,
            hasher: Some(DigestHasher::new(blob.digest.algorithm())),
            expected: blob.digest.clone(),
            size: blob.size,
            sent: 0,
            mismatch,
        }
    }

    fn fail(&mut self, actual: Digest) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        *self.mismatch.lock().expect("not poisoned") = Some(actual);
        Poll::Ready(Some(Err(std::io::Error::other("blob digest mismatch"))))
    }
}

impl Stream for VerifyingStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.meter.add(chunk.len() as u64);
                let Some(hasher) = self.hasher.as_mut() else {
                    // Bytes past the announced size.
                    return self.fail(Digest::sha256_of(b"more bytes than announced"));
                };
                hasher.update(&chunk);
                self.sent += chunk.len() as u64;
                if self.sent > self.size {
                    let actual = self.hasher.take().expect("present").finish();
                    return self.fail(actual);
                }
                (self.on_bytes)(chunk.len() as u64);
                if self.sent == self.size {
                    let actual = self.hasher.take().expect("present").finish();
                    if actual != self.expected {
                        return self.fail(actual);
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
            Poll::Ready(None) => match self.hasher.take() {
                // Fewer bytes than announced.
                Some(hasher) => {
                    let actual = hasher.finish();
                    self.fail(actual)
                }
                None => Poll::Ready(None),
            },
            Poll::Pending => Poll::Pending,
        }
    }
}
