//! `imgctl`: parse the command line, run one library call, print, exit.

mod cli;
mod creds;
mod deploy;
mod images;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Creds(command) => creds::run(command, cli.output),
        command
        @ (Command::Deploy(_) | Command::Rollback { .. } | Command::Status { .. } | Command::History { .. }) => {
            deploy::run(command, cli.output)
        }
        command => images::run(command, cli.output),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            report(&*error);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error and its causes on stderr, one per line.
#[allow(clippy::print_stderr)]
fn report(error: &(dyn std::error::Error + 'static)) {
    eprintln!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
}
