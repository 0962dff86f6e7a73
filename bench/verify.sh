#!/usr/bin/env bash
# What the signature gate adds to `imgctl promote`: the same promotion, side by side in one
# hyperfine run, with a policy that requires a cosign signature (classic layout, then bundle
# layout) and with one that accepts anything (what /etc/containers/policy.json says on Debian,
# so the gate reads no signature), against a throwaway docker-registry on loopback. Also
# `imgctl verify` alone, and a promote that signs at the destination (`--sign-key`, a key from
# `imgctl keygen`): after the warm-up the destination holds that key's signature of that digest,
# so each run decrypts the key (scrypt, N=65536) and finds the signature there, writing nothing.
#
# Each promote copies to the same destination tag, so after the warm-up the copy itself is HEADs
# only and the difference is the gate: one manifest GET for the .sig tag, one referrers/fallback
# lookup, the payload blobs, and the ECDSA checks.
#
# Target: the gate adds under 50 ms (median) to a promote.
#
# Environment:
#   RUNS=30           timed runs per command
#   LAYER_MB=4        the image's layer size
#   IMGCTL=PATH       imgctl binary (default: target/release/imgctl, built with cargo if missing)
#   BENCH_OUT=/tmp    directory for verify.json (hyperfine's export)
#   BENCH_ENFORCE=1   exit 1 when the target is missed (default: report only)
set -euo pipefail
export LC_ALL=C

RUNS=${RUNS:-30}
LAYER_MB=${LAYER_MB:-4}
BENCH_OUT=${BENCH_OUT:-/tmp}
BENCH_ENFORCE=${BENCH_ENFORCE:-0}
TARGET_MS=50

die() { echo "verify: $*" >&2; exit 1; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $LAYER_MB =~ ^[1-9][0-9]*$ ]] || die "LAYER_MB must be a positive integer"
for tool in hyperfine docker-registry python3 curl; do
  command -v "$tool" >/dev/null || die "needs $tool (apt-get install hyperfine docker-registry python3-cryptography curl)"
done
python3 -c 'import cryptography' 2>/dev/null || die "needs python3-cryptography (the test signer)"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n ${IMGCTL:-} ]]; then
  imgctl=$(realpath -m "$IMGCTL")
else
  imgctl=$repo/target/release/imgctl
  [[ -x $imgctl ]] || (cd "$repo" && cargo build --release --bin imgctl)
fi
signer=$repo/tests/it/common/cosign_signer.py

work=$(mktemp -d /tmp/imgctl-bench-verify.XXXXXX)
registry_pid=
cleanup() {
  # The registry ends by the TERM sent here; its status is not the benchmark's (set -e).
  if [[ -n $registry_pid ]] && kill "$registry_pid" 2>/dev/null; then
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
cat >"$work/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/data}}
http: {addr: $addr}
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fsS "http://$addr/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

export HOME=$work/home DOCKER_CONFIG=$work/home/.docker SIGNER_PASSWORD=unused
mkdir -p "$DOCKER_CONFIG" && echo '{}' >"$DOCKER_CONFIG/config.json"
sign() { python3 "$signer" --registry "$addr" --user anonymous "$@"; }

# An image with one LAYER_MB layer, pushed with imgctl from an OCI layout built here.
layout=$work/layout
mkdir -p "$layout/blobs/sha256"
head -c $((LAYER_MB * 1024 * 1024)) /dev/urandom >"$work/layer"
python3 - "$layout" "$work/layer" <<'EOF'
import hashlib, json, os, sys
layout, layer = sys.argv[1], open(sys.argv[2], "rb").read()
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(layout, "blobs/sha256", d), "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
l = blob(layer)
c = blob(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [l["digest"]]}}).encode())
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **c},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **l}]}).encode()
md = blob(m)
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(layout, "oci-layout"), "w"))
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **md,
           "annotations": {"org.opencontainers.image.ref.name": "1"}}]}, open(os.path.join(layout, "index.json"), "w"))
EOF
for name in classic bundle; do
  "$imgctl" push "$layout" "$addr/staging/$name:1" >/dev/null
done
digest=$("$imgctl" resolve "$addr/staging/classic:1")
sign keygen "$work/team" >/dev/null
export IMGCTL_BENCH_PASS=bench-passphrase
"$imgctl" keygen --output-key-prefix "$work/ours" --passphrase-env IMGCTL_BENCH_PASS >/dev/null
sign classic staging/classic "$digest" --key "$work/team.key" >/dev/null
sign bundle staging/bundle "$digest" --key "$work/team.key" >/dev/null

echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$work/accept.json"
cat >"$work/signed.json" <<EOF
{"default": [{"type": "sigstoreSigned", "keyPath": "$work/team.pub", "signedIdentity": {"type": "matchRepository"}}]}
EOF
promote() { echo "$imgctl promote $addr/staging/$1:1 $addr/prod/$1:1 --audit-log $work/audit.jsonl --policy $work/$2.json"; }

hyperfine --style basic --warmup 3 --runs "$RUNS" --export-json "$BENCH_OUT/verify.json" \
  -n "promote, policy accepts anything" "$(promote classic accept)" \
  -n "promote, classic signature required" "$(promote classic signed)" \
  -n "promote, bundle signature required" "$(promote bundle signed)" \
  -n "verify alone (classic)" "$imgctl verify $addr/staging/classic:1 --policy $work/signed.json" \
  -n "promote, signed at the destination" \
  "$imgctl promote $addr/staging/classic:1 $addr/prod/signed:1 --audit-log $work/audit.jsonl --policy $work/accept.json --sign-key $work/ours.key --passphrase-env IMGCTL_BENCH_PASS"

python3 - "$BENCH_OUT/verify.json" "$TARGET_MS" "$BENCH_ENFORCE" <<'EOF'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
target, enforce = float(sys.argv[2]), sys.argv[3] == "1"
base = results["promote, policy accepts anything"]["median"] * 1000
print(f"\n{'command':40} {'median ms':>10} {'added ms':>9}")
missed = False
for name, r in results.items():
    median = r["median"] * 1000
    added = median - base if name.startswith("promote") else float("nan")
    print(f"{name:40} {median:10.1f} {added:9.1f}")
    if name.startswith("promote,") and "required" in name and added >= target:
        missed = True
print(f"target: the gate adds under {target:.0f} ms -> {'MISSED' if missed else 'met'}")
sys.exit(1 if missed and enforce else 0)
EOF
