//! `imgctl deploy | rollback | status | history`: resolve the service and the image, call the
//! library, print each step as it ends (stderr) and the result (stdout).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgctl::deploy::admission::Admission;
use imgctl::deploy::config::Request;
use imgctl::deploy::history::Outcome;
use imgctl::deploy::model::Source;
use imgctl::deploy::spec::{self, ServiceSpec};
use imgctl::deploy::{self, Action, DeployError, Events, Options, PinnedImage, Report, status};
use imgctl::digest::Digest;
use imgctl::docker_config::DockerConfig;
use imgctl::reference::Reference;

use crate::cli::{Command, ComposeArgs, Deploy, Output, StackArgs};
use crate::exit::{self, Usage};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// What the proxy's test or reload command printed when a switch failed: for the terminal
/// only, since the error's message is what the history keeps.
pub fn proxy_output<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a str> {
    match error.downcast_ref::<DeployError>()? {
        DeployError::Proxy(e) => Some(e.output()).filter(|output| !output.is_empty()),
        _ => None,
    }
}

pub fn run(command: Command, output: Output) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match command {
            Command::Deploy(args) => deploy_command(args, output).await,
            Command::Rollback { service, to, compose, stack, policy, registry } => {
                let to = to.map(|d| d.parse::<Digest>()).transpose()?;
                let mut spec = in_stack(load(&compose, &service, &stack)?, &stack)?;
                read_files(&mut spec)?;
                // The digest a rollback starts passes the same policy a deploy's does.
                let mut options = options(false)?;
                if let Some(gate) = crate::verify::gate(&policy, spec.settings.verify.clone())? {
                    options.admission = Some(Arc::new(Admission::new(crate::registry::client(&registry)?, gate)));
                }
                finish(deploy::execute(&spec, &options, Action::Rollback { to }, &mut Printer::new()).await?, output)
            }
            Command::Status { service, compose, stack } => {
                let spec = in_stack(load(&compose, &service, &stack)?, &stack)?;
                print_status(&status::status(&spec, &options(false)?).await?, output)
            }
            Command::History { service, limit, compose, stack } => {
                // The compose file is read so a typo in the service name is caught.
                let spec = in_stack(load(&compose, &service, &stack)?, &stack)?;
                let mut records = status::history(&options(false)?, &spec.record_name())?;
                if let Some(limit) = limit {
                    records.drain(..records.len().saturating_sub(limit));
                }
                match output {
                    Output::Json => outln!("{}", serde_json::to_string_pretty(&records)?)?,
                    Output::Text if records.is_empty() => outln!("{service}: no deploys yet")?,
                    Output::Text => {
                        for r in records {
                            outln!(
                                "{}  {:<8} {:<9} {:<10} {} -> {}  {} by {}{}{}",
                                r.started,
                                r.action,
                                format!("{:?}", r.outcome).to_lowercase(),
                                r.strategy,
                                r.previous_digest.as_deref().map(short).unwrap_or("-"),
                                short(&r.digest),
                                r.color,
                                r.performer,
                                r.adopted
                                    .map(|project| format!(", taking over compose project {project}"))
                                    .unwrap_or_default(),
                                r.reason.map(|why| format!("\n    {why}")).unwrap_or_default()
                            )?;
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            _ => unreachable!("main routes only deploy commands here"),
        }
    })
}

async fn deploy_command(args: Deploy, output: Output) -> Result<ExitCode> {
    let mut spec = in_stack(load(&args.compose, &args.service, &args.stack)?, &args.stack)?;
    read_files(&mut spec)?;
    let options = options(args.no_auto_promote)?;
    let action = if args.resume {
        Action::Continue
    } else if args.abort {
        Action::Abort
    } else if args.repair {
        Action::Repair
    } else if args.adopt {
        Action::Adopt
    } else {
        let image = pin(&args, &spec).await?;
        // The signature gate, before anything is pulled (on the Engine and on swarm alike).
        crate::verify::deploy_gate(&args.policy, spec.settings.verify.clone(), &args.registry, &image).await?;
        Action::Deploy(image)
    };
    if args.dry_run {
        let lines = deploy::preview(&spec, &options, &action).await?;
        match output {
            Output::Json => outln!("{}", serde_json::json!({"service": spec.name, "dry_run": true, "plan": lines}))?,
            Output::Text => {
                outln!("{} {} ({}), dry run:", action.name(), spec.name, spec.settings.strategy.as_str())?;
                for (i, line) in lines.iter().enumerate() {
                    outln!("  {:>2}. {line}", i + 1)?;
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    finish(deploy::execute(&spec, &options, action, &mut Printer::new()).await?, output)
}

/// The image to deploy, pinned: `--digest` in the compose image's repository, `--image`
/// with a digest, or a tag resolved once with `--resolve`.
async fn pin(args: &Deploy, spec: &ServiceSpec) -> Result<PinnedImage> {
    let (reference, digest) = match (&args.digest, &args.image) {
        (Some(digest), _) => {
            let digest: Digest = digest.parse()?;
            let image = spec.image.as_deref().ok_or_else(|| {
                Usage(format!(
                    "service {} has no image in {}: give --image repo@{digest}",
                    spec.name,
                    spec.compose_file.display()
                ))
            })?;
            (image.parse::<Reference>()?, digest)
        }
        (None, Some(image)) => {
            let reference: Reference = image.parse()?;
            match reference.digest().cloned() {
                Some(digest) => (reference, digest),
                None if args.resolve => {
                    let manifest = crate::registry::client(&args.registry)?.get_manifest(&reference).await?;
                    eprintln!("resolved {reference} to {} (deploying and recording the digest)", manifest.digest);
                    (reference, manifest.digest)
                }
                None => {
                    return Err(Usage(format!(
                        "{image} is a tag, and a tag can move: deploy a digest (--image repo@sha256:... or --digest), or add --resolve to pin the tag's digest now"
                    ))
                    .into());
                }
            }
        }
        (None, None) => {
            return Err(Usage(
                "say what to deploy: --digest sha256:... or --image repo@sha256:... (or --continue / --abort)".into(),
            )
            .into());
        }
    };
    let repository: Reference = reference.name().parse()?;
    Ok(PinnedImage { repository, digest })
}

/// Reads `service` as compose would from the command line's files and the process
/// environment, and says on stderr what the loader noted (unset variables, ignored keys).
pub fn load(compose: &ComposeArgs, service: &str, stack: &StackArgs) -> Result<ServiceSpec> {
    let request = Request {
        files: compose.files.clone(),
        env_files: compose.env_files.clone(),
        environment: process_environment(),
        cwd: std::env::current_dir()?,
        stack: stack.stack.clone(),
        project_name: compose.project_name.clone(),
    };
    let spec = spec::resolve(&request, service)?;
    for note in &spec.notes {
        eprintln!("note: {note}");
    }
    Ok(spec)
}

/// What the service's secrets and configs hold, for a run that may start replicas (status,
/// history and config read none).
fn read_files(spec: &mut ServiceSpec) -> Result<()> {
    Ok(spec.read_files(&process_environment())?)
}

fn process_environment() -> std::collections::BTreeMap<String, String> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

/// `--stack NAME` over the compose file's `x-imgctl.stack`.
fn in_stack(spec: ServiceSpec, stack: &StackArgs) -> Result<ServiceSpec> {
    match &stack.stack {
        Some(name) => Ok(spec.in_stack(name)?),
        None => Ok(spec),
    }
}

fn options(no_auto_promote: bool) -> Result<Options> {
    let state_dir = match std::env::var_os("IMGCTL_STATE_DIR").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => imgctl::dirs::env_or_home("XDG_STATE_HOME", ".local/state")
            .ok_or("cannot find a state directory: set HOME or IMGCTL_STATE_DIR")?
            .join("imgctl/deploy"),
    };
    let docker_dir =
        DockerConfig::default_dir().ok_or("cannot find docker's config directory: set DOCKER_CONFIG or HOME")?;
    Ok(Options { state_dir, docker_dir, performer: imgctl::promote::audit::actor(), no_auto_promote, admission: None })
}

/// Prints each step on stderr as it ends, with the time since the run started.
struct Printer {
    started: Instant,
}

impl Printer {
    fn new() -> Self {
        Self { started: Instant::now() }
    }
}

impl Events for Printer {
    fn step(&mut self, step: &str, elapsed: Duration) {
        eprintln!(
            "[{:>7.2}s] {step:<28} {:>8.0} ms",
            self.started.elapsed().as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0
        );
    }

    fn note(&mut self, text: &str) {
        eprintln!("[{:>7.2}s]   {text}", self.started.elapsed().as_secs_f64());
    }
}

fn finish(report: Report, output: Output) -> Result<ExitCode> {
    let record = &report.record;
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Output::Text => {
            let what = match record.outcome {
                Outcome::Succeeded => format!(
                    "{} {}: {} is live on {}",
                    record.action,
                    record.service,
                    short(&record.digest),
                    record.color
                ),
                Outcome::Paused => format!("{} {}: paused", record.action, record.service),
                Outcome::Aborted => format!("{} {}: aborted", record.action, record.service),
                Outcome::Failed => format!("{} {} FAILED", record.action, record.service),
            };
            outln!("{what}")?;
            if report.needs_a_person {
                outln!("  NEEDS A PERSON: traffic is on a version that failed a check and could not be moved back")?;
            }
            if let Some(reason) = &record.reason {
                outln!("  {reason}")?;
            }
            match (&record.adopted, record.action.as_str()) {
                (Some(project), "adopt") => outln!(
                    "  the upstream file lists compose project {project}'s containers: point the proxy at it now (README: adopting a compose project)"
                )?,
                (Some(project), _) if record.outcome == Outcome::Succeeded => outln!(
                    "  took over compose project {project}: its containers are stopped and kept for imgctl rollback"
                )?,
                _ => {}
            }
            if let (Some(switch), Some(traffic)) = (report.switch_ms, report.time_to_traffic_ms) {
                outln!(
                    "  switch {switch} ms; traffic on the new color {traffic} ms after the start, health gates excluded"
                )?;
            }
            for drain in &report.drains {
                outln!("  {drain}")?;
            }
            outln!("  run {} (imgctl history {} shows every run)", record.id, record.service)?;
        }
    }
    Ok(if record.outcome == Outcome::Failed { ExitCode::from(exit::FAILED) } else { ExitCode::SUCCESS })
}

fn print_status(status: &status::Status, output: Output) -> Result<ExitCode> {
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(status)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{}: {} ({})",
        status.service,
        match (&status.live, &status.live_digest) {
            (Some(color), Some(digest)) => format!("{color} live, {}", short(digest)),
            _ => "no live version".into(),
        },
        status.phase
    )?;
    if let Some(holder) = &status.lock {
        outln!("  locked: {holder}")?;
    }
    for r in &status.replicas {
        let replica = &r.replica;
        let name = match replica.source {
            Source::Compose => format!("{} (compose)", replica.name),
            Source::Imgctl => replica.name.clone(),
        };
        outln!(
            "  {:<16} {:<6} {:<12} {:<8} {:<9} {:<22} {}",
            name,
            replica.color.as_str(),
            short(&replica.digest),
            format!("{:?}", replica.state).to_lowercase(),
            format!("{:?}", replica.health).to_lowercase(),
            replica.addr.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
            match (r.weight, r.stale) {
                (Some(_), true) => "STALE in traffic: imgctl deploy SERVICE --repair".to_owned(),
                (Some(w), false) => format!("in traffic, weight {w}"),
                (None, _) => "no traffic".into(),
            }
        )?;
    }
    for swarm in &status.services {
        let service = &swarm.service;
        outln!(
            "  swarm service {} x{} {}{}",
            service.name,
            service.replicas,
            service.image.rsplit_once('@').map(|(_, digest)| short(digest)).unwrap_or(&service.image),
            service.update.as_ref().map(|u| format!(", update {}: {}", u.state, u.message)).unwrap_or_default()
        )?;
        for task in &swarm.tasks {
            outln!(
                "    slot {:<3} {:<10} node {:<12} {:<19} {}",
                task.slot,
                task.state,
                &task.node[..task.node.len().min(12)],
                task.image.rsplit_once('@').map(|(_, digest)| short(digest)).unwrap_or(&task.image),
                task.message
            )?;
        }
    }
    for record in &status.recent {
        outln!(
            "  {} {} {} {} by {}",
            record.started,
            record.action,
            short(&record.digest),
            format!("{:?}", record.outcome).to_lowercase(),
            record.performer
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `sha256:` and the first 12 hex digits.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}
