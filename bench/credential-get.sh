#!/usr/bin/env bash
# Median `get` latency of docker-credential-imgctl (age-encrypted file store) side by side
# with Debian's docker-credential-pass and docker-credential-secretservice.
#
# Targets: imgctl median under 2 ms, and at least 5x faster than docker-credential-pass.
#
# Environment:
#   RUNS=300            timed runs per helper
#   WARMUP=10           untimed runs per helper before the timed ones
#   IMGCTL_HELPER=PATH  helper binary to time (default: target/release/docker-credential-imgctl,
#                       built with cargo if missing)
#   BENCH_OUT=/tmp      directory for credential-get.json
#   BENCH_ENFORCE=1     exit 1 when a target is missed (default: report only)
#
# Everything (gpg key, password store, keyring, age identity) lives in a throwaway HOME that
# is removed on exit; the user's own keys and stores are never touched.
set -euo pipefail
# EPOCHREALTIME uses the locale's decimal separator; the timing arithmetic needs a dot.
export LC_ALL=C

RUNS=${RUNS:-300}
WARMUP=${WARMUP:-10}
BENCH_OUT=${BENCH_OUT:-/tmp}
BENCH_ENFORCE=${BENCH_ENFORCE:-0}
SERVER_URL=https://registry.example.com
USERNAME=bench-user

die() { echo "credential-get: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a non-negative integer, not '$WARMUP'"
# The per-run clock needs bash >= 5 ($EPOCHREALTIME); fail rather than time garbage.
[[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 or newer is needed (no \$EPOCHREALTIME)"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- dependencies: install only what is missing ------------------------------------------
missing=()
have docker-credential-pass && have docker-credential-secretservice \
  || missing+=(golang-docker-credential-helpers)
have pass || missing+=(pass)
have gpg && have gpgconf || missing+=(gnupg)
have gnome-keyring-daemon || missing+=(gnome-keyring)
have dbus-run-session || missing+=(dbus-daemon)
# Any one of these can read the keyring's Locked property; dbus-send is the smallest install.
have busctl || have gdbus || have dbus-send || missing+=(dbus-bin)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

# --- the imgctl helper ----------------------------------------------------------------------
# Resolved (and built) before HOME moves: cargo and rustup live under the real HOME.
if [[ -n ${IMGCTL_HELPER:-} ]]; then
  imgctl_bin=$(realpath -m "$IMGCTL_HELPER")
else
  imgctl_bin=${CARGO_TARGET_DIR:-$repo/target}/release/docker-credential-imgctl
  if [[ ! -x $imgctl_bin ]]; then
    echo "building $imgctl_bin" >&2
    (cd "$repo" && cargo build --release --bin docker-credential-imgctl)
  fi
fi
[[ -x $imgctl_bin ]] || die "no executable imgctl helper at $imgctl_bin"
case $imgctl_bin in
  */debug/*) echo "credential-get: warning: $imgctl_bin is a debug build; its numbers mean little" >&2 ;;
esac

# --- throwaway HOME -------------------------------------------------------------------------
bench_home=$(mktemp -d "${TMPDIR:-/tmp}/imgctl-bench.XXXXXX")
cleanup() {
  # gpg-agent outlives gpg; the keyring daemon and dbus-daemon end with dbus-run-session.
  GNUPGHOME=$bench_home/.gnupg gpgconf --kill all >/dev/null 2>&1 || true
  rm -rf "$bench_home"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export HOME=$bench_home
export XDG_CONFIG_HOME=$HOME/.config XDG_DATA_HOME=$HOME/.local/share
export XDG_CACHE_HOME=$HOME/.cache XDG_RUNTIME_DIR=$HOME/run
export GNUPGHOME=$HOME/.gnupg PASSWORD_STORE_DIR=$HOME/.password-store
export IMGCTL_CONFIG_DIR=$HOME/imgctl/config IMGCTL_DATA_DIR=$HOME/imgctl/data
# A passphrase from the caller's environment would change what imgctl does on every get.
unset IMGCTL_PASSPHRASE PASSWORD_STORE_KEY PASSWORD_STORE_GPG_OPTS DBUS_SESSION_BUS_ADDRESS
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR" \
  "$GNUPGHOME" "$IMGCTL_CONFIG_DIR" "$IMGCTL_DATA_DIR"
# gpg warns about a group-readable home; the XDG spec requires 0700 for the runtime dir.
chmod 700 "$GNUPGHOME" "$XDG_RUNTIME_DIR"

export LOG=$HOME/setup.log
# Setup tools are chatty; keep their output unless they fail.
quiet() { "$@" >>"$LOG" 2>&1 || { cat "$LOG" >&2; die "failed: $*"; }; }

# A realistic registry token: 2 KiB of base64. It only ever travels through files and stdin,
# never argv, so it does not show up in ps or /proc/*/cmdline.
export SECRET_FILE=$HOME/secret URL_FILE=$HOME/server-url CRED_FILE=$HOME/credential.json
head -c 1536 /dev/urandom | base64 -w0 >"$SECRET_FILE"
secret=$(<"$SECRET_FILE")
printf '%s' "$SERVER_URL" >"$URL_FILE"
printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' \
  "$SERVER_URL" "$USERNAME" "$secret" >"$CRED_FILE"
unset secret

# Fails loudly unless `NAME get` hands back exactly the stored username and secret.
verify_get() {
  local name=$1 bin=$2 out
  local re_secret='"Secret"[[:space:]]*:[[:space:]]*"([^"]*)"'
  local re_user='"Username"[[:space:]]*:[[:space:]]*"([^"]*)"'
  out=$("$bin" get <"$URL_FILE") || die "$name: get failed"
  [[ $out =~ $re_user && ${BASH_REMATCH[1]} == "$USERNAME" ]] \
    || die "$name: get returned the wrong username"
  [[ $out =~ $re_secret ]] || die "$name: get printed no Secret"
  [[ ${BASH_REMATCH[1]} == "$(<"$SECRET_FILE")" ]] \
    || die "$name: get returned a different secret (${#BASH_REMATCH[1]} bytes)"
}

# --- pass: gpg key without passphrase, so no pinentry ever runs -----------------------------
quiet gpg --batch --pinentry-mode loopback --passphrase '' \
  --quick-gen-key 'imgctl bench <bench@localhost>' default default never
fpr=$(gpg --with-colons --list-secret-keys 2>>"$LOG" | awk -F: '$1 == "fpr" { print $10; exit }')
[[ -n $fpr ]] || die "gpg made no key"
quiet pass init "$fpr"
quiet docker-credential-pass store <"$CRED_FILE"
verify_get pass docker-credential-pass

# --- imgctl ---------------------------------------------------------------------------------
quiet "$imgctl_bin" store <"$CRED_FILE"
verify_get imgctl "$imgctl_bin"

# --- secretservice setup and all timing, inside one private D-Bus session -------------------
# Reads org.freedesktop.Secret.Collection.Locked of the login keyring: prints true or false,
# or nothing while the collection is not on the bus yet.
keyring_locked() {
  local path=/org/freedesktop/secrets/collection/login iface=org.freedesktop.Secret.Collection out
  if have busctl; then
    out=$(busctl --user get-property org.freedesktop.secrets "$path" "$iface" Locked 2>/dev/null) || return 0
  elif have gdbus; then
    out=$(gdbus call --session --dest org.freedesktop.secrets --object-path "$path" \
      --method org.freedesktop.DBus.Properties.Get "$iface" Locked 2>/dev/null) || return 0
  else
    out=$(dbus-send --session --print-reply --dest=org.freedesktop.secrets "$path" \
      org.freedesktop.DBus.Properties.Get "string:$iface" string:Locked 2>/dev/null) || return 0
  fi
  case $out in
    *false*) echo false ;;
    *true*) echo true ;;
  esac
}

in_dbus_session() {
  # A wrong password still exits 0, so unlocking is checked on the bus, not by exit code.
  local pw state i
  pw=$(head -c 18 /dev/urandom | base64)
  # The daemon forks and keeps its stdout: a pipe there would never reach EOF.
  printf '%s' "$pw" | gnome-keyring-daemon --unlock --components=secrets >>"$LOG" 2>&1
  for ((i = 0; i < 50; i++)); do
    state=$(keyring_locked)
    [[ -z $state ]] || break
    sleep 0.1
  done
  [[ $state == false ]] || die "secretservice: login keyring is ${state:-not on the bus}, not unlocked"
  quiet docker-credential-secretservice store <"$CRED_FILE"
  verify_get secretservice docker-credential-secretservice
  # imgctl on its secret-service backend, against the same daemon: it reads the item the old
  # helper stored (same schema), so nothing is stored twice.
  IMGCTL_BACKEND=secret-service verify_get imgctl-ss "$IMGCTL_BIN"

  # Round-robin, so drift on the machine (other load, frequency changes) hits every helper
  # alike; the start rotates so that none always runs first after the loop's bookkeeping.
  # `floor` is /bin/true timed the same way: the cost of starting any process here, which
  # every helper pays.
  local -a names=(floor imgctl imgctl-ss pass secretservice) samples=()
  local -A backend=([imgctl-ss]=secret-service)
  local -A bin=([floor]=/bin/true [imgctl]=$IMGCTL_BIN [imgctl-ss]=$IMGCTL_BIN
    [pass]=$(command -v docker-credential-pass)
    [secretservice]=$(command -v docker-credential-secretservice))
  local round k name t0 t1 n=${#names[@]}
  for ((round = 0; round < WARMUP + RUNS; round++)); do
    for ((k = 0; k < n; k++)); do
      name=${names[(round + k) % n]}
      t0=$EPOCHREALTIME
      IMGCTL_BACKEND=${backend[$name]:-age-file} "${bin[$name]}" get <"$URL_FILE" >/dev/null \
        || die "$name: get failed on round $round"
      t1=$EPOCHREALTIME
      ((round < WARMUP)) || samples+=("$name $((${t1/./} - ${t0/./}))")
    done
  done
  printf '%s\n' "${samples[@]}" >"$SAMPLES_FILE"
}

export IMGCTL_BIN=$imgctl_bin SAMPLES_FILE=$HOME/samples RUNS WARMUP USERNAME
export -f die have quiet verify_get keyring_locked in_dbus_session
echo "timing $RUNS runs (+$WARMUP warm-up) of each helper's get, round-robin..." >&2
dbus-run-session -- bash -euo pipefail -c in_dbus_session

# --- statistics -----------------------------------------------------------------------------
# Prints "median p90 mean min max runs" in ms for one helper; p90 is nearest-rank.
stats() {
  awk -v n="$1" '$1 == n { print $2 }' "$SAMPLES_FILE" | sort -n | awk '
    { v[NR] = $1; sum += $1 }
    END {
      med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      r = int(0.9 * NR); if (r < 0.9 * NR) r++
      printf "%.3f %.3f %.3f %.3f %.3f %d\n", med / 1000, v[r] / 1000, sum / NR / 1000, v[1] / 1000, v[NR] / 1000, NR
    }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
# Exit status of a float comparison a OP b, OP one of awk's.
cmp() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; }

declare -A med p90 mean min max runs
for name in floor imgctl imgctl-ss pass secretservice; do
  read -r "med[$name]" "p90[$name]" "mean[$name]" "min[$name]" "max[$name]" "runs[$name]" < <(stats "$name")
done

echo
printf '%-15s | %9s | %9s | %9s | %5s | %15s\n' helper 'median ms' 'p90 ms' 'mean ms' runs 'ratio to imgctl'
printf '%s\n' '----------------+-----------+-----------+-----------+-------+----------------'
for name in imgctl imgctl-ss pass secretservice; do
  printf '%-15s | %9s | %9s | %9s | %5s | %14sx\n' "$name" "${med[$name]}" "${p90[$name]}" \
    "${mean[$name]}" "${runs[$name]}" "$(ratio "${med[$name]}" "${med[imgctl]}")"
done
echo "(process-start floor, /bin/true timed the same way: ${med[floor]} ms median)"
echo

under=no
cmp "${med[imgctl]}" "<" 2 && under=yes
speedup=$(ratio "${med[pass]}" "${med[imgctl]}")
fast=no
cmp "${med[pass]}" ">=" "$(awk -v b="${med[imgctl]}" 'BEGIN { print 5 * b }')" && fast=yes
half=no
cmp "${med[imgctl-ss]}" "<=" "$(awk -v b="${med[secretservice]}" 'BEGIN { print b / 2 }')" && half=yes
echo "imgctl median < 2 ms: $under"
echo "speedup vs pass: ${speedup}x (target >= 5x)"
echo "imgctl on secret-service vs docker-credential-secretservice: $(ratio "${med[secretservice]}" "${med[imgctl-ss]}")x faster (target >= 2x): $half"

# --- JSON -----------------------------------------------------------------------------------
json_helper() {
  local name=$1 path=$2 backend=$3
  printf '    {"name": "%s", "binary": "%s", "backend": "%s", "median_ms": %s, "p90_ms": %s, "mean_ms": %s, "min_ms": %s, "max_ms": %s, "runs": %s, "ratio_to_imgctl": %s, "samples_us": [%s]}' \
    "$name" "$path" "$backend" "${med[$name]}" "${p90[$name]}" "${mean[$name]}" "${min[$name]}" \
    "${max[$name]}" "${runs[$name]}" "$(ratio "${med[$name]}" "${med[imgctl]}")" \
    "$(awk -v n="$name" '$1 == n { printf "%s%s", sep, $2; sep = "," }' "$SAMPLES_FILE")"
}
mkdir -p "$BENCH_OUT"
out=$BENCH_OUT/credential-get.json
{
  printf '{\n'
  printf '  "benchmark": "credential-get",\n'
  printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '  "host": {"kernel": "%s", "cpus": %s},\n' "$(uname -sr)" "$(nproc)"
  printf '  "method": "bash EPOCHREALTIME around fork+exec of get, with the server URL on stdin; helpers interleaved round-robin",\n'
  printf '  "runs": %s, "warmup": %s, "secret_bytes": %s,\n' "$RUNS" "$WARMUP" "$(wc -c <"$SECRET_FILE")"
  printf '  "process_start_floor_ms": {"median": %s, "p90": %s, "mean": %s},\n' \
    "${med[floor]}" "${p90[floor]}" "${mean[floor]}"
  printf '  "helpers": [\n'
  json_helper imgctl "$imgctl_bin" "age-encrypted file"
  printf ',\n'
  json_helper imgctl-ss "$imgctl_bin" "Secret Service (gnome-keyring over D-Bus)"
  printf ',\n'
  json_helper pass "$(command -v docker-credential-pass)" "pass, gpg $(gpg --version | awk 'NR == 1 { print $3 }'), default key algorithm"
  printf ',\n'
  json_helper secretservice "$(command -v docker-credential-secretservice)" "gnome-keyring over D-Bus"
  printf '\n  ],\n'
  printf '  "targets": {"imgctl_median_under_2ms": %s, "speedup_vs_pass": %s, "speedup_target": 5, "speedup_met": %s, "secret_service_at_most_half": %s}\n' \
    "$([[ $under == yes ]] && echo true || echo false)" "$speedup" \
    "$([[ $fast == yes ]] && echo true || echo false)" "$([[ $half == yes ]] && echo true || echo false)"
  printf '}\n'
} >"$out"
echo "results: $out"

if [[ $BENCH_ENFORCE == 1 && ($under == no || $fast == no || $half == no) ]]; then
  die "target missed"
fi
