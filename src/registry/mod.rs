//! Talking to OCI registries: whose credentials to send ([`credentials`]), how a registry asks
//! for them ([`challenge`]), where they may go ([`origin`]), when to try again ([`retry`]) and
//! how slow is too slow ([`watchdog`]).

mod auth;
mod blobs;
mod body;
pub mod challenge;
pub mod client;
pub mod credentials;
pub mod error;
pub mod origin;
pub mod retry;
mod verify;
pub mod watchdog;

pub use client::{BlobCopy, ByteStream, ClientOptions, DownloadError, Manifest, OnBytes, RegistryClient};
pub use error::RegistryError;
pub use watchdog::Throughput;
