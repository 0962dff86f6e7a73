//! `imgctl creds ...`: each arm calls the library once and prints what it returned.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::io::IsTerminal;
use std::process::ExitCode;

use imgctl::credential::age_file::InitOutcome;
use imgctl::credential::backend::{self, AnyStore, BackendChoice};
use imgctl::credential::migrate::{self, MigrationReport};
use imgctl::credential::{Credential, RegistryKey, Secret, Store, read_to_end_wiped};
use imgctl::dirs::Dirs;
use imgctl::docker_config::DockerConfig;
use imgctl::{docker_setup, doctor};

use crate::cli::{Creds, Login, MigrateSource, Output};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The longest secret read from stdin: the bound the helper puts on a whole request.
const MAX_SECRET: usize = imgctl::credential::helper::MAX_INPUT;

pub fn run(command: Creds, output: Output) -> Result<ExitCode> {
    // Commands that fix the configuration must work when the store cannot be opened.
    match command {
        Creds::Backend { choice: Some(choice) } => return set_backend(&choice, output),
        Creds::ConfigureDocker { restore: true } => return restore_docker(output),
        Creds::Which { registry } => return which(&registry, output),
        _ => {}
    }
    let selection = backend::open_from_env()?;
    if let Some(why) = &selection.fallback {
        eprintln!("backend auto: using the age-encrypted file because {why}");
    }
    let store = &selection.store;
    match command {
        Creds::Ls => {
            let entries = store.list()?;
            match output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&entries)?)?,
                Output::Text if entries.is_empty() => eprintln!("no credentials stored ({})", store.describe()),
                Output::Text => {
                    let width = entries.iter().map(|e| e.server_url.len()).max().unwrap_or(0).max(6);
                    outln!("{:width$}  USERNAME", "SERVER")?;
                    for entry in entries {
                        outln!("{:width$}  {}", entry.server_url, entry.username)?;
                    }
                }
            }
        }
        Creds::Rm { servers } => {
            let mut removed = Vec::new();
            for server in &servers {
                if store.erase(server)? {
                    removed.push(server.as_str());
                } else if output == Output::Text {
                    eprintln!("{server}: nothing stored");
                }
            }
            match output {
                Output::Json => outln!("{}", serde_json::json!({ "removed": removed }))?,
                Output::Text => {
                    for server in &removed {
                        outln!("removed {server}")?;
                    }
                }
            }
        }
        Creds::Login(login) => {
            let credential = read_login(login)?;
            store.store(&credential)?;
            match output {
                Output::Json => outln!("{}", serde_json::json!({ "stored": credential.server_url }))?,
                Output::Text => outln!("stored {} for {}", credential.username, credential.server_url)?,
            }
        }
        Creds::Init { passphrase_stdin } => {
            let AnyStore::AgeFile(store) = store else {
                outln!("the {} backend needs no init ({})", store.backend(), store.describe())?;
                return Ok(ExitCode::SUCCESS);
            };
            let passphrase = passphrase_stdin.then(|| read_stdin_secret("the passphrase")).transpose()?;
            let outcome = store.init(passphrase.as_ref())?;
            let path = store.identity_path().display().to_string();
            match (output, outcome) {
                (Output::Json, _) => {
                    outln!("{}", serde_json::json!({ "identity": path, "created": outcome == InitOutcome::Created }))?
                }
                (Output::Text, InitOutcome::Created) => outln!("created identity {path}")?,
                (Output::Text, InitOutcome::Existed) => outln!("identity {path} already exists; left as it is")?,
            }
        }
        Creds::Doctor => {
            let report = doctor::run(&selection, &docker_dir()?, std::env::var_os("PATH").as_deref());
            match output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
                Output::Text => {
                    for check in &report.checks {
                        let mark = match check.status {
                            doctor::Status::Ok => "ok  ",
                            doctor::Status::Warn => "warn",
                            doctor::Status::Fail => "FAIL",
                        };
                        outln!("{mark}  {:<13} {}", check.name, check.detail)?;
                    }
                }
            }
            return Ok(if report.healthy() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        Creds::Migrate { from, dry_run, remove_source, overwrite } => {
            let options = migrate::Options { dry_run, remove_source, overwrite };
            let report = match from {
                MigrateSource::Config => {
                    let mut config = DockerConfig::load(&docker_dir()?)?;
                    let report = migrate::from_docker_config(&mut config, store, options)?;
                    if report.removed_from_source > 0 {
                        config.save()?;
                    }
                    report
                }
                MigrateSource::Pass => {
                    let dir = migrate::default_pass_dir()
                        .ok_or("cannot find the pass store: set PASSWORD_STORE_DIR or HOME")?;
                    migrate::from_pass(&dir, store, options)?
                }
                #[cfg(target_os = "linux")]
                MigrateSource::Secretservice => {
                    let source = imgctl::credential::secret_service::SecretServiceStore::new();
                    match migrate::from_secret_service(&source, store, options) {
                        Err(same @ migrate::MigrateError::SameStore) => {
                            outln!("{same}")?;
                            return Ok(ExitCode::SUCCESS);
                        }
                        other => other?,
                    }
                }
                #[cfg(not(target_os = "linux"))]
                MigrateSource::Secretservice => return Err("the Secret Service exists on Linux only".into()),
            };
            print_migration(&report, output)?;
            if report.has_unreadable() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Creds::ConfigureDocker { restore: false } => {
            let report = docker_setup::configure(&docker_dir()?, store)?;
            if let Some(stranded) = &report.stranded {
                warn_stranded(stranded);
            }
            match output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
                Output::Text => {
                    print_migration(&report.migration, output)?;
                    if let Some(backup) = &report.backup {
                        outln!("backed up {} to {}", report.config_path.display(), backup.display())?;
                    }
                    if report.changed {
                        outln!(
                            "{}: credsStore {} -> imgctl",
                            report.config_path.display(),
                            report.previous_creds_store.as_deref().unwrap_or("(unset)")
                        )?;
                    } else {
                        outln!("{}: credsStore is already imgctl", report.config_path.display())?;
                    }
                }
            }
        }
        Creds::Backend { choice: None } => match output {
            Output::Json => outln!(
                "{}",
                serde_json::json!({
                    "choice": selection.choice.to_string(),
                    "source": selection.source,
                    "serving": store.backend().to_string(),
                    "fallback": selection.fallback.as_ref().map(ToString::to_string),
                })
            )?,
            Output::Text => outln!("{} (chosen: {}; {})", store.backend(), selection.choice, store.describe())?,
        },
        Creds::Backend { choice: Some(_) } | Creds::ConfigureDocker { restore: true } | Creds::Which { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn which(registry: &str, output: Output) -> Result<ExitCode> {
    use imgctl::registry::credentials::{self, CredentialSource, RegistryCredential};
    let (credential, source) = credentials::resolve(&docker_dir()?, registry)?;
    let (kind, username) = match &credential {
        RegistryCredential::Anonymous => ("anonymous", None),
        RegistryCredential::Basic { username, .. } => ("basic", Some(username.as_str())),
        RegistryCredential::IdentityToken(_) => ("identity-token", None),
    };
    let from = match &source {
        CredentialSource::Environment => "DOCKER_AUTH_CONFIG".to_owned(),
        CredentialSource::CredHelper(helper) => format!("credHelpers: docker-credential-{helper}"),
        CredentialSource::CredsStore(helper) => format!("credsStore: docker-credential-{helper}"),
        CredentialSource::ConfigFile => "plaintext auths in config.json".to_owned(),
        CredentialSource::None => "nothing configured".to_owned(),
    };
    match output {
        Output::Json => outln!(
            "{}",
            serde_json::json!({
                "registry": registry,
                "server_url": credentials::server_url_for(registry),
                "kind": kind,
                "username": username,
                "source": source,
            })
        )?,
        Output::Text => {
            outln!("{registry}: {kind}{} (from {from})", username.map(|u| format!(" {u}")).unwrap_or_default())?
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn set_backend(choice: &str, output: Output) -> Result<ExitCode> {
    let choice: BackendChoice = choice.parse()?;
    let saved = backend::save_choice(&Dirs::from_env()?, choice)?;
    match output {
        Output::Json => outln!(
            "{}",
            serde_json::json!({
                "backend": saved.backend.to_string(),
                "chosen": choice.to_string(),
                "settings": saved.path,
                "fallback": saved.fallback.as_ref().map(ToString::to_string),
            })
        )?,
        Output::Text => {
            if let Some(why) = &saved.fallback {
                outln!("auto chose age-file because {why}")?;
            }
            outln!("backend set to {} in {}", saved.backend, saved.path.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn restore_docker(output: Output) -> Result<ExitCode> {
    let report = docker_setup::restore(&docker_dir()?)?;
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Output::Text => {
            outln!(
                "{}: credsStore restored to {}",
                report.config_path.display(),
                report.restored_creds_store.as_deref().unwrap_or("(unset)")
            )?;
            if !report.login_again.is_empty() {
                outln!(
                    "docker will ask for a login again for: {} (their credentials stay in imgctl's store; imgctl creds ls lists them)",
                    report.login_again.join(", ")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// On stderr whatever the output format: the logins docker will ask for again.
fn warn_stranded(stranded: &docker_setup::StrandedLogins) {
    let helper = &stranded.helper;
    let again = if stranded.login_again.is_empty() {
        "log in again (docker login REGISTRY) to each registry you used with it".to_owned()
    } else {
        format!("docker will ask for a login again for: {}", stranded.login_again.join(", "))
    };
    eprintln!(
        "warning: docker kept its logins in docker-credential-{helper}, which imgctl cannot move them from; they stay there, but docker no longer asks it: {again}. imgctl creds configure-docker --restore puts \"credsStore\": \"{helper}\" back."
    );
}

fn print_migration(report: &MigrationReport, output: Output) -> Result<()> {
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(report)?)?;
        return Ok(());
    }
    let verb = if report.dry_run { "would move" } else { "moved" };
    for server in &report.migrated {
        outln!("{verb} {server} from {} into the store", report.source)?;
    }
    for skipped in &report.skipped {
        eprintln!("skipped {} ({:?}): {}", skipped.server_url, skipped.kind, skipped.reason);
    }
    outln!(
        "{}: {} migrated, {} already in the store, {} skipped, {} removed from the source",
        report.source,
        report.migrated.len(),
        report.unchanged.len(),
        report.skipped.len(),
        report.removed_from_source
    )?;
    Ok(())
}

fn read_login(login: Login) -> Result<Credential> {
    let key = RegistryKey::parse(&login.server)?;
    let secret = read_stdin_secret("the password")?;
    // Stored under the spelling docker login uses: the host, or Docker Hub's v1 URL.
    Ok(Credential { server_url: key.to_string(), username: login.username, secret })
}

/// Reads a secret from stdin, dropping one trailing newline as `docker login --password-stdin`.
/// It is read into memory that is wiped, and moved, not copied, into the [`Secret`].
fn read_stdin_secret(what: &str) -> Result<Secret> {
    let stdin = std::io::stdin().lock();
    if stdin.is_terminal() {
        return Err(format!("pipe {what} on stdin, e.g. printf %s \"$TOKEN\" | imgctl creds ...").into());
    }
    let mut bytes = read_to_end_wiped(stdin, MAX_SECRET).map_err(|e| format!("reading {what} from stdin: {e}"))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    let secret = Secret::from_utf8(bytes).map_err(|_| format!("{what} read from stdin is not UTF-8 text"))?;
    if secret.is_empty() {
        return Err(format!("{what} read from stdin is empty").into());
    }
    Ok(secret)
}

fn docker_dir() -> Result<std::path::PathBuf> {
    DockerConfig::default_dir().ok_or_else(|| "cannot find docker's config directory: set DOCKER_CONFIG or HOME".into())
}
