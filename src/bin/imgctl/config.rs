//! `imgctl config SERVICE`: the service as imgctl will deploy it, as YAML for people (the
//! shape `docker compose config` prints) or JSON for CI.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::process::ExitCode;

use crate::cli::{ComposeArgs, Output, StackArgs};

pub fn run(
    service: &str,
    compose: &ComposeArgs,
    stack: &StackArgs,
    output: Output,
) -> Result<ExitCode, Box<dyn Error>> {
    let spec = crate::deploy::load(compose, service, stack)?;
    let mut view = imgctl::deploy::spec::view(&spec);
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&view)?)?,
        Output::Text => {
            // The notes are on stderr already.
            if let Some(map) = view.as_object_mut() {
                map.remove("notes");
            }
            let text = serde_norway::to_string(&view)?;
            outln!("{}", text.trim_end())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
