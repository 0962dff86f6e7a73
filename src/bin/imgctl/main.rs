//! `imgctl`: parse the command line, run one library call, print, exit.

/// `println!` that hands the write's error back instead of panicking: when stdout is a pipe
/// the reader has closed (`imgctl history web | head -1`), the command stops printing and
/// `main` counts it a success, as `head` asked for no more.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod cli;
mod config;
mod creds;
mod deploy;
mod exit;
mod images;
mod progress;
mod registry;
mod sign;
mod verify;

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

#[allow(clippy::print_stderr)] // the one warning main gives before anything runs
fn main() -> ExitCode {
    // Every command may read or hold a secret (creds, and the registry credentials promote,
    // pull, push and deploy resolve): no core dump, no reading by other processes of the user.
    if let Err(e) = imgctl::credential::keep_memory_private() {
        eprintln!("warning: cannot keep this process out of core dumps: {e}");
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Creds(command) => creds::run(command, cli.output),
        Command::Config { service, compose, stack } => config::run(&service, &compose, &stack, cli.output),
        command
        @ (Command::Deploy(_) | Command::Rollback { .. } | Command::Status { .. } | Command::History { .. }) => {
            deploy::run(command, cli.output)
        }
        command => images::run(command, cli.output),
    };
    match result {
        Ok(code) => code,
        Err(error) if broken_pipe(&*error) => ExitCode::SUCCESS,
        Err(error) => {
            report(&*error);
            ExitCode::from(exit::code(&*error))
        }
    }
}

/// Whether `error`, or one of its causes, is a write to a closed pipe.
fn broken_pipe(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
            return true;
        }
        next = error.source();
    }
    false
}

/// Prints an error and its causes on stderr, one per line.
#[allow(clippy::print_stderr)]
fn report(error: &(dyn Error + 'static)) {
    eprintln!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    if let Some(output) = deploy::proxy_output(error) {
        eprintln!("  its output:");
        for line in output.lines() {
            eprintln!("    {line}");
        }
    }
}
