//! `docker-credential-imgctl`: the docker credential helper. Docker runs it with one action
//! argument whenever config.json says `"credsStore": "imgctl"`; stdout is the protocol.

use std::io::{self, Write};
use std::process::ExitCode;

use imgctl::credential::helper::{self, Action};
use imgctl::credential::{self, backend};

const NAME: &str = "docker-credential-imgctl";
const USAGE: &str = "Usage: docker-credential-imgctl <store|get|erase|list|version>";

fn main() -> ExitCode {
    // First, before anything holds a secret: no core dump, no reading by other processes.
    if let Err(e) = credential::keep_memory_private() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{NAME}: cannot keep this process out of core dumps: {e}");
        }
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arg] = args.as_slice() else {
        return answer(USAGE, ExitCode::FAILURE);
    };
    if arg == "--help" || arg == "-h" {
        return answer(USAGE, ExitCode::SUCCESS);
    }
    let Some(action) = Action::parse(arg) else {
        return answer(&format!("{NAME}: unknown action: {arg}"), ExitCode::FAILURE);
    };
    let selection = match backend::open_from_env() {
        Ok(selection) => selection,
        Err(e) => return answer(&e.to_string(), ExitCode::FAILURE),
    };
    if let Some(why) = &selection.fallback {
        // stderr reaches the user's terminal through docker; stdout is the protocol.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{NAME}: backend auto: using the age-encrypted file because {why}");
        }
    }
    let version = format!("{NAME} (imgctl) {}", env!("CARGO_PKG_VERSION"));
    match helper::serve(action, io::stdin().lock(), io::stdout().lock(), &selection.store, &version) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => answer(&e.to_string(), ExitCode::FAILURE),
    }
}

/// The protocol's answer: one line on stdout (docker shows it to the user on failure).
fn answer(line: &str, code: ExitCode) -> ExitCode {
    let mut stdout = io::stdout().lock();
    // Nothing more can be said when stdout is gone.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    code
}
