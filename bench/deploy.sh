#!/usr/bin/env bash
# Failed requests during deploys: `imgctl deploy` side by side, in one run, with the two
# procedures people script by hand, all behind the same nginx on loopback, with the same
# busybox httpd images from a throwaway docker-registry, under the same wrk load.
#
# Cases (each run twice, one deploy per load mode: wrk with `Connection: close`, then wrk
# with keep-alive, its default):
#   1  imgctl blue/green, 2 replicas             v1 -> v2, then v2 -> v3
#   2  imgctl rolling, 4 replicas, update_config parallelism 1, start-first
#   3  imgctl canary, steps 10% (2s), 50% (2s), then 100%
#   4  imgctl, a bad version (no /health): the health gate fails, exit 1, traffic stays
#   5  imgctl rollback after a good deploy (then the rollback of the rollback)
#   A  recreate, what `docker compose up -d` does on a new image: `docker rm -f` the old
#      container, `docker run -d -p 127.0.0.1:P:8080` the new one on the same host port
#   B  hand-run nginx switch: `docker run` the new container on a new port, rewrite the
#      upstream at once, `nginx -s reload`, `docker rm -f` the old one (no gate, no drain)
#
# Targets: imgctl 0 failed requests with `Connection: close` in every case, the bad version
# included; imgctl's switch under 1000 ms. Keep-alive figures are reported as measured.
#
# Environment:
#   WRK_THREADS=2       wrk threads
#   WRK_CONNECTIONS=8   wrk connections
#   SETTLE=1            seconds of load before and after each deploy
#   IMGCTL=PATH         imgctl binary (default: target/release/imgctl, built with cargo if missing)
#   BENCH_OUT=/tmp      directory for deploy.json
#   BENCH_LOGS=DIR      also keep each measured run's wrk report and imgctl output there
#   BENCH_ENFORCE=1     exit 1 when a target is missed (default: report only)
#
# The registry, nginx, HOME, imgctl's state and the docker config live in one throwaway
# directory; on exit the containers and images of this run are removed from the engine and
# the registry and nginx this script started are stopped.
set -euo pipefail
# EPOCHREALTIME uses the locale's decimal separator; the timing arithmetic needs a dot.
export LC_ALL=C

WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-8}
SETTLE=${SETTLE:-1}
BENCH_OUT=${BENCH_OUT:-/tmp}
BENCH_ENFORCE=${BENCH_ENFORCE:-0}
BENCH_LOGS=${BENCH_LOGS:-}
SWITCH_TARGET_MS=1000
# Upper bounds, so nothing here can hang: one wrk run, one deploy or peer procedure.
WRK_MAX_S=240
DEPLOY_MAX_S=180

# die, note, the dependencies, the throwaway directory, registry, images and wrk load.
BENCH_NAME=deploy
# shellcheck source=lib/deploy-peers.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/deploy-peers.sh"

check_settings

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- dependencies: install only what is missing ------------------------------------------
have docker || die "docker is needed (Debian: docker.io), with a running engine"
install_deps   # sets NGINX, BUSYBOX, DOCKER
docker info >/dev/null 2>&1 || die "the Docker Engine does not answer (docker info)"

# --- imgctl ---------------------------------------------------------------------------------
find_imgctl   # sets imgctl_bin

[[ -z $BENCH_LOGS ]] || mkdir -p "$BENCH_LOGS"

# --- throwaway directory, names, cleanup -----------------------------------------------------
# work, run_id, LOG, and prefix=imgctl-bench-RUNID: every container, service and upstream of
# this run.
make_work imgctl-bench-deploy

registry_pid='' nginx_pid='' REPO=''

stop_nginx() {
  local sig i
  [[ -n $nginx_pid ]] || return 0
  # QUIT is a graceful stop, TERM a fast one; KILL of the master alone would leave workers.
  for sig in QUIT TERM; do
    kill -"$sig" "$nginx_pid" 2>/dev/null || break
    for ((i = 0; i < 100; i++)); do
      kill -0 "$nginx_pid" 2>/dev/null || break 2
      sleep 0.05
    done
  done
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=''
}

bg_pids=()   # wrk runs and pollers still going
cleanup() {
  local pid ids refs
  for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # By name (imgctl names replicas SERVICE-COLOR-N, and every service here is $prefix-...;
  # docker's name filter matches a part of the name).
  ids=$(dk ps -aq --filter "name=$prefix-" 2>/dev/null || true)
  [[ -z $ids ]] || dk rm -f $ids >/dev/null 2>&1 || true
  # By reference, never by image ID, so an image someone else holds under another name stays.
  if [[ -n $REPO ]]; then
    refs=$(repo_refs)
    [[ -z $refs ]] || dk rmi -f $refs >/dev/null 2>&1 || true
  fi
  stop_nginx
  if [[ -n $BENCH_LOGS && -f $work/nginx/error.log ]]; then
    cp "$work/nginx/error.log" "$BENCH_LOGS/nginx-error.log" || true
  fi
  stop_registry
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Loopback only; HOME, DOCKER_CONFIG and imgctl's state in $work; IMGCTL_ACTOR=bench/deploy.sh.
private_env
# free_port: fixed ports from below the kernel's ephemeral range.
init_ports

# --- registry ---------------------------------------------------------------------------------
start_registry
REPO=$REGISTRY/$prefix/web
note "registry: $REGISTRY"

# --- images: busybox httpd serving its version -------------------------------------------------
declare -A digest   # version -> sha256:...
build_images   # v1, v2, v3, bad; image VERSION prints REPO@DIGEST

# Removes every container of a case and every bench image from the engine, so that the next
# case's deploys pull as the first one's did.
reset_engine() {
  local ids refs
  ids=$(dk ps -aq --filter "name=$prefix-")
  [[ -z $ids ]] || quiet dk rm -f $ids
  refs=$(repo_refs)
  [[ -z $refs ]] || quiet dk rmi -f $refs
}

# --- nginx: one master, one server block per case ---------------------------------------------
# Each case gets its own upstream (a service of its own for imgctl, one per peer procedure), its
# own upstream file and its own port, all in the same nginx.
SITES=(bluegreen rolling canary bad rollback recreate handrun)
declare -A port upstream_file
ngx_dir=$work/nginx
ngx_conf=$ngx_dir/nginx.conf
NGX=("$NGINX" -p "$ngx_dir" -c "$ngx_conf")
mkdir -p "$ngx_dir"
service() { echo "$prefix-$1"; }

write_nginx_conf() {
  local site user=''
  ((EUID != 0)) || user='user root;'
  {
    cat <<EOF
# Written by bench/deploy.sh.
daemon off;
master_process on;
worker_processes 2;
$user
pid $ngx_dir/nginx.pid;
lock_file $ngx_dir/nginx.lock;
error_log $ngx_dir/error.log notice;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $ngx_dir/client_body;
    proxy_temp_path $ngx_dir/proxy;
    fastcgi_temp_path $ngx_dir/fastcgi;
    uwsgi_temp_path $ngx_dir/uwsgi;
    scgi_temp_path $ngx_dir/scgi;
EOF
    for site in "${SITES[@]}"; do
      cat <<EOF
    include ${upstream_file[$site]};
    server {
        listen 127.0.0.1:${port[$site]};
        location / {
            proxy_pass http://$(service "$site");
            proxy_next_upstream error timeout http_502 http_503;
            proxy_connect_timeout 2s;
        }
    }
EOF
    done
    echo '}'
  } >"$ngx_conf"
}

start_nginx() {
  local attempt site i ready
  for ((attempt = 0; attempt < 5; attempt++)); do
    for site in "${SITES[@]}"; do
      port[$site]=$(free_port)
      upstream_file[$site]=$ngx_dir/upstream-$site.conf
      # Nothing listens on port 9: 502 until a deploy writes real servers.
      echo "upstream $(service "$site") { server 127.0.0.1:9; }" >"${upstream_file[$site]}"
    done
    write_nginx_conf
    : >"$ngx_dir/error.log"
    "${NGX[@]}" </dev/null >/dev/null 2>"$ngx_dir/stderr.log" &
    nginx_pid=$!
    for ((i = 0; i < 100; i++)); do
      kill -0 "$nginx_pid" 2>/dev/null || break
      ready=1
      for site in "${SITES[@]}"; do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[$site]}/") == 502 ]] \
          || { ready=0; break; }
      done
      ((ready)) && return
      sleep 0.1
    done
    stop_nginx
  done
  cat "$ngx_dir/error.log" "$ngx_dir/stderr.log" >&2
  die "nginx did not start"
}

start_nginx
note "nginx: $(for s in "${SITES[@]}"; do printf '%s :%s  ' "$s" "${port[$s]}"; done)"

# url SITE PATH, serving SITE, expect_serving SITE WANT and await_serving SITE WANT (up to
# AWAIT_SERVING_S, 10 s by default) are in lib/deploy-peers.sh.

# --- load ---------------------------------------------------------------------------------------
# start_load MODE SITE, stop_load and parse_wrk FILE are in lib/deploy-peers.sh.
load_seq=0

# --- results ------------------------------------------------------------------------------------
RESULTS=()   # one JSON object per run
ROWS=()      # one table row per run
# record CASE TOOL MODE SWITCH_MS TTT_MS WALL_S OUTCOME
record() {
  local case=$1 tool=$2 mode=$3 sw=$4 ttt=$5 wall=$6 outcome=$7 keep
  if [[ -n $BENCH_LOGS ]]; then
    keep=$BENCH_LOGS/$(printf '%02d' "${#ROWS[@]}")-$tool-${case%% *}-$mode
    cp "$LOAD_OUT" "$keep.wrk.txt"
    if [[ $tool == imgctl ]]; then
      cp "$OUT.json" "$keep.json"
      cp "$OUT.err" "$keep.err"
    fi
  fi
  local dash_sw=${sw/null/-} dash_ttt=${ttt/null/-}
  ROWS+=("$(printf '%-24s | %-8s | %-10s | %8s | %6s | %7s | %27s | %9s | %8s | %6s | %s' \
    "$case" "$tool" "$mode" "$W_REQ" "$W_FAILED" "$W_NON2XX" \
    "$W_CONNECT/$W_READ/$W_WRITE/$W_TIMEOUT" "$dash_sw" "$dash_ttt" "$wall" "$outcome")")
  RESULTS+=("$(printf '{"case": "%s", "tool": "%s", "mode": "%s", "requests": %s, "failed": %s, "non_2xx": %s, "socket_errors": {"connect": %s, "read": %s, "write": %s, "timeout": %s}, "load_s": %s, "p99_ms": %s, "switch_ms": %s, "time_to_traffic_ms": %s, "wall_s": %s, "outcome": "%s"}' \
    "$case" "$tool" "$mode" "$W_REQ" "$W_FAILED" "$W_NON2XX" "$W_CONNECT" "$W_READ" "$W_WRITE" \
    "$W_TIMEOUT" "$W_SECS" "$W_P99_MS" "$sw" "$ttt" "$wall" "$outcome")")
  note "  $tool $case ($mode): $W_REQ requests, $W_FAILED failed (non-2xx $W_NON2XX, socket c/r/w/t $W_CONNECT/$W_READ/$W_WRITE/$W_TIMEOUT), switch ${dash_sw} ms, traffic ${dash_ttt} ms, wall ${wall} s, $outcome"
}

# --- imgctl -------------------------------------------------------------------------------------
# compose.yaml of one case: SITE REPLICAS [DEPLOY_KEYS] [X_IMGCTL_KEYS] [HEALTH_DEADLINE]
write_compose() {
  local site=$1 replicas=$2 deploy_keys=${3:-} extension=${4:-} deadline=${5:-20s} dir=$work/app-$1
  mkdir -p "$dir"
  cat >"$dir/compose.yaml" <<EOF
services:
  $(service "$site"):
    image: $REPO:v1
    expose: ["8080"]
    # busybox httpd as PID 1 ignores SIGTERM; it is out of traffic when it is stopped.
    stop_signal: SIGKILL
    deploy:
      replicas: $replicas
$deploy_keys
    x-imgctl:
      health: {path: /health, interval: 200ms, healthy_threshold: 2, deadline: $deadline}
      keep_warm: 1s
      drain: 500ms
      proxy:
        upstream_file: ${upstream_file[$site]}
        test: [$NGINX, -t, -q, -p, $ngx_dir, -c, $ngx_conf]
        reload: [$NGINX, -p, $ngx_dir, -c, $ngx_conf, -s, reload]
        verify_url: $(url "$site" /health)
$extension
EOF
}

# imgctl SITE ARGS... (in the site's directory; output in $OUT.{json,err}) and
# imgctl_failed MESSAGE are in lib/deploy-peers.sh.
imgctl_seq=0
# A top-level field of imgctl's pretty-printed JSON report.
report_field() {
  sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$OUT.json"
}

# An untimed deploy without load, to set a case up.
imgctl_setup() {
  local site=$1 version=$2
  imgctl "$site" deploy "$(service "$site")" --digest "${digest[$version]}" \
    || imgctl_failed "setting up $site: deploy $version failed"
  await_serving "$site" "$version"
}

# One measured imgctl run: CASE SITE MODE EXPECTED_EXIT SERVES_BEFORE SERVES_AFTER ARGS...
imgctl_measured() {
  local case=$1 site=$2 mode=$3 want_rc=$4 before=$5 after=$6 rc=0 t0 t1 sw ttt outcome
  shift 6
  expect_serving "$site" "$before"
  start_load "$mode" "$site"
  sleep "$SETTLE"
  t0=$EPOCHREALTIME
  imgctl "$site" "$@" || rc=$?
  t1=$EPOCHREALTIME
  sleep "$SETTLE"
  stop_load
  ((rc == want_rc)) || imgctl_failed "$case ($mode): imgctl $* exited $rc, expected $want_rc"
  expect_serving "$site" "$after"
  parse_wrk "$LOAD_OUT"
  sw=$(report_field switch_ms)
  ttt=$(report_field time_to_traffic_ms)
  outcome=$(report_field outcome)
  record "$case" imgctl "$mode" "${sw:-null}" "${ttt:-null}" "$(s_between "$t0" "$t1")" "${outcome:-?}"
}

note "case 1: imgctl blue/green, 2 replicas..."
write_compose bluegreen 2
imgctl_setup bluegreen v1
svc=$(service bluegreen)
imgctl_measured "1 blue/green v1->v2" bluegreen close 0 v1 v2 deploy "$svc" --digest "${digest[v2]}"
imgctl_measured "1 blue/green v2->v3" bluegreen keep-alive 0 v2 v3 deploy "$svc" --digest "${digest[v3]}"
reset_engine

note "case 2: imgctl rolling, 4 replicas..."
write_compose rolling 4 \
  "      update_config: {parallelism: 1, delay: 200ms, monitor: 1s, order: start-first, failure_action: rollback}" \
  "      strategy: rolling"
imgctl_setup rolling v1
svc=$(service rolling)
imgctl_measured "2 rolling x4 v1->v2" rolling close 0 v1 v2 deploy "$svc" --digest "${digest[v2]}"
imgctl_measured "2 rolling x4 v2->v3" rolling keep-alive 0 v2 v3 deploy "$svc" --digest "${digest[v3]}"
reset_engine

note "case 3: imgctl canary 10% / 50% / 100%..."
write_compose canary 2 "" \
  "      strategy: canary
      canary:
        steps: [{weight: 10, pause: 2s}, {weight: 50, pause: 2s}]"
imgctl_setup canary v1
svc=$(service canary)
imgctl_measured "3 canary v1->v2" canary close 0 v1 v2 deploy "$svc" --digest "${digest[v2]}"
imgctl_measured "3 canary v2->v3" canary keep-alive 0 v2 v3 deploy "$svc" --digest "${digest[v3]}"
reset_engine

note "case 4: imgctl, a bad version..."
# The gate gives up after 4 s instead of 20 s; the bad version never answers /health.
write_compose bad 2 "" "" 4s
imgctl_setup bad v1
svc=$(service bad)
imgctl_measured "4 bad version, v1 stays" bad close 1 v1 v1 deploy "$svc" --digest "${digest[bad]}"
imgctl_measured "4 bad version, v1 stays" bad keep-alive 1 v1 v1 deploy "$svc" --digest "${digest[bad]}"
reset_engine

note "case 5: imgctl rollback..."
write_compose rollback 2
imgctl_setup rollback v1
imgctl_setup rollback v2
svc=$(service rollback)
imgctl_measured "5 rollback v2->v1" rollback close 0 v2 v1 rollback "$svc"
imgctl_measured "5 rollback v1->v2" rollback keep-alive 0 v1 v2 rollback "$svc"
reset_engine

# --- peers --------------------------------------------------------------------------------------
# Time to traffic for a peer: a poller through nginx from the start of the procedure until the
# first answer with the new version (the poller's own requests are not in wrk's counts).
start_poller() {
  local site=$1 want=$2 t0=$3
  POLL_OUT=$work/poll-$((++load_seq))
  (
    while :; do
      if [[ $(curl -s -m 1 "$(url "$site" /)") == "$want" ]]; then
        ms_since "$t0" >"$POLL_OUT"
        exit 0
      fi
      if (($(ms_since "$t0") > DEPLOY_MAX_S * 1000)); then echo null >"$POLL_OUT"; exit 0; fi
      sleep 0.01
    done
  ) &
  POLL_PID=$!
  bg_pids+=("$POLL_PID")
}
stop_poller() {
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s $POLL_OUT ]] && break
    sleep 0.05
  done
  kill "$POLL_PID" 2>/dev/null || true
  wait "$POLL_PID" 2>/dev/null || true
  POLL_MS=$(cat "$POLL_OUT" 2>/dev/null || true)
  POLL_MS=${POLL_MS:-null}
}

reload_nginx() {
  "$NGINX" -p "$ngx_dir" -c "$ngx_conf" -s reload
}
point_upstream() {
  echo "upstream $(service "$1") { server $2; }" >"${upstream_file[$1]}"
}

# A: recreate on the fixed host port, as `docker compose up -d` does when the image changed:
# pull, then remove the old container and run the new one.
recreate_port=''
recreate_name=$(service recreate)
recreate_to() {
  local version=$1 old
  quiet dk pull "$(image "$version")"
  old=$(dk ps -aq --filter "name=$recreate_name")
  SW_T0=$EPOCHREALTIME
  [[ -z $old ]] || quiet dk rm -f "$recreate_name"
  quiet dk run -d --name "$recreate_name" --stop-signal SIGKILL \
    -p "127.0.0.1:$recreate_port:8080" "$(image "$version")"
  SW_MS=$(ms_since "$SW_T0")
}

# B: the hand-run switch: the new container on a new port, the upstream rewritten at once,
# nginx reloaded, the old container removed.
handrun_current=''
handrun_to() {
  local version=$1 name addr
  name=$(service handrun)-$version
  quiet dk pull "$(image "$version")"
  quiet dk run -d --name "$name" --stop-signal SIGKILL -p 127.0.0.1::8080 "$(image "$version")"
  addr=$(dk port "$name" 8080/tcp | head -n 1)
  SW_T0=$EPOCHREALTIME
  point_upstream handrun "$addr"
  reload_nginx >>"$LOG" 2>&1
  SW_MS=$(ms_since "$SW_T0")
  [[ -z $handrun_current ]] || quiet dk rm -f "$handrun_current"
  handrun_current=$name
}

# One measured peer run: CASE SITE MODE FROM TO
peer_measured() {
  local case=$1 site=$2 mode=$3 from=$4 to=$5 t0 t1
  expect_serving "$site" "$from"
  start_load "$mode" "$site"
  sleep "$SETTLE"
  t0=$EPOCHREALTIME
  start_poller "$site" "$to" "$t0"
  "${site}_to" "$to"
  t1=$EPOCHREALTIME
  stop_poller
  sleep "$SETTLE"
  stop_load
  await_serving "$site" "$to"
  parse_wrk "$LOAD_OUT"
  record "$case" "$site" "$mode" "$SW_MS" "$POLL_MS" "$(s_between "$t0" "$t1")" done
}

note "peer A: recreate on the same host port..."
# The host port is picked now, retried if someone else took it meanwhile.
for ((attempt = 0; ; attempt++)); do
  recreate_port=$(free_port)
  dk pull "$(image v1)" >>"$LOG" 2>&1
  dk run -d --name "$recreate_name" --stop-signal SIGKILL -p "127.0.0.1:$recreate_port:8080" \
    "$(image v1)" >>"$LOG" 2>&1 && break
  dk rm -f "$recreate_name" >>"$LOG" 2>&1 || true
  ((attempt < 5)) || { tail -n 20 "$LOG" >&2; die "could not run the recreate container"; }
done
point_upstream recreate "127.0.0.1:$recreate_port"
reload_nginx >>"$LOG" 2>&1
await_serving recreate v1
peer_measured "A recreate v1->v2" recreate close v1 v2
peer_measured "A recreate v2->v3" recreate keep-alive v2 v3
reset_engine

note "peer B: hand-run nginx switch..."
handrun_to v1
await_serving handrun v1
peer_measured "B hand switch v1->v2" handrun close v1 v2
peer_measured "B hand switch v2->v3" handrun keep-alive v2 v3
reset_engine

# --- report -------------------------------------------------------------------------------------
echo
printf '%-24s | %-8s | %-10s | %8s | %6s | %7s | %27s | %9s | %8s | %6s | %s\n' \
  case tool mode requests failed non-2xx 'socket connect/read/wr/tmo' 'switch ms' 'ttt ms' 'wall s' outcome
printf '%s\n' '-------------------------+----------+------------+----------+--------+---------+-----------------------------+-----------+----------+--------+----------'
printf '%s\n' "${ROWS[@]}"
echo "(failed = non-2xx + socket errors, from wrk -t$WRK_THREADS -c$WRK_CONNECTIONS over each deploy plus ${SETTLE} s before and after;"
echo " ttt = time to traffic: imgctl's time_to_traffic_ms (health gates excluded); for the peers, from the start"
echo " of the procedure to the first answer of the new version through nginx; peers pull first, as compose does)"
echo

# Targets.
close_failed=0 switch_max=0 switch_ok=yes close_ok=yes
for r in "${RESULTS[@]}"; do
  [[ $r == *'"tool": "imgctl"'* ]] || continue
  f=$(sed -n 's/.*"failed": \([0-9]*\).*/\1/p' <<<"$r")
  s=$(sed -n 's/.*"switch_ms": \([0-9]*\|null\).*/\1/p' <<<"$r")
  if [[ $r == *'"mode": "close"'* ]]; then close_failed=$((close_failed + f)); fi
  if [[ $s != null ]]; then
    ((s <= switch_max)) || switch_max=$s
    ((s < SWITCH_TARGET_MS)) || switch_ok=no
  fi
done
((close_failed == 0)) || close_ok=no
verdict() { [[ $1 == yes ]] && echo PASS || echo FAIL; }
echo "$(verdict $close_ok): imgctl 0 failed requests with Connection: close in every case ($close_failed failed)"
echo "$(verdict $switch_ok): imgctl switch under $SWITCH_TARGET_MS ms (highest ${switch_max} ms)"

mkdir -p "$BENCH_OUT"
json=$BENCH_OUT/deploy.json
json_bool() { [[ $1 == yes ]] && echo true || echo false; }
{
  printf '{\n'
  printf '  "benchmark": "deploy",\n'
  printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '  "host": {"kernel": "%s", "cpus": %s},\n' "$(uname -sr)" "$(nproc)"
  printf '  "tools": {"imgctl": "%s", "docker": "%s", "nginx": "%s", "wrk": "%s"},\n' "$imgctl_bin" \
    "$(dk version --format '{{.Server.Version}}' 2>/dev/null)" \
    "$("$NGINX" -v 2>&1 | sed 's|.*nginx/||')" "$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
  printf '  "method": "wrk -t%s -c%s against nginx on loopback for the whole of each deploy plus %s s before and after, once with Connection: close and once with keep-alive (one deploy each); failed = non-2xx + socket errors; busybox httpd images pulled from a docker-registry on loopback",\n' \
    "$WRK_THREADS" "$WRK_CONNECTIONS" "$SETTLE"
  printf '  "runs": [\n'
  sep=''
  for r in "${RESULTS[@]}"; do
    printf '%s    %s' "$sep" "$r"
    sep=$',\n'
  done
  printf '\n  ],\n'
  printf '  "targets": {"imgctl_close_failed": %s, "imgctl_close_zero_failed": %s, "switch_target_ms": %s, "imgctl_switch_max_ms": %s, "switch_met": %s}\n' \
    "$close_failed" "$(json_bool $close_ok)" "$SWITCH_TARGET_MS" "$switch_max" "$(json_bool $switch_ok)"
  printf '}\n'
} >"$json"
echo "results: $json"

if [[ $BENCH_ENFORCE == 1 && ($close_ok == no || $switch_ok == no) ]]; then
  die "target missed"
fi
