//! `imgctl keygen`, `imgctl sign`, and the key `promote --sign-key` signs with.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use imgctl::credential::{Secret, read_to_end_wiped};
use imgctl::promote::signing::PromotionSigner;
use imgctl::reference::Reference;
use imgctl::verify::Layout;
use imgctl::verify::keyfile::{self, KeyFileError, SigningKey};
use imgctl::verify::sign::{self, SignOutcome, SignRequest, Signed};

use crate::cli::{Output, PassphraseArgs, PromoteSigning, Sign, SignLayout};
use crate::exit::Usage;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The variable cosign reads a key's passphrase from.
const COSIGN_PASSWORD: &str = "COSIGN_PASSWORD";
/// The longest passphrase read from stdin.
const MAX_PASSPHRASE: usize = 64 * 1024;

/// The passphrase: from stdin, from the variable `--passphrase-env` names, else from
/// COSIGN_PASSWORD. Never from argv, and never asked on a terminal.
pub fn passphrase(args: &PassphraseArgs) -> Result<Secret> {
    Ok(passphrases(args)?.given)
}

/// The passphrase as given, and, when stdin ended in a newline that was dropped, stdin as it
/// was: cosign keeps that newline (`echo "$P" | cosign generate-key-pair`), imgctl drops it, so
/// a key is tried with both.
struct Passphrases {
    given: Secret,
    raw: Option<Secret>,
}

fn passphrases(args: &PassphraseArgs) -> Result<Passphrases> {
    if args.passphrase_stdin {
        return read_stdin();
    }
    let name = args.passphrase_env.as_deref().unwrap_or(COSIGN_PASSWORD);
    match std::env::var(name) {
        Ok(value) => Ok(Passphrases { given: Secret::new(value), raw: None }),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Usage(format!("the passphrase in ${name} is not UTF-8 text")).into())
        }
        Err(std::env::VarError::NotPresent) if args.passphrase_env.is_some() => {
            Err(Usage(format!("--passphrase-env {name}: ${name} is not set")).into())
        }
        Err(std::env::VarError::NotPresent) => Err(Usage(
            "the key's passphrase: pipe it with --passphrase-stdin, name a variable with --passphrase-env VAR, or set \
             COSIGN_PASSWORD (imgctl never takes it from the command line, and does not prompt)"
                .into(),
        )
        .into()),
    }
}

/// The variables a credential helper must not be given: the one `--passphrase-env` names
/// (`COSIGN_PASSWORD` is withheld from every helper anyway).
pub fn withheld(args: &PassphraseArgs) -> Vec<String> {
    args.passphrase_env.iter().cloned().collect()
}

fn read_stdin() -> Result<Passphrases> {
    let stdin = std::io::stdin().lock();
    if stdin.is_terminal() {
        return Err(Usage(
            "--passphrase-stdin: pipe the passphrase, e.g. printf %s \"$PASSPHRASE\" | imgctl ...".into(),
        )
        .into());
    }
    let mut bytes =
        read_to_end_wiped(stdin, MAX_PASSPHRASE).map_err(|e| format!("reading the passphrase from stdin: {e}"))?;
    let not_text = || Usage("the passphrase read from stdin is not UTF-8 text".into());
    let mut raw = None;
    if bytes.last() == Some(&b'\n') {
        raw = Some(Secret::from_utf8(bytes.clone()).map_err(|_| not_text())?);
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    let given = Secret::from_utf8(bytes).map_err(|_| not_text())?;
    if given.is_empty() {
        return Err(Usage("the passphrase read from stdin is empty".into()).into());
    }
    Ok(Passphrases { given, raw })
}

/// The key at `path`, decrypted with the passphrase as given or else as stdin had it.
fn load_key(path: &Path, args: &PassphraseArgs) -> Result<SigningKey> {
    let passphrases = passphrases(args)?;
    match (SigningKey::load(path, &passphrases.given), &passphrases.raw) {
        (Err(KeyFileError::WrongPassphrase), Some(raw)) => Ok(SigningKey::load(path, raw)?),
        (loaded, _) => Ok(loaded?),
    }
}

/// `imgctl keygen`
pub fn keygen(prefix: &Path, args: &PassphraseArgs, output: Output) -> Result<ExitCode> {
    let passphrase = passphrase(args)?;
    let files = keyfile::generate_key_pair(prefix, &passphrase)?;
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&files)?)?,
        Output::Text => {
            outln!("private key written to {} (encrypted, 0600)", files.private_key.display())?;
            outln!("public key written to {} ({})", files.public_key.display(), files.fingerprint)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn layout(layout: SignLayout) -> Layout {
    match layout {
        SignLayout::Classic => Layout::Classic,
        SignLayout::Bundle => Layout::Bundle,
    }
}

/// The key `promote --sign-key` signs with, decrypted before any registry is read: a wrong
/// passphrase stops the run before a byte is copied.
pub fn promotion_signer(args: &PromoteSigning) -> Result<Option<PromotionSigner>> {
    let Some(path) = &args.sign_key else { return Ok(None) };
    let key = load_key(path, &args.passphrase)?;
    Ok(Some(PromotionSigner { key, layout: layout(args.sign_layout) }))
}

/// `imgctl sign IMAGE --key KEY`
pub async fn command(args: Sign, output: Output) -> Result<ExitCode> {
    let image: Reference = args.reference.parse()?;
    let layout = layout(args.layout);
    if layout == Layout::Bundle && args.signature_repository.is_some() {
        return Err(Usage(
            "--signature-repository is for the classic layout: a bundle is a referrer in the image's own repository"
                .into(),
        )
        .into());
    }
    let signature_repository = args.signature_repository.as_deref().map(str::parse::<Reference>).transpose()?;
    let key = load_key(&args.key, &args.passphrase)?;
    let client = crate::registry::client_withholding(&args.registry, withheld(&args.passphrase))?;
    // The tag is read once: that digest is what is signed.
    let digest = match image.digest() {
        Some(digest) => digest.clone(),
        None => client.get_manifest(&image).await?.digest,
    };
    let request =
        SignRequest { image: &image, digest: &digest, layout, signature_repository: signature_repository.as_ref() };
    let signed = sign::sign(&client, &key, request).await?;
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&signed)?)?,
        Output::Text => outln!("{}", describe(&signed))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One line saying what was signed, where, and with which key.
pub fn describe(signed: &Signed) -> String {
    let what = match signed.outcome {
        SignOutcome::Added => "signed",
        SignOutcome::AlreadySigned => "already signed by this key, nothing written:",
    };
    let count = signed.signatures.map(|n| format!(", {n} signature(s) there")).unwrap_or_default();
    format!(
        "{what} {}@{} ({} layout) at {}{count}, key {}",
        signed.image,
        signed.digest,
        signed.layout.as_str(),
        signed.signature,
        signed.key_fingerprint
    )
}
