//! `imgctl verify`, and the signature gate promote and deploy put in front of a digest.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use imgctl::deploy::PinnedImage;
use imgctl::reference::Reference;
use imgctl::verify::{self, Accepted, AcceptedBy, Gate, PolicySource, Reason, VerifyError};

use crate::cli::{Output, PolicyArgs, RegistryArgs};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The gate: `--policy`, else `configured` (x-imgctl.verify), else the default locations; None
/// when none of the default files exists.
pub fn gate(args: &PolicyArgs, configured: Option<PathBuf>) -> Result<Option<Gate>> {
    let source = match args.policy.clone().or(configured) {
        Some(path) => PolicySource::Given(path),
        None => PolicySource::Defaults { home: std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from) },
    };
    let Some(policy) = source.load()? else { return Ok(None) };
    let signature_repository = args.signature_repository.as_deref().map(str::parse::<Reference>).transpose()?;
    Ok(Some(Gate { policy, signature_repository }))
}

/// `imgctl verify IMAGE`: 0 when the policy accepts, 1 when it refuses.
pub async fn command(reference: &str, args: &PolicyArgs, registry: &RegistryArgs, output: Output) -> Result<ExitCode> {
    let image: Reference = reference.parse()?;
    let gate = gate(args, None)?.ok_or(
        "no signature policy: give --policy FILE (none at ~/.config/containers/policy.json or /etc/containers/policy.json)",
    )?;
    let client = crate::registry::client(registry)?;
    let digest = client.get_manifest(&image).await?.digest;
    match verify::verify(&client, &gate, &image, &digest).await {
        Ok(accepted) => {
            match output {
                Output::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"accepted": true, "verification": accepted}))?
                )?,
                Output::Text => print_accepted(&accepted)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(VerifyError::Rejected(rejected)) => {
            if output == Output::Json {
                let signatures = match &rejected.reason {
                    Reason::NoneAccepted(failures) => failures
                        .iter()
                        .map(|(layout, location, failure)| serde_json::json!({"layout": layout, "signature": location, "failure": failure.to_string()}))
                        .collect(),
                    _ => Vec::new(),
                };
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "accepted": false, "image": rejected.image, "digest": rejected.digest, "policy": rejected.policy,
                        "scope": rejected.scope, "reason": rejected.kind(), "message": rejected.to_string(), "signatures": signatures,
                    }))?
                )?;
            }
            eprintln!("REJECTED {rejected}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

fn print_accepted(accepted: &Accepted) -> std::io::Result<()> {
    outln!(
        "{}@{}: accepted by {} (scope {:?})",
        accepted.image,
        accepted.digest,
        accepted.policy.display(),
        accepted.scope
    )?;
    for by in &accepted.accepted_by {
        match by {
            AcceptedBy::InsecureAcceptAnything => outln!("  insecureAcceptAnything")?,
            AcceptedBy::SigstoreSigned { layout, signature, key, key_fingerprint } => {
                outln!("  signature {signature} ({} layout) verified with {key} ({key_fingerprint})", layout.as_str())?
            }
        }
    }
    Ok(())
}

/// The deploy gate: refuses `image` before anything is pulled when the policy (`--policy`,
/// else x-imgctl.verify, else the defaults) does not accept it. Says on stderr what accepted it.
pub async fn deploy_gate(
    args: &PolicyArgs,
    configured: Option<PathBuf>,
    registry: &RegistryArgs,
    image: &PinnedImage,
) -> Result<()> {
    let Some(gate) = gate(args, configured)? else { return Ok(()) };
    let client = crate::registry::client(registry)?;
    let accepted = verify::verify(&client, &gate, &image.repository, &image.digest).await?;
    eprintln!("signature policy {} accepts {}", accepted.policy.display(), image.reference());
    Ok(())
}
