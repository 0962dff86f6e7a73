#!/usr/bin/env bash
# The whole test suite: installs the peers (tests/setup.sh), then runs unit tests and the
# integration tests, which start and stop their own registries and helpers on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tests/setup.sh
cargo test --locked --all-targets -- --include-ignored
