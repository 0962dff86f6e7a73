//! `imgctl resolve | inspect | tag | promote`: one library call each, on a tokio runtime.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use imgctl::copy::{CopyOptions, TagOutcome};
use imgctl::manifest::{self, Parsed};
use imgctl::promote::signing::PromotionSigner;
use imgctl::promote::{self, Promotion, PromotionResult, audit};
use imgctl::reference::Reference;
use imgctl::registry::RegistryClient;
use imgctl::verify::Gate;

use crate::cli::{Command, Output, Promote, RegistryArgs};
use crate::exit::Usage;
use crate::registry::client;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

pub fn run(command: Command, output: Output) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match command {
            Command::Creds(_)
            | Command::Config { .. }
            | Command::Deploy(_)
            | Command::Rollback { .. }
            | Command::Status { .. }
            | Command::History { .. } => {
                unreachable!("main routes these elsewhere")
            }
            Command::Verify { reference, policy, registry } => {
                crate::verify::command(&reference, &policy, &registry, output).await
            }
            Command::Keygen { output_key_prefix, passphrase } => crate::sign::keygen(&output_key_prefix, &passphrase, output),
            Command::Sign(args) => crate::sign::command(args, output).await,
            Command::Resolve { reference, registry } => resolve(&reference, &registry, output).await,
            Command::Inspect { reference, raw, registry } => inspect(&reference, raw, &registry, output).await,
            Command::Tag { reference, tags, allow_tag_move, registry } => {
                let source: Reference = reference.parse()?;
                if source.digest().is_none() {
                    return Err(Usage(format!(
                        "{reference}: tag needs the image pinned by digest (repo@sha256:...); imgctl resolve finds it"
                    ))
                    .into());
                }
                let promotion = Promotion { destination: source.clone(), source, tags, allow_tag_move, dry_run: false, referrers: false };
                run_promotion(&promotion, &client(&registry)?, CopyOptions::default(), (None, None), None, output).await
            }
            Command::Promote(args) => promote_command(args, output).await,
            Command::Pull { reference, dir, name, registry } => {
                let source: Reference = reference.parse()?;
                let (digest, report) = imgctl::layout::pull(&client(&registry)?, &source, &dir, name.as_deref()).await?;
                match output {
                    Output::Json => outln!("{}", serde_json::json!({"reference": source.to_string(), "digest": digest, "dir": dir, "copy": report}))?,
                    Output::Text => outln!(
                        "{digest}: {} manifest(s), {} blob(s) written ({} bytes), {} already there, in {}",
                        report.manifests, report.blobs_uploaded, report.bytes_uploaded, report.blobs_present, dir.display()
                    )?,
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Push { dir, reference, name, allow_tag_move, registry } => {
                let destination: Reference = reference.parse()?;
                let (digest, report, tag) =
                    imgctl::layout::push(&client(&registry)?, &dir, name.as_deref(), &destination, allow_tag_move).await?;
                match output {
                    Output::Json => outln!("{}", serde_json::json!({"destination": destination.to_string(), "digest": digest, "copy": report, "tag": tag}))?,
                    Output::Text => outln!(
                        "{}@{digest}: {} manifest(s), {} blob(s) uploaded ({} bytes), {} already there{}",
                        destination.name(), report.manifests, report.blobs_uploaded, report.bytes_uploaded, report.blobs_present,
                        match (destination.tag(), &tag) {
                            (Some(t), Some(TagOutcome::Created)) => format!("; tagged {t}"),
                            (Some(t), Some(TagOutcome::AlreadyThere)) => format!("; {t} already at the digest, left alone"),
                            (Some(t), Some(TagOutcome::Moved { from })) => format!("; {t} moved from {from}"),
                            _ => String::new(),
                        }
                    )?,
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn resolve(reference: &str, args: &RegistryArgs, output: Output) -> Result<ExitCode> {
    let reference: Reference = reference.parse()?;
    let manifest = client(args)?.get_manifest(&reference).await?;
    match output {
        Output::Json => outln!(
            "{}",
            serde_json::json!({"reference": reference.to_string(), "digest": manifest.digest, "media_type": manifest.media_type})
        )?,
        Output::Text => outln!("{}", manifest.digest)?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn inspect(reference: &str, raw: bool, args: &RegistryArgs, output: Output) -> Result<ExitCode> {
    use std::io::Write;
    let reference: Reference = reference.parse()?;
    let manifest = client(args)?.get_manifest(&reference).await?;
    if raw {
        std::io::stdout().write_all(&manifest.bytes)?;
        return Ok(ExitCode::SUCCESS);
    }
    let parsed = manifest::parse(&manifest.bytes, &manifest.media_type)?;
    match output {
        Output::Json => {
            let content = match &parsed {
                Parsed::Index { manifests } => {
                    serde_json::json!({"manifests": manifests.iter().map(|m| serde_json::json!({
                    "digest": m.digest, "size": m.size, "media_type": m.media_type,
                    "platform": m.platform.as_ref().map(|p| format!("{}/{}{}", p.os, p.architecture, p.variant.as_deref().map(|v| format!("/{v}")).unwrap_or_default())),
                })).collect::<Vec<_>>()})
                }
                Parsed::Image { config, layers, subject } => serde_json::json!({
                    "config": {"digest": config.digest, "size": config.size},
                    "layers": layers.iter().map(|l| serde_json::json!({"digest": l.digest, "size": l.size, "media_type": l.media_type})).collect::<Vec<_>>(),
                    "subject": subject.as_ref().map(|s| s.digest.to_string()),
                }),
            };
            outln!(
                "{}",
                serde_json::json!({"reference": reference.to_string(), "digest": manifest.digest, "media_type": manifest.media_type, "size": manifest.bytes.len(), "content": content})
            )?;
        }
        Output::Text => {
            outln!(
                "{reference}\n  digest      {}\n  media type  {}\n  size        {}",
                manifest.digest,
                manifest.media_type,
                manifest.bytes.len()
            )?;
            match parsed {
                Parsed::Index { manifests } => {
                    for m in manifests {
                        let platform = m.platform.map(|p| {
                            format!(
                                "{}/{}{}",
                                p.os,
                                p.architecture,
                                p.variant.map(|v| format!("/{v}")).unwrap_or_default()
                            )
                        });
                        outln!("  manifest    {} {} bytes {}", m.digest, m.size, platform.unwrap_or_default())?;
                    }
                }
                Parsed::Image { config, layers, .. } => {
                    outln!("  config      {} {} bytes", config.digest, config.size)?;
                    for layer in layers {
                        outln!("  layer       {} {} bytes", layer.digest, layer.size)?;
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn promote_command(args: Promote, output: Output) -> Result<ExitCode> {
    let audit_log = match &args.audit_log {
        Some(path) => path.clone(),
        None => default_audit_log()?,
    };
    let options = CopyOptions { blob_concurrency: args.concurrency, progress: crate::progress::reporter() };
    // Read before any registry is: a policy that cannot be used stops the run here.
    let gate = crate::verify::gate(&args.policy, None)?;
    // So is the signing key: a wrong passphrase stops the run before a byte is copied.
    let signer = crate::sign::promotion_signer(&args.signing)?;
    let client = crate::registry::client_withholding(&args.registry, crate::sign::withheld(&args.signing.passphrase))?;
    if let Some(file) = &args.file {
        let text = std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
        let edges = promote::file::plan(&text, args.allow_tag_move, args.dry_run, args.referrers)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        return promote_edges(edges, &client, options, (gate.as_ref(), signer.as_ref()), &audit_log, output).await;
    }
    let (Some(source), Some(destination)) = (&args.source, &args.destination) else {
        return Err(Usage("give SOURCE and DESTINATION, or --file".into()).into());
    };
    let source: Reference = source.parse()?;
    let destination: Reference = destination.parse()?;
    let mut tags = args.tags.clone();
    if let Some(tag) = destination.tag() {
        tags.insert(0, tag.to_owned());
    }
    if tags.is_empty()
        && let Some(tag) = source.tag()
    {
        tags.push(tag.to_owned());
    }
    if destination.digest().is_some() {
        return Err(Usage(
            "the destination is a repository (with tags), not a digest: the digest is the source's; give DESTINATION as repo or repo:tag".into(),
        )
        .into());
    }
    let promotion = Promotion {
        source,
        destination,
        tags,
        allow_tag_move: args.allow_tag_move,
        dry_run: args.dry_run,
        referrers: args.referrers,
    };
    run_promotion(&promotion, &client, options, (gate.as_ref(), signer.as_ref()), Some(audit_log), output).await
}

/// The signature gate in front of a promotion and the key that signs behind it.
type Checks<'a> = (Option<&'a Gate>, Option<&'a PromotionSigner>);

/// Every edge of a promotion manifest, a few at a time; one failing does not stop the others.
async fn promote_edges(
    edges: Vec<Promotion>,
    client: &RegistryClient,
    options: CopyOptions,
    (gate, signer): Checks<'_>,
    audit_log: &std::path::Path,
    output: Output,
) -> Result<ExitCode> {
    use futures_util::StreamExt;
    let outcomes: Vec<(Promotion, std::result::Result<PromotionResult, promote::PromoteError>)> =
        futures_util::stream::iter(edges)
            .map(|edge| {
                let options = &options;
                async move {
                    let outcome = promote::promote_signed(client, &edge, options, gate, signer).await;
                    (edge, outcome)
                }
            })
            .buffered(4)
            .collect()
            .await;
    options.progress.finish();
    let (mut promoted, mut failed) = (Vec::new(), Vec::new());
    for (edge, outcome) in outcomes {
        match outcome {
            Ok(result) => {
                if !result.dry_run {
                    audit::append(audit_log, &result, &audit::actor(), SystemTime::now()).map_err(|e| {
                        format!(
                            "{} was promoted but the audit log {} could not be written: {e}",
                            result.digest,
                            audit_log.display()
                        )
                    })?;
                }
                promoted.push(result);
            }
            Err(error) => failed.push((edge, error)),
        }
    }
    match output {
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "promoted": promoted,
                "failed": failed.iter().map(|(edge, error)| serde_json::json!({
                    "source": edge.source.to_string(), "destination": edge.destination.name(), "tags": edge.tags, "error": error.to_string(),
                    "rejected": matches!(error, promote::PromoteError::Verify(_)),
                    "copied_not_signed": matches!(error, promote::PromoteError::NotSigned { .. }),
                })).collect::<Vec<_>>(),
            }))?
        )?,
        Output::Text => {
            for result in &promoted {
                print_result(result, None, output)?;
            }
            for (edge, error) in &failed {
                eprintln!("FAILED {} -> {}: {error}", edge.source, edge.destination.name());
            }
            outln!(
                "{} promoted, {} failed{}",
                promoted.len(),
                failed.len(),
                if promoted.iter().any(|r| !r.dry_run) {
                    format!("; recorded in {}", audit_log.display())
                } else {
                    String::new()
                }
            )?;
        }
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn run_promotion(
    promotion: &Promotion,
    client: &RegistryClient,
    options: CopyOptions,
    (gate, signer): Checks<'_>,
    audit_log: Option<PathBuf>,
    output: Output,
) -> Result<ExitCode> {
    let result = promote::promote_signed(client, promotion, &options, gate, signer).await;
    options.progress.finish();
    let result = result?;
    if !result.dry_run
        && let Some(path) = &audit_log
    {
        audit::append(path, &result, &audit::actor(), SystemTime::now()).map_err(|e| {
            format!("{} was promoted but the audit log {} could not be written: {e}", result.digest, path.display())
        })?;
    }
    print_result(&result, audit_log.as_deref(), output)?;
    Ok(ExitCode::SUCCESS)
}

fn print_result(result: &PromotionResult, audit_log: Option<&std::path::Path>, output: Output) -> Result<()> {
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(result)?)?;
        return Ok(());
    }
    let verb = if result.dry_run { "would copy" } else { "copied" };
    outln!("{verb} {} ({}) to {}", result.digest, result.source, result.destination)?;
    if let Some(verified) = &result.verified {
        for by in &verified.accepted_by {
            if let imgctl::verify::AcceptedBy::SigstoreSigned { signature, key, .. } = by {
                outln!("  signature {signature} verified with {key} ({})", verified.policy.display())?;
            }
        }
    }
    if let Some(signed) = &result.signed {
        outln!("  {}", crate::sign::describe(signed))?;
    }
    if let Some(would) = &result.would_sign {
        outln!("  would sign it there ({} layout), key {}", would.layout.as_str(), would.key)?;
    }
    let copy = &result.copy;
    if !result.dry_run && copy.manifests > 0 {
        outln!(
            "  {} manifest(s); blobs: {} uploaded ({} bytes), {} mounted, {} already there",
            copy.manifests,
            copy.blobs_uploaded,
            copy.bytes_uploaded,
            copy.blobs_mounted,
            copy.blobs_present
        )?;
    }
    for tag in &result.tags {
        let what = match (&tag.outcome, result.dry_run) {
            (TagOutcome::Created, false) => "tagged".to_owned(),
            (TagOutcome::Created, true) => "would tag".to_owned(),
            (TagOutcome::AlreadyThere, _) => "already at the digest, left alone".to_owned(),
            (TagOutcome::Moved { from }, false) => format!("moved from {from}"),
            (TagOutcome::Moved { from }, true) => format!("would move from {from}"),
        };
        outln!("  {}:{} {what}", result.destination, tag.tag)?;
    }
    if let Some(referrers) = &result.referrers {
        outln!(
            "  {} referrer(s) copied{}",
            referrers.copied.len(),
            referrers.fallback_tag.as_deref().map(|t| format!(", fallback tag {t} written")).unwrap_or_default()
        )?;
    }
    if let Some(signature_tag) = &result.signature_tag {
        use imgctl::promote::signatures::SignatureTag;
        let line = match signature_tag {
            SignatureTag::Copied { tag } => format!("signature tag {tag} copied"),
            SignatureTag::AlreadyThere { tag } => format!("signature tag {tag} already there"),
            SignatureTag::KeptDestinations { tag, destination_digest } => {
                format!("signature tag {tag} kept as the destination has it ({destination_digest}), not overwritten")
            }
        };
        outln!("  {line}")?;
    }
    if let Some(path) = audit_log.filter(|_| !result.dry_run) {
        outln!("  recorded in {}", path.display())?;
    }
    Ok(())
}

fn default_audit_log() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("IMGCTL_AUDIT_LOG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let state = imgctl::dirs::env_or_home("XDG_STATE_HOME", ".local/state")
        .ok_or("cannot find a state directory: set HOME or --audit-log")?;
    Ok(state.join("imgctl/promotions.jsonl"))
}
