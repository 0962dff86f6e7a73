#!/usr/bin/env bash
# The whole test suite: installs the peers (tests/setup.sh), checks formatting and lints, then
# runs unit tests and the integration tests, which start and stop their own peers (registries
# on 127.0.0.1, private D-Bus sessions with gnome-keyring).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tests/setup.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets -- --include-ignored
