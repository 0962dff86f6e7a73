//! The arguments of `imgctl keygen`, `imgctl sign` and `promote --sign-key`.

use clap::{Args, ValueEnum};

use super::RegistryArgs;

/// Where a cosign key's passphrase comes from (never argv).
#[derive(Debug, Args)]
pub struct PassphraseArgs {
    /// Read the key's passphrase from stdin: all of it, less one trailing newline.
    #[arg(long, conflicts_with = "passphrase_env")]
    pub passphrase_stdin: bool,
    /// Read the key's passphrase from this environment variable. Default: COSIGN_PASSWORD,
    /// when it is set (as cosign reads it).
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
}

/// Signature layouts imgctl writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SignLayout {
    /// The sha256-<hex>.sig tag with simple-signing layers (what every cosign verifier reads).
    Classic,
    /// A sigstore bundle v0.3 as an OCI 1.1 referrer (cosign v3's default).
    Bundle,
}

/// `imgctl sign`
#[derive(Debug, Args)]
pub struct Sign {
    /// The image (a tag is resolved once; the digest is what is signed).
    pub reference: String,
    /// The cosign private key (ENCRYPTED SIGSTORE PRIVATE KEY, as cosign generate-key-pair
    /// and imgctl keygen write it).
    #[arg(long, value_name = "FILE")]
    pub key: std::path::PathBuf,
    /// The layout to write.
    #[arg(long, value_enum, default_value_t = SignLayout::Classic)]
    pub layout: SignLayout,
    /// Write the classic sha256-<hex>.sig tag in this repository instead of the image's
    /// (cosign's COSIGN_REPOSITORY).
    #[arg(long, value_name = "REPO")]
    pub signature_repository: Option<String>,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `promote --sign-key`
#[derive(Debug, Args)]
pub struct PromoteSigning {
    /// Sign each promoted digest at the destination with this cosign private key, after the
    /// copy and before its tags are written.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<std::path::PathBuf>,
    /// The layout of that signature.
    #[arg(long, value_enum, default_value_t = SignLayout::Classic, requires = "sign_key")]
    pub sign_layout: SignLayout,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}
