//! Signing at promotion (`promote --sign-key`): the digest just promoted is signed at the
//! destination, in its repository, with a cosign key decrypted before anything was copied.

use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::RegistryClient;
use crate::verify::Layout;
use crate::verify::keyfile::SigningKey;
use crate::verify::sign::{self, SignError, SignRequest, Signed};

/// The key and layout every promoted edge is signed with.
#[derive(Debug)]
pub struct PromotionSigner {
    /// The decrypted key.
    pub key: SigningKey,
    /// The layout written.
    pub layout: Layout,
}

/// What `--sign-key` would write, in a dry run: nothing is signed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WouldSign {
    /// The layout it would write.
    pub layout: Layout,
    /// The key's fingerprint (the SHA-256 of its public key).
    pub key: Digest,
}

impl PromotionSigner {
    /// What this signer would write, for a dry run's report.
    pub fn would_sign(&self) -> WouldSign {
        WouldSign { layout: self.layout, key: self.key.fingerprint().clone() }
    }

    /// Signs `digest` in `destination`'s repository; the classic payload names that repository.
    pub async fn sign(
        &self,
        client: &RegistryClient,
        destination: &Reference,
        digest: &Digest,
    ) -> Result<Signed, SignError> {
        let request = SignRequest { image: destination, digest, layout: self.layout, signature_repository: None };
        sign::sign(client, &self.key, request).await
    }
}
