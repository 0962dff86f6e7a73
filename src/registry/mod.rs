//! Talking to OCI registries: whose credentials to send ([`credentials`]), how a registry asks
//! for them ([`challenge`]), and when to try again ([`retry`]).

pub mod challenge;
pub mod credentials;
pub mod retry;
