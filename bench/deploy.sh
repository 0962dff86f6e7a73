#!/usr/bin/env bash
# Failed requests during deploys on one Docker Engine: `imgctl deploy` behind nginx (file and
# reload) and behind haproxy (runtime API), side by side in one run with the two procedures
# people script by hand (recreate on the same port; a hand-run nginx switch), under the same
# wrk load with `Connection: close` and with keep-alive clients.
#
# The benchmark is the Rust bench target `deploy` (bench/deploy/, on the tests' harness in
# tests/it/common); this script installs the peers, builds it and runs its Engine suite.
# bench/README.md describes the cases, the knobs and the output.
#
# Environment: SETTLE, KEEPALIVE, WRK_THREADS, WRK_CONNECTIONS, PROXIES, BENCH_OUT, BENCH_LOGS,
# BENCH_ENFORCE (see bench/README.md). Arguments go to the benchmark (none are needed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tests/setup.sh
# Built first, where Ctrl-C stops the build as usual.
cargo bench --locked --bench deploy --no-run
# From here Ctrl-C is the benchmark's: it removes every container, image, peer and directory
# it started (and leaves the swarm as it found it), then exits 130. cargo ignores it, so it
# stays to report the benchmark's exit status.
trap '' INT
exec cargo bench --locked --bench deploy -- --bench deploy "$@"
