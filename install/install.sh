#!/usr/bin/env bash
# Installs imgctl and docker-credential-imgctl for the current user (no root), points docker at
# the helper, moves plaintext credentials out of config.json into the encrypted store, and ends
# with `imgctl creds doctor` (a real store/get/erase round trip). Safe to run again.
#
#   install/install.sh [--prefix DIR] [--from DIR] [--migrate]
#   install/install.sh --uninstall [--prefix DIR]
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: install/install.sh [--prefix DIR] [--from DIR] [--migrate] [--uninstall]

  --prefix DIR   install into DIR/bin (default: $PREFIX, else ~/.local)
  --from DIR     install the binaries found in DIR instead of building them
  --migrate      when docker used pass or secretservice, move those credentials into
                 imgctl without asking (on a terminal the installer asks; otherwise it
                 only prints the command)
  --uninstall    put docker's previous credsStore back and remove the binaries
                 (the encrypted store is kept; the command says where)

Environment: DOCKER_CONFIG (default ~/.docker), IMGCTL_CONFIG_DIR, IMGCTL_DATA_DIR.
USAGE
}

prefix="${PREFIX:-$HOME/.local}"
from=""
uninstall=0
migrate=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --from) from="${2:?--from needs a directory}"; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    --migrate) migrate=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

bin="$prefix/bin"
binaries=(imgctl docker-credential-imgctl)
say() { printf '==> %s\n' "$*"; }

if [ "$uninstall" = 1 ]; then
  if [ -x "$bin/imgctl" ]; then
    say "restoring docker's previous credsStore"
    "$bin/imgctl" creds configure-docker --restore
  elif grep -qi '"credsStore"[[:space:]]*:[[:space:]]*"imgctl"' "${DOCKER_CONFIG:-$HOME/.docker}/config.json" 2>/dev/null; then
    echo "install.sh: $bin/imgctl is gone, so docker's config.json still names imgctl; remove its \"credsStore\" line by hand" >&2
  fi
  for b in "${binaries[@]}"; do rm -f "$bin/$b"; done
  say "removed ${binaries[*]} from $bin"
  data="${IMGCTL_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/imgctl}"
  config="${IMGCTL_CONFIG_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/imgctl}"
  say "the encrypted store is kept: rm -r '$data' '$config' deletes it (log in again with docker login)"
  exit 0
fi

if [ -z "$from" ]; then
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  command -v cargo >/dev/null || { echo "install.sh: cargo is needed to build imgctl (rustup, or Debian's cargo package)" >&2; exit 1; }
  say "building release binaries"
  cargo build --release --locked --bins --manifest-path "$repo/Cargo.toml"
  from="$(cd "$repo" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release"
fi

mkdir -p "$bin"
for b in "${binaries[@]}"; do
  [ -x "$from/$b" ] || { echo "install.sh: $from/$b is missing" >&2; exit 1; }
  # Copy then rename, so a helper docker is running right now is never half-written.
  install -m 0755 "$from/$b" "$bin/.$b.new"
  mv -f "$bin/.$b.new" "$bin/$b"
done
say "installed ${binaries[*]} into $bin"
user_path="$PATH"
export PATH="$bin:$PATH"

case ":$user_path:" in
  *":$bin:"*) ;;
  *) say "WARNING: $bin is not on your PATH: docker cannot run docker-credential-imgctl until it is."
     say "         add it, e.g. in ~/.profile: export PATH=\"$bin:\$PATH\"" ;;
esac

say "creating the credential store"
imgctl creds init

# Credentials of the helper imgctl replaces are moved before docker is pointed at imgctl, so
# docker never looks for a credential that is not there yet.
# Docker (Go) reads the key in any case and takes the last one; so does this.
config_file="${DOCKER_CONFIG:-$HOME/.docker}/config.json"
previous=""
if [ -f "$config_file" ]; then
  previous=$(sed -n 's/.*"credsstore"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/Ip' "$config_file" | tail -n 1)
fi
case "$previous" in
  pass|secretservice)
    answer=n
    if [ "$migrate" = 1 ]; then
      answer=y
    elif [ -t 0 ]; then
      read -r -p "docker used $previous: move its credentials into imgctl now (they stay in $previous too)? [Y/n] " answer || answer=n
      case "$answer" in [Nn]*) answer=n ;; *) answer=y ;; esac
    fi
    if [ "$answer" = y ]; then
      say "moving credentials from $previous"
      imgctl creds migrate --from "$previous"
    else
      say "docker used $previous; to move its credentials into imgctl run: imgctl creds migrate --from $previous"
    fi
    ;;
esac
say "pointing docker at imgctl"
imgctl creds configure-docker
say "checking"
imgctl creds doctor
