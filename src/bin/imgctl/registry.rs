//! The registry client of every command that talks to registries: docker's config directory
//! for credentials, `--insecure-registry`, and the lowest throughput from the environment.

use std::error::Error;

use imgctl::docker_config::DockerConfig;
use imgctl::registry::{ClientOptions, RegistryClient, Throughput};

use crate::cli::RegistryArgs;

/// A client as the command line and the environment configure it.
pub fn client(args: &RegistryArgs) -> Result<RegistryClient, Box<dyn Error>> {
    client_withholding(args, Vec::new())
}

/// [`client`], whose credential helpers are not given the variables `withheld` (the one a
/// key's passphrase came from).
pub fn client_withholding(args: &RegistryArgs, withheld: Vec<String>) -> Result<RegistryClient, Box<dyn Error>> {
    let docker_dir =
        DockerConfig::default_dir().ok_or("cannot find docker's config directory: set DOCKER_CONFIG or HOME")?;
    let mut options = ClientOptions::new(docker_dir);
    options.insecure_registries = args.insecure.clone();
    options.min_throughput = Throughput::from_env()?;
    options.withheld_env = withheld;
    Ok(RegistryClient::new(options)?)
}
