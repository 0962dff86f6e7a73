# shellcheck shell=bash
# The functions set variables for the scripts that source this file (SC2034: "appears unused").
# shellcheck disable=SC2034
# Set-up shared by bench/deploy.sh and bench/deploy-swarm.sh: checks, dependencies, the
# throwaway directory and environment, a docker-registry on loopback, the busybox httpd
# images, nginx probes and the wrk load. Functions only: sourcing this file runs nothing,
# sets nothing and installs no trap; the caller keeps its own cleanup and traps.
#
# What the functions need from the caller (set before the function that uses it runs):
#   BENCH_NAME              before sourcing: the script's name without .sh ("deploy",
#                           "deploy-swarm"); prefixes die's and the warnings' messages, and
#                           IMGCTL_ACTOR is bench/$BENCH_NAME.sh
#   set -euo pipefail, LC_ALL=C (EPOCHREALTIME's decimal separator must be a dot)
#   check_settings          WRK_THREADS, WRK_CONNECTIONS, SETTLE
#   install_deps            sets NGINX, BUSYBOX, DOCKER (the caller checks `have docker` first)
#   find_imgctl             repo (the checkout); IMGCTL optional; sets imgctl_bin
#   imgctl, imgctl_failed   work, imgctl_bin, DEPLOY_MAX_S, imgctl_seq (a number, 0 at first);
#                           imgctl sets OUT, which imgctl_failed reads
#   make_work NAME          sets work, run_id, prefix, LOG
#   private_env             work
#   dk, repo_refs           work, DOCKER; repo_refs also REPO
#   quiet                   LOG
#   init_ports, free_port   init_ports sets port_base and port_span, which free_port uses
#   start_registry          work; sets REGISTRY and registry_pid (stop_registry stops it)
#   build_image, build_images, image
#                           work, REPO, BUSYBOX, LOG, and `declare -A digest` (version ->
#                           sha256:...) at the caller's top level, which they fill and read
#   url, serving, expect_serving, await_serving
#                           `declare -A port` (site -> loopback port of its nginx server);
#                           AWAIT_SERVING_S, how long await_serving waits (default 10)
#   start_load, stop_load   work, WRK_THREADS, WRK_CONNECTIONS, WRK_MAX_S, load_seq (a
#                           number, 0 at first), bg_pids (an array; the caller's cleanup kills
#                           them); sets LOAD_OUT, LOAD_PID
#   parse_wrk FILE          sets W_REQ, W_SECS, W_NON2XX, W_CONNECT, W_READ, W_WRITE,
#                           W_TIMEOUT, W_FAILED, W_P99_MS
#   ms_since, s_between     EPOCHREALTIME (bash 5)

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
note() { echo "$*" >&2; }

# The load settings every deploy bench takes, and bash 5's $EPOCHREALTIME.
check_settings() {
  local v
  for v in WRK_THREADS WRK_CONNECTIONS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
  done
  [[ $SETTLE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "SETTLE must be a number of seconds, not '$SETTLE'"
  ((WRK_CONNECTIONS >= WRK_THREADS)) || die "WRK_CONNECTIONS must be at least WRK_THREADS"
  [[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 or newer is needed (no \$EPOCHREALTIME)"
}

# --- dependencies: install only what is missing ------------------------------------------
# The images hold nothing but /bin/busybox, so it has to be the static build.
static_busybox() {
  local bb
  bb=$(command -v busybox 2>/dev/null) || return 1
  ! ldd "$bb" >/dev/null 2>&1
}
# install_deps [COMMAND...]: wrk, nginx-light, docker-registry, busybox-static and curl, plus
# each COMMAND (its Debian package has the same name), with apt-get, only those missing.
install_deps() {
  local missing=() sudo=() cmd
  have wrk || missing+=(wrk)
  [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
  have docker-registry || missing+=(docker-registry)
  static_busybox || missing+=(busybox-static)
  have curl || missing+=(curl)
  for cmd in "$@"; do
    have "$cmd" || missing+=("$cmd")
  done
  if ((${#missing[@]})); then
    note "installing: ${missing[*]}"
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  fi
  static_busybox || die "$(command -v busybox) is not statically linked (install busybox-static)"
  NGINX=/usr/sbin/nginx
  BUSYBOX=$(command -v busybox)
  DOCKER=$(command -v docker)
}

# --- imgctl ---------------------------------------------------------------------------------
# find_imgctl [warn-stale]: $IMGCTL, or target/release/imgctl, built when missing (with
# warn-stale: a warning when src/ or Cargo.* is newer than it).
find_imgctl() {
  local stale
  if [[ -n ${IMGCTL:-} ]]; then
    imgctl_bin=$(realpath -m "$IMGCTL")
  else
    imgctl_bin=${CARGO_TARGET_DIR:-$repo/target}/release/imgctl
    if [[ ! -x $imgctl_bin ]]; then
      note "building $imgctl_bin"
      (cd "$repo" && cargo build --release --locked --bin imgctl)
    fi
    if [[ ${1:-} == warn-stale ]]; then
      stale=$(find "$repo/src" "$repo/Cargo.toml" "$repo/Cargo.lock" -newer "$imgctl_bin" -print -quit)
      [[ -z $stale ]] || note "$BENCH_NAME: warning: $stale is newer than $imgctl_bin (stale build?)"
    fi
  fi
  [[ -x $imgctl_bin ]] || die "no executable imgctl at $imgctl_bin"
  "$imgctl_bin" deploy --help >/dev/null 2>&1 || die "$imgctl_bin has no deploy command (stale build?)"
  case $imgctl_bin in
    */debug/*) note "$BENCH_NAME: warning: $imgctl_bin is a debug build" ;;
  esac
}

# imgctl SITE ARGS...: runs `imgctl ARGS... -o json` in $work/app-SITE (within DEPLOY_MAX_S);
# its output in $OUT.json and $OUT.err, OUT=$work/imgctl-N.
imgctl() {
  local site=$1
  shift
  OUT=$work/imgctl-$((++imgctl_seq))
  (cd "$work/app-$site" && timeout "$DEPLOY_MAX_S" "$imgctl_bin" "$@" -o json \
    >"$OUT.json" 2>"$OUT.err" </dev/null)
}
imgctl_failed() {
  cat "$OUT.err" "$OUT.json" >&2
  die "$*"
}

# --- throwaway directory and environment -----------------------------------------------------
# make_work NAME: a private directory ${TMPDIR:-/tmp}/NAME.XXXXXX, the run's random name
# prefix (imgctl-bench-RUNID: every container, service, network, image and upstream of the
# run carries it) and its log.
make_work() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  chmod 700 "$work"
  run_id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
  prefix=imgctl-bench-$run_id
  LOG=$work/run.log
  : >"$LOG"
}

# Loopback only, and a HOME, docker config and imgctl state of our own: the caller's files are
# never touched.
private_env() {
  unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
  mkdir -p "$work"/{home,docker,state,config,data,nobin}
  chmod 700 "$work/docker"
  echo '{}' >"$work/docker/config.json"
  export HOME=$work/home DOCKER_CONFIG=$work/docker IMGCTL_STATE_DIR=$work/state \
    IMGCTL_CONFIG_DIR=$work/config IMGCTL_DATA_DIR=$work/data
  unset XDG_CONFIG_HOME XDG_DATA_HOME XDG_STATE_HOME DOCKER_AUTH_CONFIG IMGCTL_BACKEND \
    IMGCTL_PASSPHRASE IMGCTL_AUDIT_LOG
  export IMGCTL_ACTOR=bench/$BENCH_NAME.sh   # the performer in imgctl's history
}

# The docker CLI. With no credsStore in config.json it picks `pass` when `pass` is on PATH and
# then fails on an uninitialized store; a PATH without it leaves the plain file store of the
# throwaway config (the registry has no auth anyway).
dk() { PATH=$work/nobin "$DOCKER" "$@"; }

# Every reference of the bench repository in the engine: tags and repo@digest.
repo_refs() {
  dk images --digests --filter "reference=$REPO" \
    --format '{{.Repository}} {{.Tag}} {{.Digest}}' 2>/dev/null | while read -r r t d; do
    [[ $t == '<none>' ]] || echo "$r:$t"
    [[ $d == '<none>' ]] || echo "$r@$d"
  done
}

quiet() {
  "$@" >>"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; die "failed: $*"; }
}

# Fixed ports come from below the kernel's ephemeral range: under the load every request
# opens two or three loopback connections, and a port the kernel hands out as the source
# port of one of them cannot be bound until that connection is gone.
init_ports() {
  local ephemeral_low
  read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || ephemeral_low=32768
  port_base=10000 port_span=$((ephemeral_low - 10000))
  ((port_span >= 1000)) || port_base=1024 port_span=$((ephemeral_low - 1024))
  ((port_span >= 1000)) || die "no room for fixed ports below the ephemeral range ($ephemeral_low)"
}
free_port() {
  local port
  while :; do
    port=$((port_base + (RANDOM * 32768 + RANDOM) % port_span))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

# --- registry ---------------------------------------------------------------------------------
start_registry() {
  local dir=$work/registry attempt port i
  mkdir -p "$dir/data"
  for ((attempt = 0; attempt < 20; attempt++)); do
    port=$(free_port)
    cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
EOF
    docker-registry serve "$dir/config.yml" >>"$dir/log" 2>&1 &
    registry_pid=$!
    for ((i = 0; i < 100; i++)); do
      kill -0 "$registry_pid" 2>/dev/null || break
      if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
        REGISTRY=127.0.0.1:$port
        return
      fi
      sleep 0.1
    done
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
    registry_pid=''
  done
  cat "$dir/log" >&2
  die "could not start docker-registry"
}
# For the caller's cleanup: never fails.
stop_registry() {
  if [[ -n ${registry_pid:-} ]]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
}

# --- images: busybox httpd serving its version -------------------------------------------------
build_image() {
  local version=$1 healthy=$2 root=$work/rootfs tag=$REPO:$1 ref
  rm -rf "$root"
  mkdir -p "$root/bin" "$root/www"
  cp "$BUSYBOX" "$root/bin/busybox"
  echo "$version" >"$root/www/index.html"
  [[ $healthy == no ]] || echo ok >"$root/www/health"
  tar -C "$root" -cf - . | quiet dk import \
    --change 'CMD ["/bin/busybox","httpd","-f","-p","8080","-h","/www"]' \
    --change 'EXPOSE 8080' - "$tag"
  rm -rf "$root"
  quiet dk push "$tag"
  ref=$(dk image inspect --format '{{index .RepoDigests 0}}' "$tag")
  [[ $ref == "$REPO@sha256:"* ]] || die "docker push of $tag left no repo digest ($ref)"
  # shellcheck disable=SC2004 # digest is the caller's associative array: the $ is needed
  digest[$version]=${ref#*@}
  # Removing the only tag drops the image: deploys (and the swarm's tasks) have to pull it.
  quiet dk rmi "$tag"
  if dk image inspect "$REPO@${digest[$version]}" >/dev/null 2>&1; then
    die "$REPO@${digest[$version]} is still in the engine after docker rmi"
  fi
}
# v1, v2, v3 and bad (no /health).
build_images() {
  local v
  note "building and pushing v1, v2, v3, bad..."
  for v in v1 v2 v3; do build_image "$v" yes; done
  build_image bad no
}
image() { echo "$REPO@${digest[$1]}"; }

# --- what nginx serves ----------------------------------------------------------------------
url() { echo "http://127.0.0.1:${port[$1]}$2"; }
serving() { curl -s -m 2 "$(url "$1" /)" || true; }
expect_serving() {
  local site=$1 want=$2 got
  got=$(serving "$site")
  [[ $got == "$want" ]] || die "$site: nginx serves '$got', expected '$want'"
}
# Waits (up to AWAIT_SERVING_S, default 10 s) until nginx serves WANT for SITE.
await_serving() {
  local site=$1 want=$2 i max_s=${AWAIT_SERVING_S:-10}
  for ((i = 0; i < max_s * 20; i++)); do
    [[ $(serving "$site") == "$want" ]] && return
    sleep 0.05
  done
  expect_serving "$site" "$want"
}

# --- load ---------------------------------------------------------------------------------------
# wrk runs closed-loop (each connection sends its next request when the last one is answered)
# with a duration longer than any deploy or update; SIGINT ends it early with its full report.
start_load() {
  local mode=$1 site=$2 hdr=()
  LOAD_OUT=$work/wrk-$((++load_seq)).txt
  [[ $mode == close ]] && hdr=(-H 'Connection: close')
  wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${WRK_MAX_S}s" --latency "${hdr[@]}" \
    "$(url "$site" /)" >"$LOAD_OUT" 2>&1 &
  LOAD_PID=$!
  bg_pids+=("$LOAD_PID")
}
stop_load() {
  kill -INT "$LOAD_PID" 2>/dev/null || true
  wait "$LOAD_PID" || { cat "$LOAD_OUT" >&2; die "wrk failed"; }
}

# Sets W_REQ, W_NON2XX, W_CONNECT, W_READ, W_WRITE, W_TIMEOUT, W_FAILED, W_SECS, W_P99_MS from
# wrk's report. wrk counts a status of 400 or more as "Non-2xx or 3xx"; a timeout is a request
# not answered within wrk's 2 s.
parse_wrk() {
  local f=$1
  grep -q ' requests in ' "$f" || { cat "$f" >&2; die "no wrk report in $f"; }
  read -r W_REQ W_SECS < <(awk '/ requests in / {
      d = $4; sub(/,$/, "", d); s = d + 0
      if (d ~ /ms$/) s /= 1000; else if (d ~ /m$/) s *= 60; else if (d ~ /h$/) s *= 3600
      print $1, s }' "$f")
  W_NON2XX=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$f")
  W_NON2XX=${W_NON2XX:-0}
  read -r W_CONNECT W_READ W_WRITE W_TIMEOUT < <(awk '/Socket errors:/ {
      gsub(/,/, ""); print $4, $6, $8, $10; found = 1 }
      END { if (!found) print 0, 0, 0, 0 }' "$f")
  W_FAILED=$((W_NON2XX + W_CONNECT + W_READ + W_WRITE + W_TIMEOUT))
  W_P99_MS=$(awk '$1 == "99%" { v = $2
      if (v ~ /us$/) m = v / 1000; else if (v ~ /ms$/) m = v + 0; else if (v ~ /m$/) m = v * 60000
      else m = v * 1000
      printf "%.2f", m }' "$f")
  W_P99_MS=${W_P99_MS:-null}
}

# --- time ---------------------------------------------------------------------------------------
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
s_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
