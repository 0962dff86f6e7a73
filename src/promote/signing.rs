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

impl PromotionSigner {
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
