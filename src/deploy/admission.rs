//! The signature gate a rollback puts in front of the digest it is about to start again.
//!
//! A policy decides at every start, not only at the first: Kubernetes admission controllers
//! (sigstore policy-controller, Kyverno, Connaisseur) check each pod a rollback creates, as
//! they check a deploy's. So `imgctl rollback` (to the idle color, to the history's previous
//! digest, or `--to DIGEST`) is refused before any replica starts when the policy in force
//! does not accept that digest now, even if it was deployed before the policy existed.

use std::fmt;

use super::model::PinnedImage;
use crate::registry::RegistryClient;
use crate::verify::{self, Accepted, Gate, VerifyError};

/// A policy and the registry client its signatures are read with.
pub struct Admission {
    client: RegistryClient,
    gate: Gate,
}

impl Admission {
    /// The gate `gate`, reading signatures through `client`.
    pub fn new(client: RegistryClient, gate: Gate) -> Self {
        Self { client, gate }
    }

    /// Whether the policy accepts `image` now.
    pub async fn admit(&self, image: &PinnedImage) -> Result<Accepted, VerifyError> {
        verify::verify(&self.client, &self.gate, &image.repository, &image.digest).await
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission").field("gate", &self.gate).finish_non_exhaustive()
    }
}
