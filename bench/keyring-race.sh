#!/usr/bin/env bash
# Does a helper's traffic bring gnome-keyring-daemon down? PARALLEL clients each run ROUNDS
# `get`s against one unlocked keyring, for docker-credential-imgctl and Debian's
# docker-credential-secretservice side by side, each on a fresh private session bus
# with no service activation (tests/peers/dbus-session.conf): an activated daemon would come
# up locked.
#
# gnome-keyring-daemon aborts when a client's OpenSession is handled before the daemon has
# registered that client; a helper that opens its session as its very first message hits
# that now and then. A dead daemon takes every desktop secret with it and, restarted by
# systemd, comes back locked. Target: the daemon survives every round of every helper.
#
# Environment:
#   PARALLEL=4          concurrent client loops
#   ROUNDS=1000         `get`s per loop
#   IMGCTL_HELPER=PATH  helper binary (default: target/release/docker-credential-imgctl,
#                       built with cargo if missing)
#   BENCH_OUT=/tmp      directory for keyring-race.json
#   BENCH_ENFORCE=1     exit 1 when imgctl's daemon died (default: report only)
set -euo pipefail
export LC_ALL=C

PARALLEL=${PARALLEL:-4}
ROUNDS=${ROUNDS:-1000}
BENCH_OUT=${BENCH_OUT:-/tmp}
BENCH_ENFORCE=${BENCH_ENFORCE:-0}

die() { echo "keyring-race: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

[[ $PARALLEL =~ ^[1-9][0-9]*$ ]] || die "PARALLEL must be a positive integer, not '$PARALLEL'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

missing=()
have gnome-keyring-daemon || missing+=(gnome-keyring)
have dbus-run-session || missing+=(dbus-daemon)
have docker-credential-secretservice || missing+=(golang-docker-credential-helpers)
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: run tests/setup.sh or apt-get install them"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

IMGCTL_HELPER=${IMGCTL_HELPER:-$repo/target/release/docker-credential-imgctl}
if [[ ! -x $IMGCTL_HELPER ]]; then
  (cd "$repo" && cargo build --release --quiet --bin docker-credential-imgctl)
fi

work=$(mktemp -d /tmp/imgctl-keyring-race.XXXXXX)
trap 'rm -rf "$work"' EXIT

# One helper against one fresh keyring; runs inside dbus-run-session. Prints
# "answered failed daemon seconds" where daemon is "alive" or "died(STATUS)".
race() {
  local helper=$1 home=$2
  export HOME=$home XDG_RUNTIME_DIR=$home/run IMGCTL_BACKEND=secret-service
  mkdir -p -m 700 "$XDG_RUNTIME_DIR"
  printf 'race-login' | gnome-keyring-daemon --foreground --unlock --components=secrets \
    >/dev/null 2>"$home/daemon.log" &
  local daemon=$!
  local i
  for i in $(seq 100); do
    printf '{"ServerURL":"race.example.com","Username":"u","Secret":"race-secret"}' \
      | "$helper" store >/dev/null 2>&1 && break
    sleep 0.05
  done
  ((i < 100)) || die "$helper could not store into the keyring"
  local started=$EPOCHREALTIME loops=() p
  for p in $(seq "$PARALLEL"); do
    (
      ok=0 bad=0
      for _ in $(seq "$ROUNDS"); do
        if printf 'race.example.com' | "$helper" get 2>/dev/null | grep -q race-secret; then
          ok=$((ok + 1))
        else
          bad=$((bad + 1))
        fi
      done
      echo "$ok $bad" >"$home/loop.$p"
    ) &
    loops+=($!)
  done
  wait "${loops[@]}"
  local seconds
  seconds=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  local state=alive
  if ! kill -0 "$daemon" 2>/dev/null; then
    set +e
    wait "$daemon"
    state="died($?)"
    set -e
  fi
  kill "$daemon" 2>/dev/null || true
  cat "$home"/loop.* | awk -v d="$state" -v s="$seconds" '{ a += $1; f += $2 } END { print a, f, d, s }'
}
export -f race die
export PARALLEL ROUNDS

declare -A result
for name in imgctl secretservice; do
  case $name in
    imgctl) helper=$IMGCTL_HELPER ;;
    secretservice) helper=$(command -v docker-credential-secretservice) ;;
  esac
  home=$work/$name
  mkdir -p "$home"
  result[$name]=$(dbus-run-session --config-file="$repo/tests/peers/dbus-session.conf" -- bash -euo pipefail -c 'race "$0" "$1"' "$helper" "$home")
done

total=$((PARALLEL * ROUNDS))
printf '\nkeyring-race: %d clients x %d gets against one gnome-keyring-daemon (%s)\n\n' \
  "$PARALLEL" "$ROUNDS" "$(dpkg-query -W -f '${Version}' gnome-keyring 2>/dev/null || echo '?')"
printf '%-32s %9s %7s %13s %8s\n' helper answered failed daemon seconds
for name in imgctl secretservice; do
  read -r answered failed daemon seconds <<<"${result[$name]}"
  label=docker-credential-$name
  printf '%-32s %9s %7s %13s %8s\n' "$label" "$answered/$total" "$failed" "$daemon" "$seconds"
done

read -r i_ok i_bad i_daemon i_s <<<"${result[imgctl]}"
read -r s_ok s_bad s_daemon s_s <<<"${result[secretservice]}"
cat >"$BENCH_OUT/keyring-race.json" <<JSON
{"parallel": $PARALLEL, "rounds": $ROUNDS,
 "imgctl": {"answered": $i_ok, "failed": $i_bad, "daemon": "$i_daemon", "seconds": $i_s},
 "secretservice": {"answered": $s_ok, "failed": $s_bad, "daemon": "$s_daemon", "seconds": $s_s}}
JSON
echo "figures: $BENCH_OUT/keyring-race.json"

if [[ $i_daemon != alive ]]; then
  echo "keyring-race: MISSED: imgctl's traffic brought the daemon down ($i_daemon)" >&2
  [[ $BENCH_ENFORCE == 1 ]] && exit 1
fi
exit 0
