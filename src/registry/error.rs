//! Why a registry operation failed, with what to do about it.

use crate::digest::Digest;
use crate::registry::challenge::InvalidChallenge;
use crate::registry::credentials::ResolveError;
use crate::registry::origin::Refusal;
use crate::registry::watchdog::Stalled;

/// A failed registry operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The connection failed (after retries).
    #[error("{method} {url}: {source}")]
    Connection {
        /// The HTTP method.
        method: &'static str,
        /// The URL (no credentials in it).
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an error status (after retries for the retryable ones).
    #[error("{method} {url}: {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The registry's error message, when it sent one.
        message: Option<String>,
    },
    /// The registry refused the credential (or its absence) for this repository.
    #[error("{registry} refused access to {repository} ({status}): check the credential with imgctl creds which {registry}{}", message.as_deref().map(|m| format!("; the registry said: {m}")).unwrap_or_default())]
    Denied {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// 401 or 403.
        status: u16,
        /// The registry's message.
        message: Option<String>,
    },
    /// The manifest or blob does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was asked for.
        what: String,
    },
    /// Content did not hash to the digest it was asked for or announced with.
    #[error(
        "{what}: expected {expected}, got {actual}: the registry served other bytes than asked for; nothing was written at the destination"
    )]
    DigestMismatch {
        /// What was read.
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what came.
        actual: Digest,
    },
    /// A manifest is larger than the cap.
    #[error("{what} is larger than {limit} bytes; refusing it (manifests are small JSON documents)")]
    ManifestTooLarge {
        /// What was read.
        what: String,
        /// The cap.
        limit: usize,
    },
    /// The registry asked for authentication imgctl cannot give.
    #[error("{registry}: {source}")]
    Challenge {
        /// The registry.
        registry: String,
        /// What is wrong with the challenge.
        #[source]
        source: InvalidChallenge,
    },
    /// A 401 came from another origin than the registry's (after a redirect, or from an upload
    /// location elsewhere): its challenge may not steer where the registry's credential goes.
    #[error(
        "{host} answered 401 to a request for {registry}: imgctl sends {registry}'s credential only to {registry} and the token realm it names, so it does not answer a challenge from {host}"
    )]
    ForeignChallenge {
        /// The registry.
        registry: String,
        /// `host[:port]` that sent the 401.
        host: String,
    },
    /// The registry named a token realm or an upload location imgctl does not follow.
    #[error("{registry} named {url} as its {what}; refusing it: {reason}")]
    UnsafeUrl {
        /// The registry.
        registry: String,
        /// `token realm` or `upload location`.
        what: &'static str,
        /// The URL, without user info.
        url: String,
        /// What is wrong with it.
        reason: Refusal,
    },
    /// The registry name is not `host[:port]`.
    #[error("{registry:?} is not a registry host (host or host:port)")]
    InvalidRegistry {
        /// The name.
        registry: String,
    },
    /// A request moved too slowly (see `ClientOptions::min_throughput`).
    #[error("{method} {url}: {source}; set IMGCTL_MIN_THROUGHPUT (e.g. 16KiB/60s) if the link is this slow")]
    Stalled {
        /// The HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The rule it broke.
        #[source]
        source: Stalled,
    },
    /// A blob came with more bytes than its descriptor says; reading stopped there.
    #[error("{what}: the registry sent more than the {size} bytes its descriptor says; stopped reading there")]
    BlobTooLarge {
        /// What was read.
        what: String,
        /// The descriptor's size.
        size: u64,
    },
    /// The token endpoint failed.
    #[error("getting a token from {realm}: {message}")]
    Token {
        /// The token endpoint.
        realm: String,
        /// What went wrong.
        message: String,
    },
    /// The credential could not be resolved.
    #[error(transparent)]
    Credentials(#[from] ResolveError),
    /// A response broke the distribution spec.
    #[error("{url}: {message}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
}

impl RegistryError {
    /// Whether trying the whole operation again may help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connection { source, .. } => {
                source.is_connect() || source.is_timeout() || source.is_request() || source.is_body()
            }
            Self::Status { status, .. } => super::retry::is_retryable_status(*status),
            Self::Stalled { .. } => true,
            _ => false,
        }
    }
}
