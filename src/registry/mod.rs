//! Talking to OCI registries: whose credentials to send ([`credentials`]), how a registry asks
//! for them ([`challenge`]), and when to try again ([`retry`]).

mod auth;
pub mod challenge;
pub mod client;
pub mod credentials;
pub mod error;
pub mod retry;

pub use client::{BlobCopy, ByteStream, ClientOptions, DownloadError, Manifest, OnBytes, RegistryClient};
pub use error::RegistryError;
