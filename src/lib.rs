//! imgctl: registry credentials kept safe, images promoted by digest, deploys with zero
//! dropped requests.
//!
//! The library holds every decision and effect; the binaries `imgctl` and
//! `docker-credential-imgctl` parse arguments, call one function here and print. Nothing in
//! the library prints.
//!
//! - [`credential`]: credentials, the [`credential::Store`] trait, the age file store and the
//!   docker credential helper protocol.
//! - [`docker_config`] and [`docker_setup`]: docker's config.json and wiring docker to imgctl.
//! - [`doctor`]: the health report of `imgctl creds doctor`.
//! - [`private_path`]: the ownership and mode rule for imgctl's directories and secret files.
//! - [`jsonl`]: the append-only JSON-lines logs (promotion audit, deploy history).
//! - [`reference`] and [`digest`]: image references in the docker grammar, content digests.
//! - [`registry`]: credentials, challenges and retries for talking to registries.
//! - [`verify`]: containers-policy.json and cosign signatures, the gate of promote and deploy.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod atomic_file;
pub mod copy;
pub mod credential;
pub mod deploy;
pub mod digest;
pub mod dirs;
pub mod docker_config;
pub mod docker_setup;
pub mod doctor;
mod go_json;
pub mod jsonl;
pub mod layout;
pub mod manifest;
pub mod private_path;
pub mod promote;
pub mod reference;
pub mod referrers;
pub mod registry;
pub mod verify;
