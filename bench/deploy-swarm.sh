#!/usr/bin/env bash
# Swarm updates side by side: `imgctl deploy` with `x-imgctl.target: swarm` against
# `docker service update --image REPO@DIGEST` with the same update_config, in one run, on a
# loopback-only single-node swarm, 4 replicas of the same busybox httpd images from a
# throwaway docker-registry, behind the same nginx (a container on the swarm's overlay
# network), under the same wrk load.
#
# Cases (each good case run twice, one update per load mode: wrk with `Connection: close`,
# then wrk with keep-alive, its default; KEEPALIVE=0 skips the keep-alive runs):
#   1  imgctl rolling (swarm's own update of SERVICE, followed to its end)   v1 -> v2 -> v3
#   2  docker service update --image, same update_config, a second service  v1 -> v2 -> v3
#   3  imgctl blue/green on swarm (SERVICE-blue / SERVICE-green)            v1 -> v2 -> v3
#   4  a bad version (no /health): imgctl rolling against docker service update, both with
#      failure_action rollback; swarm rolls back, the services stay on v3
#
# update_config: parallelism 1, delay 0s, monitor 3s, order start-first, failure_action
# rollback; healthcheck (exec form) every 1s, timeout 1s, 2 retries; stop_grace_period 2s.
#
# Environment:
#   WRK_THREADS=1       wrk threads
#   WRK_CONNECTIONS=4   wrk connections
#   SETTLE=1            seconds of load before and after each update
#   KEEPALIVE=1         0: only the Connection: close runs
#   HEALTH_TIMEOUT=1s   the healthcheck's timeout (a busy machine fails 1 s exec probes)
#   WAIT_MAX_S=600      how long to wait for running `cargo test` / swarm tests to end
#   IMGCTL=PATH         imgctl binary (default: target/release/imgctl, built if missing)
#   BENCH_OUT=/tmp      directory for deploy-swarm.json
#   BENCH_LOGS=DIR      also keep each run's wrk report, imgctl/docker output, nginx's log
#
# The swarm is initialized (loopback only, without the ingress network) only when the engine
# is in none, and then left again; a swarm that was there before is used and never left. The
# swarm tests' lock files (/tmp/imgctl-test-swarm.*) are honoured, so a test that starts
# meanwhile shares the swarm instead of fighting over it. Services, containers, images, the
# network, the registry and the throwaway directory of this run are removed on exit.
set -euo pipefail
# EPOCHREALTIME uses the locale's decimal separator; the timing arithmetic needs a dot.
export LC_ALL=C

WRK_THREADS=${WRK_THREADS:-1}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-4}
SETTLE=${SETTLE:-1}
KEEPALIVE=${KEEPALIVE:-1}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-1s}
WAIT_MAX_S=${WAIT_MAX_S:-600}
BENCH_OUT=${BENCH_OUT:-/tmp}
BENCH_LOGS=${BENCH_LOGS:-}
REPLICAS=4
# Upper bounds, so nothing here can hang: one wrk run, one update, one convergence poll.
WRK_MAX_S=300
DEPLOY_MAX_S=180

# Waits (in await_serving) up to 20 s: nginx's per-request DNS is cached 1 s.
AWAIT_SERVING_S=20

# die, note, the dependencies, the throwaway directory, registry, images and wrk load.
BENCH_NAME=deploy-swarm
# shellcheck source=lib/deploy-peers.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/deploy-peers.sh"

check_settings   # WRK_THREADS, WRK_CONNECTIONS, SETTLE
[[ $WAIT_MAX_S =~ ^[0-9]+$ ]] || die "WAIT_MAX_S must be a number of seconds, not '$WAIT_MAX_S'"
[[ $HEALTH_TIMEOUT =~ ^[0-9]+(ms|s)$ ]] || die "HEALTH_TIMEOUT must be like 1s or 500ms, not '$HEALTH_TIMEOUT'"
[[ $KEEPALIVE == [01] ]] || die "KEEPALIVE must be 0 or 1, not '$KEEPALIVE'"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- dependencies: install only what is missing ------------------------------------------
have docker || die "docker is needed (Debian: docker.io), with a running engine"
have flock || die "flock is needed (util-linux)"
install_deps jq   # sets NGINX, BUSYBOX, DOCKER
SOCKET=/var/run/docker.sock
[[ -S $SOCKET ]] || die "no Docker Engine socket at $SOCKET"
docker info >/dev/null 2>&1 || die "the Docker Engine does not answer (docker info)"

# --- imgctl ---------------------------------------------------------------------------------
find_imgctl warn-stale   # sets imgctl_bin

[[ -z $BENCH_LOGS ]] || mkdir -p "$BENCH_LOGS"

# --- no swarm tests running ---------------------------------------------------------------------
# tests/it/deploy_swarm.rs and tests/it/swarm_peers.rs init and leave the same engine's swarm, and
# any cargo test takes the CPU this measures with. Wait for them to end first.
test_pattern='cargo test|/deps/it-[0-9a-f]+( |$)'
waited=0
while pgrep -f -- "$test_pattern" >/dev/null; do
  ((waited > 0)) || note "waiting for cargo test / swarm tests to end (up to ${WAIT_MAX_S} s)..."
  ((waited < WAIT_MAX_S)) || die "tests still running after ${WAIT_MAX_S} s: $(pgrep -af -- "$test_pattern" | head -n 3)"
  sleep 5
  waited=$((waited + 5))
done

# --- throwaway directory, names, cleanup -----------------------------------------------------
# work, run_id, LOG, and prefix=imgctl-bench-RUNID: every service, container, network and
# image of this run.
make_work imgctl-bench-swarm
NET=$prefix-net
NGINX_NAME=$prefix-nginx
PROXY_TAG=imgctl-bench-nginx:$run_id
SVC_ROLL=$prefix-roll    # imgctl rolling
SVC_DOCK=$prefix-dock    # docker service update
SVC_BG=$prefix-bg        # imgctl blue/green: $SVC_BG-blue and $SVC_BG-green
ALL_SERVICES=("$SVC_ROLL" "$SVC_DOCK" "$SVC_BG-blue" "$SVC_BG-green")

registry_pid='' REPO='' network_made=0 proxy_built=0
swarm_joined=0 swarm_initialized=0 cluster_at_start='' users_fd='' state_fd='' gw_existed=false
# The Engine API on its socket (the CLI cannot create an exec-form healthcheck, and polling
# through curl is cheaper than through the CLI).
api() { curl -sS --max-time 10 --unix-socket "$SOCKET" "$@"; }
API=http://localhost/v1.41

# --- the swarm: shared with the tests through their lock files ----------------------------------
# tests/it/common/swarm.rs: STATE_LOCK is held exclusively while the swarm is initialized or
# left; every user holds USERS_LOCK shared; OWNER_FILE says which cluster a user initialized
# and whether docker_gwbridge was there before. The last user leaves the owner's swarm.
STATE_LOCK=/tmp/imgctl-test-swarm.lock
USERS_LOCK=/tmp/imgctl-test-swarm.users
OWNER_FILE=/tmp/imgctl-test-swarm.owner

# Prints "LocalNodeState ClusterID" ("inactive -" outside a swarm).
swarm_state() {
  dk info --format '{{json .Swarm}}' | jq -r '"\(.LocalNodeState // "") \(.Cluster.ID // "-")"'
}

swarm_join() {
  local node cluster i
  exec {state_fd}>>"$STATE_LOCK"
  flock -w 120 -x "$state_fd" || die "could not lock $STATE_LOCK within 120 s"
  read -r node cluster < <(swarm_state)
  case $node in
    inactive)
      ! dk network inspect docker_gwbridge >/dev/null 2>&1 || gw_existed=true
      swarm_joined=1 swarm_initialized=1
      quiet dk swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 \
        --data-path-addr 127.0.0.1
      read -r node cluster < <(swarm_state)
      printf '{"cluster":"%s","gwbridge_existed":%s}' "$cluster" "$gw_existed" >"$OWNER_FILE"
      # The routing mesh's ingress binds UDP 0.0.0.0:4789 and publishes on every interface;
      # nothing here publishes a service port.
      for ((i = 0; i < 100; i++)); do
        dk network inspect ingress >/dev/null 2>&1 && break
        sleep 0.1
      done
      api -o /dev/null -X DELETE "$API/networks/ingress" || true
      note "swarm: initialized on 127.0.0.1 (cluster $cluster), to be left at the end"
      ;;
    active)
      cluster_at_start=$cluster
      note "swarm: already active (cluster $cluster): used, not left"
      ;;
    *) die "the engine's swarm is '$node': fix it (docker swarm leave --force) and run again" ;;
  esac
  exec {users_fd}>>"$USERS_LOCK"
  flock -s "$users_fd"
  swarm_joined=1
  exec {state_fd}>&-
  state_fd=''
}

swarm_leave() {
  local probe_fd node cluster owner gw
  ((swarm_joined)) || return 0
  swarm_joined=0
  [[ -z $users_fd ]] || exec {users_fd}>&-
  # Still held when the init failed half-way: a second descriptor's flock would wait on it.
  [[ -z $state_fd ]] || exec {state_fd}>&-
  exec {state_fd}>>"$STATE_LOCK"
  flock -w 60 -x "$state_fd" || { note "swarm: $STATE_LOCK busy; not leaving"; return 0; }
  exec {probe_fd}>>"$USERS_LOCK"
  if flock -n -x "$probe_fd"; then
    read -r node cluster < <(swarm_state)
    owner=$(jq -r '.cluster // ""' "$OWNER_FILE" 2>/dev/null || true)
    gw=$(jq -r '.gwbridge_existed' "$OWNER_FILE" 2>/dev/null || true)
    # No owner file: this run's init failed before writing it.
    if [[ -z $owner ]] && ((swarm_initialized)); then owner=$cluster gw=$gw_existed; fi
    if [[ $node == active && -n $owner && $owner == "$cluster" && $cluster != "$cluster_at_start" ]]; then
      dk swarm leave --force >>"$LOG" 2>&1 || note "swarm: docker swarm leave --force failed"
      [[ $gw != false ]] || dk network rm docker_gwbridge >>"$LOG" 2>&1 || true
      rm -f "$OWNER_FILE"
    fi
  elif ((swarm_initialized)); then
    note "swarm: a test uses it now; the last one of them leaves it"
  fi
  exec {probe_fd}>&- {state_fd}>&-
  state_fd=''
}

bg_pids=()   # wrk runs and pollers still going
cleanup() {
  local pid svc ids i refs
  # Every step is attempted, whatever failed before.
  set +e
  for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${bg_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n $BENCH_LOGS && -f $work/nginx/error.log ]]; then
    cp "$work/nginx/error.log" "$BENCH_LOGS/nginx-error.log" || true
  fi
  if ((swarm_joined)) && [[ -n $BENCH_LOGS ]]; then
    for svc in "${ALL_SERVICES[@]}"; do
      dk service ps --no-trunc --format '{{.ID}} {{.Name}} {{.Image}} desired={{.DesiredState}} {{.CurrentState}} {{.Error}}' \
        "$svc" >>"$BENCH_LOGS/service-ps.txt" 2>&1 || true
    done
    cp "$work/diagnostics.log" "$BENCH_LOGS/diagnostics.log" 2>/dev/null || true
  fi
  if ((swarm_joined)); then
    for svc in "${ALL_SERVICES[@]}"; do dk service rm "$svc" >/dev/null 2>&1 || true; done
    # busybox httpd as PID 1 ignores SIGTERM: without this each task holds the network for
    # its stop grace period.
    for svc in "${ALL_SERVICES[@]}"; do
      ids=$(dk ps -aq --filter "label=com.docker.swarm.service.name=$svc" 2>/dev/null || true)
      [[ -z $ids ]] || dk rm -f $ids >/dev/null 2>&1 || true
    done
  fi
  dk rm -f "$NGINX_NAME" >/dev/null 2>&1 || true
  if ((network_made)); then
    # Until the last task container is gone the network has active endpoints.
    for ((i = 0; i < 150; i++)); do
      dk network rm "$NET" >/dev/null 2>&1 && break
      dk network inspect "$NET" >/dev/null 2>&1 || break
      sleep 0.2
    done
  fi
  # By reference, never by image ID, so an image someone else holds under another name stays.
  if [[ -n $REPO ]]; then
    refs=$(repo_refs)
    [[ -z $refs ]] || dk rmi -f $refs >/dev/null 2>&1 || true
  fi
  ((proxy_built == 0)) || dk rmi "$PROXY_TAG" >/dev/null 2>&1 || true
  swarm_leave
  stop_registry
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Loopback only; HOME, DOCKER_CONFIG and imgctl's state in $work; IMGCTL_ACTOR=bench/deploy-swarm.sh.
private_env
# The engine is the one on $SOCKET, whatever the caller's docker context says.
unset DOCKER_HOST DOCKER_CONTEXT
mkdir -p "$work/nginx"
# free_port: fixed ports from below the kernel's ephemeral range.
init_ports

# --- registry (before the swarm lock is taken: it must not inherit the lock's descriptor) ---------
start_registry
REPO=$REGISTRY/$prefix/web
note "registry: $REGISTRY"

# --- images: busybox httpd serving its version -------------------------------------------------
declare -A digest   # version -> sha256:...
build_images   # v1, v2, v3, bad; image VERSION prints REPO@DIGEST

# --- nginx in a container: the host's nginx binary and the libraries ldd names ----------------
CONF_DIR=/etc/imgctl-nginx   # $work/nginx, bind-mounted
build_proxy_image() {
  local root=$work/nginx-rootfs f
  mkdir -p "$root"
  for f in "$NGINX" $(ldd "$NGINX" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$f")"
    # -L: the image holds the libraries themselves, not the symlinks.
    cp -L "$f" "$root$f"
  done
  mkdir -p "$root"{$CONF_DIR,/var/lib/nginx,/var/log/nginx,/run,/tmp}
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534::/:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  tar -C "$root" -cf - . | quiet dk import \
    --change "CMD [\"$NGINX\",\"-c\",\"$CONF_DIR/nginx.conf\"]" - "$PROXY_TAG"
  proxy_built=1
  rm -rf "$root"
}

# One server per case on its own container port. The rolling services are resolved per
# request through the engine's DNS (tasks.NAME: swarm replaces tasks without a reload; the
# service VIP needs IPVS, which this kernel lacks). Blue/green's upstream `web` is the file
# imgctl writes, resolved at each reload.
BG_UPSTREAM=$work/nginx/upstream-bg.conf
write_nginx_conf() {
  cat >"$work/nginx/nginx.conf" <<EOF
# Written by bench/deploy-swarm.sh.
daemon off;
master_process on;
worker_processes 2;
user root;
pid /run/nginx.pid;
error_log $CONF_DIR/error.log notice;
events { worker_connections 1024; }
http {
    access_log off;
    resolver 127.0.0.11 valid=1s ipv6=off;
    resolver_timeout 2s;
    map "" \$roll_imgctl { default tasks.$SVC_ROLL:8080; }
    map "" \$roll_docker { default tasks.$SVC_DOCK:8080; }
    include $CONF_DIR/upstream-bg.conf;
    server {
        listen 80;
        location / {
            proxy_pass http://\$roll_imgctl;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_connect_timeout 2s;
        }
    }
    server {
        listen 81;
        location / {
            proxy_pass http://\$roll_docker;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_connect_timeout 2s;
        }
    }
    server {
        listen 82;
        location / {
            proxy_pass http://web;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_connect_timeout 2s;
        }
    }
}
EOF
  # Nothing listens on port 9: 502 until imgctl writes the blue/green upstream.
  echo 'upstream web { server 127.0.0.1:9; }' >"$BG_UPSTREAM"
  # The rolling services' proxy.upstream_file: their compose files carry the same proxy
  # section as blue/green's (as tests/it/deploy_swarm.rs does); a swarm rolling update never
  # writes it, and nginx does not include it.
  : >"$work/nginx/unused-roll.conf"
  : >"$work/nginx/unused-dock.conf"
}

declare -A port   # site -> host port of its nginx server
start_nginx() {
  local site cport i ready code
  write_nginx_conf
  quiet dk run -d --name "$NGINX_NAME" --network "$NET" \
    -p 127.0.0.1::80 -p 127.0.0.1::81 -p 127.0.0.1::82 \
    -v "$work/nginx:$CONF_DIR" "$PROXY_TAG"
  for site in roll:80 dock:81 bg:82; do
    cport=${site#*:}
    port[${site%:*}]=$(dk port "$NGINX_NAME" "$cport/tcp" | head -n 1 | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p')
    [[ -n ${port[${site%:*}]} ]] || die "nginx's port $cport is not published on 127.0.0.1: $(dk port "$NGINX_NAME")"
  done
  # docker-proxy accepts before nginx listens: wait for HTTP answers (502s) on every port.
  for ((i = 0; i < 200; i++)); do
    ready=1
    for site in roll dock bg; do
      code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[$site]}/" || true)
      [[ $code != 000 ]] || { ready=0; break; }
    done
    ((ready)) && return
    sleep 0.05
  done
  dk logs "$NGINX_NAME" >&2 || true
  cat "$work/nginx/error.log" >&2 || true
  die "nginx did not answer"
}
NGX_EXEC=("$DOCKER" exec "$NGINX_NAME" "$NGINX" -c "$CONF_DIR/nginx.conf")

# Diagnostics into the log (and BENCH_LOGS): what the engine's DNS inside the overlay answers
# for each service's tasks, and every task the services had.
diagnose() {
  local why=$1 svc
  {
    echo "=== $why ($(date -u +%H:%M:%S.%N))"
    for svc in "${ALL_SERVICES[@]}"; do
      echo "--- tasks.$svc"
      dk run --rm --network "$NET" "$(image v1)" /bin/busybox nslookup "tasks.$svc" 127.0.0.11 2>&1 | grep -v '^$' || true
      dk service ps --no-trunc --format '{{.ID}} {{.Name}} {{.Image}} desired={{.DesiredState}} {{.CurrentState}} {{.Error}}' "$svc" 2>&1 || true
    done
  } >>"$work/diagnostics.log" 2>&1
  [[ -z $BENCH_LOGS ]] || cp "$work/diagnostics.log" "$BENCH_LOGS/diagnostics.log"
}

# Before a measured run: nginx must serve WANT. Sets PRE_MS to how long it took to (0: at once);
# anything else is noted, with diagnostics, and waited for (up to 20 s).
precheck() {
  local site=$1 want=$2 got t0
  got=$(serving "$site")
  PRE_MS=0
  [[ $got != "$want" ]] || return 0
  t0=$EPOCHREALTIME
  note "  note: before the run nginx answers '$(head -c 60 <<<"$got" | tr '\n' ' ')' on $site, expected $want; waiting"
  diagnose "precheck $site: '$(head -c 60 <<<"$got" | tr '\n' ' ')', expected $want"
  await_serving "$site" "$want"
  PRE_MS=$(ms_since "$t0")
  note "  note: serving $want after $PRE_MS ms"
}

# --- the swarm, its network, nginx -----------------------------------------------------------------
swarm_join
quiet dk network create --driver overlay --attachable "$NET"
network_made=1
note "building the nginx image from $NGINX..."
build_proxy_image
start_nginx
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
note "nginx: imgctl rolling :${port[roll]}  docker rolling :${port[dock]}  imgctl blue/green :${port[bg]}"

# --- swarm services through the Engine API ----------------------------------------------------
# Prints one line for SERVICE: "STATE STARTED RUNNING_NEW WANTED" with STATE its
# UpdateStatus.State (- before any update), STARTED the update's start (epoch s, 0 if none),
# RUNNING_NEW the tasks meant to run that run an image ending in DIGEST, WANTED the tasks meant
# to run. A service that does not exist is "absent 0 0 0".
service_view() {
  local svc=$1 dig=$2 sj tj
  sj=$(api "$API/services/$svc" 2>/dev/null) || sj=''
  if [[ -z $sj ]] || ! jq -e '.ID' >/dev/null 2>&1 <<<"$sj"; then
    echo "absent 0 0 0"
    return
  fi
  tj=$(api -G "$API/tasks" --data-urlencode \
    "filters={\"service\":[\"$svc\"],\"desired-state\":[\"running\"]}" 2>/dev/null) || tj='[]'
  jq -rn --argjson s "$sj" --argjson t "$tj" --arg d "$dig" '
    ($t | if type == "array" then . else [] end) as $tasks
    | [($s.UpdateStatus.State // "-"),
       (($s.UpdateStatus.StartedAt // "1970-01-01T00:00:00Z") | sub("\\.[0-9]+"; "") | fromdateiso8601),
       ([$tasks[] | select(.Status.State == "running" and (.Spec.ContainerSpec.Image | endswith("@" + $d)))] | length),
       ($tasks | length)] | @tsv' 2>/dev/null || echo "error 0 0 0"
}

# Converged: SERVICE runs REPLICAS tasks of DIGEST and nothing else, and (when STATE is given)
# its update started at or after T0 (epoch s) and is in STATE.
rolling_converged() {
  local svc=$1 dig=$2 want=$3 t0=$4 state started new wanted
  read -r state started new wanted < <(service_view "$svc" "$dig")
  [[ $new == "$REPLICAS" && $wanted == "$REPLICAS" ]] || return 1
  [[ -z $want ]] || { [[ $state == "$want" ]] && ((started >= ${t0%.*})); }
}
# Blue/green converged: one color runs REPLICAS tasks of DIGEST, the other none.
bg_converged() {
  local dig=$1 a wa b wb
  read -r _ _ a wa < <(service_view "$SVC_BG-blue" "$dig")
  read -r _ _ b wb < <(service_view "$SVC_BG-green" "$dig")
  { [[ $a == "$REPLICAS" && $wa == "$REPLICAS" && $wb == 0 ]]; } ||
    { [[ $b == "$REPLICAS" && $wb == "$REPLICAS" && $wa == 0 ]]; }
}

# Tasks of SERVICE... that failed (or were rejected) at or after T0 (epoch s); their reasons
# go to the diagnostics log.
task_failures() {
  local t0=$1 svc tj n total=0
  shift
  for svc in "$@"; do
    tj=$(api -G "$API/tasks" --data-urlencode "filters={\"service\":[\"$svc\"]}" 2>/dev/null) || continue
    n=$(jq -r --argjson t0 "${t0%.*}" '[.[]? | select((.Status.State == "failed" or .Status.State == "rejected")
        and ((.Status.Timestamp | sub("\\.[0-9]+"; "") | fromdateiso8601) >= $t0))] | length' <<<"$tj" 2>/dev/null) || n=0
    if ((n > 0)); then
      jq -r --argjson t0 "${t0%.*}" --arg svc "$svc" '.[]? | select((.Status.State == "failed" or .Status.State == "rejected")
          and ((.Status.Timestamp | sub("\\.[0-9]+"; "") | fromdateiso8601) >= $t0))
          | "\($svc) task \(.ID[0:12]) slot \(.Slot) \(.Spec.ContainerSpec.Image | sub(".*@sha256:"; "") | .[0:12]) \(.Status.State) at \(.Status.Timestamp): \(.Status.Err // .Status.Message)"' \
        <<<"$tj" >>"$work/diagnostics.log" 2>/dev/null || true
    fi
    total=$((total + n))
  done
  echo "$total"
}

# Swarm's own end of SERVICE's last update: UpdateStatus.CompletedAt minus T0, in s (null if
# the update has not ended).
swarm_done_s() {
  local svc=$1 t0=$2 at
  at=$(api "$API/services/$svc" | jq -r '.UpdateStatus.CompletedAt // empty' 2>/dev/null) || at=''
  [[ -n $at ]] || { echo null; return; }
  at=$(date -d "$at" +%s.%N) || { echo null; return; }
  awk -v a="$t0" -v b="$at" 'BEGIN { printf "%.2f", b - a }'
}

ms_to_s() { [[ $1 == null ]] && echo null || awk -v m="$1" 'BEGIN { printf "%.2f", m / 1000 }'; }

# Polls (every 100 ms) until "$@" succeeds; writes the ms since T0 to FILE (null after the
# deadline). Runs in the background; POLL_PID.
start_converge_poller() {
  local file=$1 t0=$2
  shift 2
  (
    while :; do
      if "$@"; then ms_since "$t0" >"$file"; exit 0; fi
      if (($(ms_since "$t0") > (DEPLOY_MAX_S + 30) * 1000)); then echo null >"$file"; exit 0; fi
      sleep 0.1
    done
  ) &
  CONV_PID=$!
  bg_pids+=("$CONV_PID")
}
# First answer of version WANT through nginx, ms since T0 (its requests are not in wrk's).
start_traffic_poller() {
  local file=$1 t0=$2 site=$3 want=$4
  (
    while :; do
      if [[ $(curl -s -m 1 "$(url "$site" /)") == "$want" ]]; then ms_since "$t0" >"$file"; exit 0; fi
      if (($(ms_since "$t0") > (DEPLOY_MAX_S + 30) * 1000)); then echo null >"$file"; exit 0; fi
      sleep 0.02
    done
  ) &
  TRAFFIC_PID=$!
  bg_pids+=("$TRAFFIC_PID")
}
# Waits up to SECS for a poller's FILE; kills the poller; prints its value (null if none).
finish_poller() {
  local pid=$1 file=$2 secs=$3 i v
  for ((i = 0; i < secs * 20; i++)); do
    [[ -s $file ]] && break
    sleep 0.05
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  v=$(cat "$file" 2>/dev/null || true)
  echo "${v:-null}"
}

# --- load ---------------------------------------------------------------------------------------
# start_load MODE SITE, stop_load and parse_wrk FILE are in lib/deploy-peers.sh.
load_seq=0

# --- imgctl ---------------------------------------------------------------------------------------
# compose.yaml of one service: SITE SERVICE STRATEGY UPSTREAM_FILE [VERIFY_URL]
write_compose() {
  local site=$1 svc=$2 strategy=$3 upstream_file=$4 verify=${5:-} dir=$work/app-$1
  local test reload
  test=$(printf '"%s", ' "${NGX_EXEC[@]}" -t -q)
  reload=$(printf '"%s", ' "${NGX_EXEC[@]}" -s reload)
  mkdir -p "$dir"
  cat >"$dir/compose.yaml" <<EOF
services:
  $svc:
    image: $REPO:v1
    expose: ["8080"]
    healthcheck:
      # Exec form: the image has no shell.
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: $HEALTH_TIMEOUT
      retries: 2
    stop_grace_period: 2s
    deploy:
      replicas: $REPLICAS
      update_config: {parallelism: 1, delay: 0s, monitor: 3s, order: start-first, failure_action: rollback}
    x-imgctl:
      target: swarm
      strategy: $strategy
      swarm: {network: $NET, converge_timeout: 120s}
      health: {deadline: 90s}
      keep_warm: 1s
      drain: 1s
      proxy:
        upstream: web
        upstream_file: $upstream_file
        test: [${test%, }]
        reload: [${reload%, }]
EOF
  [[ -z $verify ]] || echo "        verify_url: $verify" >>"$dir/compose.yaml"
}

# imgctl SITE ARGS... (in the site's directory; output in $OUT.{json,err}) and
# imgctl_failed MESSAGE are in lib/deploy-peers.sh.
imgctl_seq=0
report_field() { jq -r --arg f "$1" '.[$f] // empty | tostring' "$OUT.json" 2>/dev/null || true; }

declare -A svc_of=([roll]=$SVC_ROLL [dock]=$SVC_DOCK [bg]=$SVC_BG)
# upstream_file is a host path: imgctl writes it, the container sees the mounted directory.
write_compose roll "$SVC_ROLL" rolling "$work/nginx/unused-roll.conf"
write_compose dock "$SVC_DOCK" rolling "$work/nginx/unused-dock.conf"
write_compose bg "$SVC_BG" blue-green "$BG_UPSTREAM" "$(url bg /health)"

# The services at v1, created by imgctl (untimed, no load). The docker case's service is made
# the same way from the same compose fields, so both rolling services have the same spec.
for site in roll dock bg; do
  note "creating ${svc_of[$site]} at v1 (imgctl, untimed)..."
  imgctl "$site" deploy "${svc_of[$site]}" --digest "${digest[v1]}" \
    || imgctl_failed "creating ${svc_of[$site]} at v1 failed"
  await_serving "$site" v1
done
spec_knobs() {
  api "$API/services/$1" | jq -cS '.Spec | {UpdateConfig, RollbackConfig, Mode,
    Healthcheck: .TaskTemplate.ContainerSpec.Healthcheck,
    StopGracePeriod: .TaskTemplate.ContainerSpec.StopGracePeriod,
    StopSignal: .TaskTemplate.ContainerSpec.StopSignal,
    Networks: [.TaskTemplate.Networks[]?.Target], EndpointSpec}'
}
KNOBS=$(spec_knobs "$SVC_ROLL")
[[ $KNOBS == "$(spec_knobs "$SVC_DOCK")" ]] \
  || die "the two rolling services differ: $KNOBS vs $(spec_knobs "$SVC_DOCK")"
echo "service spec (both rolling services): $KNOBS" >>"$LOG"

# --- results ------------------------------------------------------------------------------------
RESULTS=()   # one JSON object per run
ROWS=()      # one table row per run
dash() { [[ $1 == null || -z $1 ]] && echo - || echo "$1"; }
# record CASE TOOL MODE WALL_S SWARM_DONE_S CONVERGED_S FIRST_NEW_S SWITCH_MS TTT_MS TASK_FAILS EXIT STATE
record() {
  local case=$1 tool=$2 mode=$3 wall=$4 done_s=$5 conv=$6 first=$7 sw=$8 ttt=$9 fails=${10} rc=${11} \
    state=${12} keep
  if [[ -n $BENCH_LOGS ]]; then
    keep=$BENCH_LOGS/$(printf '%02d' "${#ROWS[@]}")-$tool-${case%% *}-$mode
    cp "$LOAD_OUT" "$keep.wrk.txt"
    cp "$OUT.json" "$keep.json" 2>/dev/null || true
    cp "$OUT.err" "$keep.err" 2>/dev/null || true
  fi
  ROWS+=("$(printf '%-20s | %-6s | %-10s | %6s | %6s | %7s | %11s | %6s | %6s | %6s | %7s | %6s | %6s | %5s | %s' \
    "$case" "$tool" "$mode" "$W_REQ" "$W_FAILED" "$W_NON2XX" \
    "$W_CONNECT/$W_READ/$W_WRITE/$W_TIMEOUT" "$wall" "$(dash "$done_s")" "$(dash "$conv")" \
    "$(dash "$first")" "$(dash "$sw")" "$(dash "$ttt")" "$fails" "exit $rc, $state")")
  RESULTS+=("$(printf '{"case": "%s", "tool": "%s", "mode": "%s", "requests": %s, "failed": %s, "non_2xx": %s, "socket_errors": {"connect": %s, "read": %s, "write": %s, "timeout": %s}, "load_s": %s, "p99_ms": %s, "wall_s": %s, "swarm_done_s": %s, "converged_s": %s, "first_new_s": %s, "switch_ms": %s, "time_to_traffic_ms": %s, "task_failures": %s, "precheck_wait_ms": %s, "exit": %s, "update_state": "%s", "reason": %s}' \
    "$case" "$tool" "$mode" "$W_REQ" "$W_FAILED" "$W_NON2XX" "$W_CONNECT" "$W_READ" "$W_WRITE" \
    "$W_TIMEOUT" "$W_SECS" "$W_P99_MS" "$wall" "$done_s" "$conv" "$first" "$sw" "$ttt" "$fails" \
    "$PRE_MS" "$rc" "$state" "$REASON")")
  note "  $tool $case ($mode): $W_REQ requests, $W_FAILED failed (non-2xx $W_NON2XX, socket c/r/w/t $W_CONNECT/$W_READ/$W_WRITE/$W_TIMEOUT), wall $wall s, swarm done $(dash "$done_s") s, converged $(dash "$conv") s, $fails task failures, exit $rc, $state"
}

# One measured update: CASE TOOL SITE MODE FROM TO [bad]
# TOOL imgctl: `imgctl deploy` (rolling or blue/green, from the site's compose file);
# TOOL docker: `docker service update --image` with the same update_config.
measured() {
  local case=$1 tool=$2 site=$3 mode=$4 from=$5 to=$6 bad=${7:-} svc=${svc_of[$3]}
  local t0 t1 rc=0 want_rc=0 conv first sw=null ttt=null state cond target=$6 reason
  local done_s=null fails services
  [[ -z $bad ]] || { want_rc=1 target=$from; }
  precheck "$site" "$from"
  start_load "$mode" "$site"
  sleep "$SETTLE"
  t0=$EPOCHREALTIME
  # What "converged" means: a rolling update completed (or, for the bad version, rolled back)
  # and all replicas run the expected digest; blue/green: one color runs them all, the other none.
  if [[ $site == bg ]]; then
    cond=(bg_converged "${digest[$to]}")
  elif [[ -n $bad ]]; then
    cond=(rolling_converged "$svc" "${digest[$from]}" rollback_completed "$t0")
  else
    cond=(rolling_converged "$svc" "${digest[$to]}" completed "$t0")
  fi
  start_converge_poller "$work/conv-$load_seq" "$t0" "${cond[@]}"
  [[ -n $bad ]] || start_traffic_poller "$work/first-$load_seq" "$t0" "$site" "$to"
  if [[ $tool == imgctl ]]; then
    imgctl "$site" deploy "$svc" --digest "${digest[$to]}" || rc=$?
  else
    OUT=$work/docker-$load_seq
    : >"$OUT.json"
    # `docker service update` waits for convergence by default (--detach=false).
    timeout "$DEPLOY_MAX_S" env PATH="$work/nobin" "$DOCKER" service update --image "$(image "$to")" \
      --update-parallelism 1 --update-delay 0s --update-monitor 3s \
      --update-order start-first --update-failure-action rollback "$svc" \
      >"$OUT.err" 2>&1 </dev/null || rc=$?
  fi
  t1=$EPOCHREALTIME
  conv=$(ms_to_s "$(finish_poller "$CONV_PID" "$work/conv-$load_seq" 60)")
  if [[ -z $bad ]]; then
    first=$(ms_to_s "$(finish_poller "$TRAFFIC_PID" "$work/first-$load_seq" 10)")
  else
    first=null
  fi
  sleep "$SETTLE"
  stop_load
  if ((rc != want_rc)) && [[ $tool == imgctl ]]; then
    imgctl_failed "$case ($mode): imgctl exited $rc, expected $want_rc"
  fi
  if [[ $tool == imgctl ]]; then
    sw=$(report_field switch_ms)
    ttt=$(report_field time_to_traffic_ms)
    reason=$(jq -c '.reason' "$OUT.json" 2>/dev/null || echo null)
  else
    # The CLI's own word on a rolled-back update (its exit status does not say).
    reason=$(grep -m 1 '^rollback:' "$OUT.err" | jq -R . || true)
  fi
  REASON=${reason:-null}
  if [[ $site == bg ]]; then
    state="color $(report_field color)"
    services=("$svc-blue" "$svc-green")
  else
    read -r state _ < <(service_view "$svc" "${digest[$target]}")
    done_s=$(swarm_done_s "$svc" "$t0")
    services=("$svc")
  fi
  fails=$(task_failures "$t0" "${services[@]}")
  ((fails == 0)) || diagnose "$case $tool $mode: $fails task(s) failed"
  await_serving "$site" "$target"
  parse_wrk "$LOAD_OUT"
  record "$case" "$tool" "$mode" "$(s_between "$t0" "$t1")" "$done_s" "$conv" "$first" \
    "${sw:-null}" "${ttt:-null}" "$fails" "$rc" "$state"
}

modes=(close)
((KEEPALIVE)) && modes+=(keep-alive)
declare -A step_from=([close]=v1 [keep-alive]=v2) step_to=([close]=v2 [keep-alive]=v3)
# The tools alternate which goes first from mode to mode, so drift on the machine (and which
# of them finds a version already pulled) hits both alike.
for mode in "${modes[@]}"; do
  f=${step_from[$mode]} t=${step_to[$mode]}
  note "rolling $f -> $t, $mode..."
  if [[ $mode == close ]]; then
    measured "1 rolling $f->$t" imgctl roll "$mode" "$f" "$t"
    measured "2 rolling $f->$t" docker dock "$mode" "$f" "$t"
  else
    measured "2 rolling $f->$t" docker dock "$mode" "$f" "$t"
    measured "1 rolling $f->$t" imgctl roll "$mode" "$f" "$t"
  fi
  note "blue/green $f -> $t, $mode..."
  measured "3 blue/green $f->$t" imgctl bg "$mode" "$f" "$t"
done
last=${step_to[${modes[-1]}]}
# The keep-alive runs leave the services on v3; with KEEPALIVE=0 on v2.
for mode in "${modes[@]}"; do
  note "bad version, $mode..."
  if [[ $mode == close ]]; then
    measured "4 bad, rolled back" imgctl roll "$mode" "$last" bad bad
    measured "4 bad, rolled back" docker dock "$mode" "$last" bad bad
  else
    measured "4 bad, rolled back" docker dock "$mode" "$last" bad bad
    measured "4 bad, rolled back" imgctl roll "$mode" "$last" bad bad
  fi
done

# --- report -------------------------------------------------------------------------------------
echo
printf '%-20s | %-6s | %-10s | %6s | %6s | %7s | %11s | %6s | %6s | %6s | %7s | %6s | %6s | %5s | %s\n' \
  case tool mode reqs failed non-2xx 'sock c/r/w/t' 'wall s' 'done s' 'conv s' '1st new' 'sw ms' 'ttt ms' 'task!' outcome
printf '%s\n' '---------------------+--------+------------+--------+--------+---------+-------------+--------+--------+--------+---------+--------+--------+-------+----------------------'
printf '%s\n' "${ROWS[@]}"
echo "(wrk -t$WRK_THREADS -c$WRK_CONNECTIONS through nginx over each update plus ${SETTLE} s before and after; failed = non-2xx + socket"
echo " errors; wall = the command's run time; done = swarm's UpdateStatus.CompletedAt, from the start; conv = until the"
echo " Engine API, polled every 100 ms, shows the update completed (bad: rolled back) and all $REPLICAS replicas on the expected"
echo " digest (blue/green: one color all, the other none); 1st new = first answer of the new version through nginx;"
echo " sw/ttt = imgctl's switch_ms and time_to_traffic_ms; task! = tasks that failed during the run (unhealthy, exit))"

mkdir -p "$BENCH_OUT"
json=$BENCH_OUT/deploy-swarm.json
{
  printf '{\n'
  printf '  "benchmark": "deploy-swarm",\n'
  printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '  "host": {"kernel": "%s", "cpus": %s, "loadavg_at_start": "%s", "loadavg_at_end": "%s"},\n' \
    "$(uname -sr)" "$(nproc)" "$LOADAVG_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf '  "tools": {"imgctl": "%s", "docker_engine": "%s", "docker_cli": "%s", "nginx": "%s", "wrk": "%s"},\n' \
    "$imgctl_bin" "$(dk version --format '{{.Server.Version}}' 2>/dev/null)" \
    "$(dk version --format '{{.Client.Version}}' 2>/dev/null)" \
    "$("$NGINX" -v 2>&1 | sed 's|.*nginx/||')" "$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
  printf '  "method": "single-node swarm on loopback, %s replicas; wrk -t%s -c%s against nginx (a container on the overlay network, tasks.NAME resolved per request for the rolling services) for the whole of each update plus %s s before and after; failed = non-2xx + socket errors; converged_s from the Engine API (UpdateStatus and the tasks meant to run), polled every 100 ms",\n' \
    "$REPLICAS" "$WRK_THREADS" "$WRK_CONNECTIONS" "$SETTLE"
  printf '  "health_timeout": "%s",\n' "$HEALTH_TIMEOUT"
  printf '  "service_spec": %s,\n' "$KNOBS"
  printf '  "runs": [\n'
  sep=''
  for r in "${RESULTS[@]}"; do
    printf '%s    %s' "$sep" "$r"
    sep=$',\n'
  done
  printf '\n  ]\n'
  printf '}\n'
} >"$json"
jq -e . "$json" >/dev/null || die "wrote invalid JSON to $json"
echo "results: $json"
