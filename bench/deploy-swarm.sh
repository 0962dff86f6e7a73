#!/usr/bin/env bash
# Swarm updates side by side: `imgctl deploy` with `x-imgctl.target: swarm` (rolling, and
# blue/green through nginx) against `docker service update --image REPO@DIGEST` with the same
# update_config, in one run, on a loopback-only single-node swarm, behind nginx in a container
# on the swarm's overlay network, under the same wrk load.
#
# The benchmark is the Rust bench target `deploy` (bench/deploy/, on the tests' harness in
# tests/it/common); this script installs the peers, builds it, waits for running test runs to
# end, and runs its Swarm suite. bench/README.md describes the cases, the knobs and the output.
#
# Environment: SETTLE, KEEPALIVE, WRK_THREADS, WRK_CONNECTIONS, HEALTH_TIMEOUT, WAIT_MAX_S,
# BENCH_OUT, BENCH_LOGS, BENCH_ENFORCE (see bench/README.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WAIT_MAX_S=${WAIT_MAX_S:-600}
[[ $WAIT_MAX_S =~ ^[0-9]+$ ]] || { echo "deploy-swarm: WAIT_MAX_S must be a number of seconds, not '$WAIT_MAX_S'" >&2; exit 2; }
bash tests/setup.sh
cargo bench --locked --bench deploy --no-run

# Test runs share this engine's swarm (safely: tests/it/common/swarm.rs's lock files, which the
# benchmark honours too) and take the CPU this measures with: wait for them to end first.
test_pattern='cargo test|/deps/it-[0-9a-f]+( |$)'
if ((WAIT_MAX_S > 0)); then
  waited=0
  while pgrep -f -- "$test_pattern" >/dev/null; do
    ((waited > 0)) || echo "deploy-swarm: waiting for cargo test / swarm tests to end (up to ${WAIT_MAX_S} s)..." >&2
    if ((waited >= WAIT_MAX_S)); then
      echo "deploy-swarm: tests still running after ${WAIT_MAX_S} s: $(pgrep -af -- "$test_pattern" | head -n 3)" >&2
      exit 1
    fi
    sleep 5
    waited=$((waited + 5))
  done
fi

# From here Ctrl-C is the benchmark's (see bench/deploy.sh).
trap '' INT
exec cargo bench --locked --bench deploy -- --bench swarm "$@"
