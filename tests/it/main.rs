//! The integration tests: one binary, so the harness in `common/` compiles once. Each module
//! runs the real binaries against real peers that its tests start and stop themselves.

mod ci_examples;
mod cli_snapshots;
mod common;
mod compose_reference;
mod concurrency;
mod deploy;
mod deploy_cli;
mod deploy_haproxy;
mod deploy_peers;
mod deploy_seams;
mod deploy_swarm;
mod docker_cli;
mod docker_engine;
mod dockerpy;
mod drain;
mod haproxy_load;
mod helper_protocol;
mod hostile_registry;
mod imgctl_creds;
mod installer;
mod migrate_pass;
mod nginx_switch;
mod promote;
mod registry_credentials;
mod runtime_keys;
mod sample_hooks;
mod secret_service;
mod shared_host;
mod signature_gates;
mod signatures;
mod stable_addresses;
mod stacks;
mod swarm_peers;
mod switch_haproxy;
mod token_registry;
