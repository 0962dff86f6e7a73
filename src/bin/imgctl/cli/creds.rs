//! The arguments of `imgctl creds`.

use clap::{Args, Subcommand, ValueEnum};

/// `imgctl creds ...`
#[derive(Debug, Subcommand)]
pub enum Creds {
    /// List stored registries and usernames (never secrets).
    #[command(visible_alias = "list")]
    Ls,

    /// Remove the credentials of one or more registries (any spelling: host:5000,
    /// https://host:5000/ ...). Removing what is not there is not an error.
    #[command(visible_alias = "erase")]
    Rm {
        /// Registries to forget.
        #[arg(required = true, value_name = "SERVER")]
        servers: Vec<String>,
    },

    /// Store a credential, reading the password or token from stdin.
    ///
    /// Like `docker login --password-stdin`: one trailing newline is dropped. The password is
    /// never taken from the command line, where other users could read it.
    ///
    ///   printf %s "$TOKEN" | imgctl creds login ghcr.io -u alice
    Login(Login),

    /// Create the store's identity (the first login does this too).
    Init {
        /// Protect the identity with a passphrase read from stdin. Every helper call then
        /// needs IMGCTL_PASSPHRASE in its environment and costs an scrypt run (~0.1 s).
        #[arg(long)]
        passphrase_stdin: bool,
    },

    /// Show which credential docker (and imgctl promote) would send to a registry, and where
    /// it comes from: DOCKER_AUTH_CONFIG, credHelpers, credsStore or plaintext auths. Never
    /// prints the secret.
    ///
    ///   imgctl creds which harbor.example.com
    Which {
        /// The registry, as in an image reference (docker.io, host:5000, ...).
        registry: String,
    },

    /// Check the store, docker's config.json and the helper, with a real
    /// store/get/erase round trip through docker-credential-imgctl. Exits 1 on any failure.
    Doctor,

    /// Move credentials kept elsewhere into the store. Sources are left intact unless
    /// --remove-source; running it again moves nothing twice.
    ///
    ///   imgctl creds migrate --from pass --dry-run
    ///   imgctl creds migrate --from secretservice --remove-source
    Migrate {
        /// Where the credentials are now.
        #[arg(long, value_enum)]
        from: MigrateSource,
        /// Show what would move; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Once everything is stored, remove the moved credentials from the source.
        #[arg(long)]
        remove_source: bool,
        /// Replace a different credential the store already holds for the same registry
        /// (without it such entries are skipped and reported).
        #[arg(long)]
        overwrite: bool,
    },

    /// Show or set the backend: age-file (default; an encrypted file, no daemon),
    /// secret-service (the OS keyring) or auto (the keyring when reachable and unlocked, else
    /// the file). IMGCTL_BACKEND overrides the setting.
    Backend {
        /// The backend to use from now on; without it, show the current one.
        #[arg(value_parser = ["age-file", "secret-service", "auto"])]
        choice: Option<String>,
    },

    /// Point docker at imgctl: move plaintext auths into the store, back config.json up,
    /// and set "credsStore": "imgctl" (keeping every other key).
    ConfigureDocker {
        /// Undo: put the previous credsStore back from the backup.
        #[arg(long)]
        restore: bool,
    },
}

/// `imgctl creds login`
#[derive(Debug, Args)]
pub struct Login {
    /// The registry (default: Docker Hub).
    #[arg(value_name = "SERVER", default_value = "docker.io")]
    pub server: String,
    /// The username (`<token>` for an identity token).
    #[arg(long, short = 'u')]
    pub username: String,
    /// Accepted for compatibility with `docker login`: the password always comes from stdin.
    #[arg(long, hide = true)]
    pub password_stdin: bool,
}

/// Sources `imgctl creds migrate` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MigrateSource {
    /// Plaintext `auths` in $DOCKER_CONFIG/config.json.
    Config,
    /// docker-credential-pass entries in $PASSWORD_STORE_DIR (default ~/.password-store),
    /// decrypted with gpg in batch mode.
    Pass,
    /// docker-credential-secretservice items in the OS keyring.
    Secretservice,
}
