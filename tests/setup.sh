#!/usr/bin/env bash
# Installs every peer the test suite and the benchmarks run against (Debian packages), and
# checks that the Docker Engine answers. The tests start and stop the peers themselves.
set -euo pipefail

packages=(
  docker-registry                   # CNCF distribution: the registry under test
  apache2-utils                     # htpasswd for the registry's users
  busybox-static                    # the one binary test images are built from
  python3 python3-dockerpycreds     # docker-py's credential client
  python3-cryptography              # the token server the tests run for token-auth registries
  python3-nacl                      # NaCl secretbox: the independent reader of cosign key files (signing tests)
  golang-docker-credential-helpers  # docker-credential-pass / -secretservice, compared against
  pass gnupg                        # the pass store those helpers use
  gnome-keyring dbus-daemon dbus-bin libsecret-tools  # a real Secret Service
  skopeo                            # an independent registry client, to check copies
  hyperfine                         # benchmarks
  nginx-light                       # the traffic switch deploys drive
  haproxy                           # the reload-free switch (runtime API over its stats socket)
  docker-compose                    # 1.29: the reference imgctl config is compared with
  wrk                               # load through nginx in deploy benchmarks
  curl                              # the sample notifier hook posts with it
  tar ca-certificates
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v docker >/dev/null; then
  missing+=(docker.io)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  # RUNLEVEL=1: invoke-rc.d starts no service (nginx would listen on every interface);
  # the tests start their own peers on loopback.
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "setup: the Docker Engine does not answer (docker info failed); start dockerd and run again" >&2
  exit 1
fi
echo "setup: peers ready"
