//! The command line of `imgctl`, as clap derive structs (no I/O here).

use clap::{Args, Parser, Subcommand, ValueEnum};

mod creds;
mod signing;

pub use creds::{Creds, Login, MigrateSource};
pub use signing::{PassphraseArgs, PromoteSigning, Sign, SignLayout};

/// imgctl keeps registry credentials safe, promotes images by digest and deploys them.
///
/// Credentials: `docker-credential-imgctl` is the docker credential helper docker runs for
/// `"credsStore": "imgctl"`; `imgctl creds` manages the same store for people.
#[derive(Debug, Parser)]
#[command(name = "imgctl", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Output format: text for people, json for CI.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Lines for people.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage registry credentials (the store docker-credential-imgctl serves).
    #[command(subcommand)]
    Creds(Creds),

    /// Print the digest an image reference resolves to (a tag is read once).
    ///
    ///   imgctl resolve harbor.example.com/staging/app:1.4
    Resolve {
        /// The image reference.
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },

    /// Show an image's manifest: digest, media type, size, and its platforms or blobs.
    Inspect {
        /// The image reference.
        reference: String,
        /// Print the manifest bytes exactly as served.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },

    /// Point tags at a digest in its own repository (no blob moves).
    ///
    ///   imgctl tag registry.example.com/app@sha256:... 1.4 stable
    Tag {
        /// The image, pinned by digest.
        reference: String,
        /// The tags to write.
        #[arg(required = true)]
        tags: Vec<String>,
        /// Move a tag that points at another digest.
        #[arg(long)]
        allow_tag_move: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },

    /// Write an image (every platform) into an OCI image layout directory, as skopeo's
    /// `oci:DIR:NAME` reads it.
    ///
    ///   imgctl pull registry.example.com/app:1.4 ./app-layout
    Pull {
        /// The image.
        reference: String,
        /// The layout directory (created when missing; existing blobs are kept).
        dir: std::path::PathBuf,
        /// The name to give the image in index.json (default: the reference's tag).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },

    /// Push an image from an OCI image layout directory (a CI build's output) to a registry,
    /// byte for byte.
    ///
    ///   imgctl push ./build/oci registry.example.com/staging/app:build-42
    Push {
        /// The layout directory.
        dir: std::path::PathBuf,
        /// The destination; a tag there is written under the tag-move guard.
        reference: String,
        /// The image's name in index.json (needed when the layout holds several).
        #[arg(long)]
        name: Option<String>,
        /// Move a tag that points at another digest.
        #[arg(long)]
        allow_tag_move: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },

    /// Copy an image by digest to another repository (another registry or the same one),
    /// byte for byte, every platform, and tag it there. Records each promotion in the audit
    /// log.
    ///
    ///   imgctl promote harbor.example.com/staging/app:1.4 registry.example.com/prod/app:1.4
    ///   imgctl promote staging/app@sha256:... prod/app --tag 1.4 --tag stable --dry-run
    #[command(verbatim_doc_comment)]
    Promote(Promote),

    /// Check an image's cosign signatures against the signature policy (containers-policy.json).
    ///
    /// Exit 0 only when the policy accepts it, naming the signature and the key; exit 1 when it
    /// refuses, saying why (no signature, wrong key, signature for another digest, tampered
    /// payload). A tag is resolved once and that digest is verified. Keys only, offline: no
    /// Rekor entry, no Fulcio certificate.
    ///
    ///   imgctl verify registry.example.com/prod/app:1.4 --policy policy.json
    ///   imgctl verify registry.example.com/prod/app@sha256:... -o json
    #[command(verbatim_doc_comment)]
    Verify {
        /// The image.
        reference: String,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        registry: RegistryArgs,
    },

    /// Make a cosign key pair: PREFIX.key (encrypted with a passphrase, 0600) and PREFIX.pub,
    /// exactly as `cosign generate-key-pair` writes them. Never overwrites a file.
    ///
    /// The passphrase comes from stdin (--passphrase-stdin), from the environment variable
    /// --passphrase-env names, or else from COSIGN_PASSWORD; never from the command line.
    ///
    ///   printf %s "$PASSPHRASE" | imgctl keygen --passphrase-stdin
    ///   COSIGN_PASSWORD=... imgctl keygen --output-key-prefix team
    #[command(verbatim_doc_comment)]
    Keygen {
        /// Write PREFIX.key and PREFIX.pub.
        #[arg(long, value_name = "PREFIX", default_value = "cosign")]
        output_key_prefix: std::path::PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },

    /// Sign an image's digest with a cosign key, as `cosign sign --key` does: the classic
    /// layout (the sha256-<hex>.sig tag; a signature is added to those there) or a sigstore
    /// bundle attached as a referrer. A tag is resolved once and that digest is signed.
    /// Offline: no Rekor entry.
    ///
    ///   imgctl sign registry.example.com/prod/app:1.4 --key cosign.key --passphrase-env COSIGN_PASSWORD
    ///   imgctl sign registry.example.com/prod/app@sha256:... --key cosign.key --layout bundle
    #[command(verbatim_doc_comment)]
    Sign(Sign),

    /// Deploy an image pinned by digest: blue/green (default), canary or rolling, behind
    /// nginx on this Docker Engine or on Docker Swarm, as the compose file's x-imgctl says.
    ///
    /// The new color starts beside the live one, must pass its health gate, then nginx is
    /// switched (upstream file written atomically, nginx -t, reload) and checked. A failure
    /// before the switch leaves traffic where it was; a failed check after it moves traffic
    /// back. The old color stays warm (keep_warm) so `imgctl rollback` is instant. On swarm
    /// with strategy rolling, swarm replaces the tasks and imgctl follows it to the end.
    ///
    ///   imgctl deploy web --digest sha256:4f1e...       # in the compose image's repository
    ///   imgctl deploy web --image registry.example.com/web@sha256:4f1e... --dry-run
    ///   imgctl deploy web --image registry.example.com/web:1.4 --resolve
    ///   imgctl deploy web --continue                     # next canary step, or the held switch
    ///   imgctl deploy web --abort                        # all traffic back on the stable color
    ///   imgctl deploy web --repair                       # after a reboot or docker restart
    ///   TAG=1.4 imgctl deploy web -f compose.yaml -f prod.yaml --digest sha256:4f1e...
    #[command(verbatim_doc_comment)]
    Deploy(Deploy),

    /// Print a service as imgctl will deploy it, resolved as compose resolves it.
    ///
    /// Like `docker compose config`, for one service: the compose files merged in order,
    /// ${VAR} interpolated (the environment wins over --env-file, or else over the project's
    /// .env), extends and env_file applied, and the x-imgctl settings with their defaults. A
    /// key imgctl would refuse at deploy time is refused here (exit 2); keys accepted without
    /// effect and unset variables are noted on stderr.
    ///
    ///   imgctl config web
    ///   TAG=1.4 imgctl config web -f compose.yaml -f prod.yaml --env-file prod.env
    ///   imgctl config web -o json | jq .environment
    #[command(verbatim_doc_comment)]
    Config {
        /// The compose service.
        service: String,
        #[command(flatten)]
        compose: ComposeArgs,
        #[command(flatten)]
        stack: StackArgs,
    },

    /// Put the previous version back: the idle color (warm or stopped) takes the traffic
    /// again, or the previous digest from the history is deployed. Aborts a paused deploy.
    ///
    /// Under a signature policy (as for deploy), the digest it would start must be accepted
    /// first, even one deployed before the policy existed: nothing starts otherwise.
    ///
    ///   imgctl rollback web
    Rollback {
        /// The compose service.
        service: String,
        /// Roll back to this digest instead of the previous one.
        #[arg(long, value_name = "sha256:...")]
        to: Option<String>,
        #[command(flatten)]
        compose: ComposeArgs,
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        registry: RegistryArgs,
    },

    /// Show a service's colors, digests, health, traffic weights, lock and last deploys.
    Status {
        /// The compose service.
        service: String,
        #[command(flatten)]
        compose: ComposeArgs,
        #[command(flatten)]
        stack: StackArgs,
    },

    /// Show who deployed what, when, and how it ended.
    History {
        /// The compose service.
        service: String,
        /// Show only the last N runs.
        #[arg(long, short = 'n')]
        limit: Option<usize>,
        #[command(flatten)]
        compose: ComposeArgs,
        #[command(flatten)]
        stack: StackArgs,
    },
}

/// Where the service is defined, read as compose reads it.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// A compose file; repeat to merge overrides over it, in order, as compose does (default:
    /// COMPOSE_FILE, split on ':' or COMPOSE_PATH_SEPARATOR; else compose.yaml, compose.yml,
    /// docker-compose.yaml or docker-compose.yml here, with its override file).
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
    /// Variables for ${VAR} in the compose files, replacing the project's .env (repeatable;
    /// later files win). Variables of the environment win over both.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<std::path::PathBuf>,
    /// The compose project's name, whose running containers of the service a first deploy
    /// takes over (default: COMPOSE_PROJECT_NAME, else the files' top-level name:, else the
    /// project folder's name, as compose derives it).
    #[arg(long = "project-name", short = 'p', value_name = "NAME")]
    pub project_name: Option<String>,
}

/// `imgctl deploy`
#[derive(Debug, Args)]
pub struct Deploy {
    /// The compose service.
    pub service: String,
    /// The digest to deploy, in the repository of the compose service's image.
    #[arg(long, value_name = "sha256:...", conflicts_with = "image")]
    pub digest: Option<String>,
    /// The image to deploy: repo@sha256:... (a tag needs --resolve).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Resolve a tag to its digest once, and deploy (and record) that digest.
    #[arg(long)]
    pub resolve: bool,
    /// Resume a paused deploy: the next canary step, the held switch, the rest of a rolling
    /// update.
    #[arg(long = "continue", conflicts_with_all = ["digest", "image", "abort", "repair"])]
    pub resume: bool,
    /// Drop a paused deploy: all traffic back on the stable color, the new color removed.
    #[arg(long, conflicts_with_all = ["digest", "image", "repair"])]
    pub abort: bool,
    /// After a reboot, `docker restart` or a crash: start the replicas the proxy points at
    /// and point it at the addresses they have now (a restarted container gets a new port).
    #[arg(long, conflicts_with_all = ["digest", "image"])]
    pub repair: bool,
    /// Stop before the switch, with the new color healthy and idle, for a manual judgement;
    /// `--continue` switches.
    #[arg(long)]
    pub no_auto_promote: bool,
    /// Point the proxy at the containers `docker-compose up -d` runs for the service, as its
    /// live color, and stop there: nothing is started or stopped. Then move the proxy's
    /// configuration to imgctl's upstream; the next deploy switches away from them.
    #[arg(long, conflicts_with_all = ["digest", "image", "resume", "abort", "repair", "no_auto_promote"])]
    pub adopt: bool,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub compose: ComposeArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Which signatures an image needs.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// The signature policy (containers-policy.json). Default: x-imgctl.verify for deploys,
    /// else ~/.config/containers/policy.json, else /etc/containers/policy.json; with none of
    /// them, no signature is required.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<std::path::PathBuf>,
    /// Look for classic signatures (sha256-<hex>.sig) in this repository instead of the
    /// image's (cosign's COSIGN_REPOSITORY).
    #[arg(long, value_name = "REPO")]
    pub signature_repository: Option<String>,
}

/// A stack the service belongs to.
#[derive(Debug, Args)]
pub struct StackArgs {
    /// The stack `docker stack deploy` made: the swarm service STACK_SERVICE is updated in
    /// place, its image pinned by digest, the rest of its spec kept (as x-imgctl.stack).
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
}

/// Options for talking to registries.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// A registry to reach over plain HTTP (loopback registries always are). Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
}

/// `imgctl promote`
#[derive(Debug, Args)]
pub struct Promote {
    /// The image to promote (a tag is resolved once; the digest is what is copied).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub source: Option<String>,
    /// The destination repository; a tag here is one more tag to write.
    #[arg(required_unless_present = "file")]
    pub destination: Option<String>,
    /// A promotion manifest in the Kubernetes image promoter's format (registries with one
    /// `src: true`; images with a dmap of digest to tags). Every edge is promoted; a failure
    /// of one is reported and the others still run.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    /// A tag to write at the destination. Repeatable. Default: the destination's tag, else
    /// the source's tag.
    #[arg(long = "tag", short = 't')]
    pub tags: Vec<String>,
    /// Move a destination tag that points at another digest (refused by default).
    #[arg(long)]
    pub allow_tag_move: bool,
    /// Show the plan; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also copy the signatures, SBOMs and attestations that refer to the digest (referrers
    /// API, else the sha256-<hex> fallback tag).
    #[arg(long)]
    pub referrers: bool,
    /// The audit log (JSON lines). Default: $IMGCTL_AUDIT_LOG, else
    /// $XDG_STATE_HOME/imgctl/promotions.jsonl (~/.local/state/...).
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<std::path::PathBuf>,
    /// Blob transfers at once.
    #[arg(long, default_value_t = 6)]
    pub concurrency: usize,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub signing: PromoteSigning,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
