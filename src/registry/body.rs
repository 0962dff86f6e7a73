//! Reading a registry's response bodies within bounds: each kind of body has a size cap and
//! every read runs under the watchdog, so a registry that answers without end (an error page of
//! hundreds of MiB, an endless token response) or drop by drop costs neither memory nor time.

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Response;

use super::watchdog::{Meter, Stalled, Throughput};

/// The largest error or token body read (distribution's error JSON is a few hundred bytes).
pub const MAX_SMALL_BODY: usize = 64 * 1024;

/// Reading a body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More bytes than the cap (the rest were not read).
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The body moved too slowly.
    #[error(transparent)]
    Stalled(#[from] Stalled),
    /// The connection failed while reading.
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// The whole body of `response`, or [`BodyError::TooLarge`] as soon as it passes `cap` bytes
/// (announced or seen), read under `watchdog`.
pub async fn read_capped(response: Response, cap: usize, watchdog: &Throughput) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge(cap));
    }
    let meter = Meter::default();
    let read = async {
        let mut bytes = Vec::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            meter.add(chunk.len() as u64);
            if bytes.len() + chunk.len() > cap {
                return Err(BodyError::TooLarge(cap));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    watchdog.watch(&meter, read).await?
}

/// The first message of a distribution error body (`{"errors":[{"code","message"}]}`), from at
/// most [`MAX_SMALL_BODY`] bytes of it; None when there is none, or it is larger or slower.
pub async fn error_message(response: Response, watchdog: &Throughput) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let body = read_capped(response, MAX_SMALL_BODY, watchdog).await.ok()?;
    let errors: Errors = serde_json::from_slice(&body).ok()?;
    errors.errors.into_iter().next().map(|e| format!("{} {}", e.code, e.message).trim().to_owned())
}

/// `bytes` as a request body that `meter` counts as the HTTP client takes it, in 64 KiB pieces,
/// so the watchdog sees an upload progress.
pub fn counted(bytes: Bytes, meter: Meter) -> reqwest::Body {
    const PIECE: usize = 64 * 1024;
    let pieces = (0..bytes.len()).step_by(PIECE).map(move |at| bytes.slice(at..(at + PIECE).min(bytes.len())));
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces).map(move |piece| {
        meter.add(piece.len() as u64);
        Ok::<_, std::convert::Infallible>(piece)
    }))
}
