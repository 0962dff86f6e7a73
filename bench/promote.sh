#!/usr/bin/env bash
# `imgctl promote` side by side with `skopeo copy --all --preserve-digests`, in one run, on the
# same images, between two throwaway docker-registry instances on loopback.
#
# Scenarios (median wall time of REPS runs per tool, the tools interleaved):
#   1  cross-registry, one platform, 8 layers of LAYER_MB MiB
#   2  cross-registry, two-platform OCI index, 4 layers of LAYER_MB MiB per platform
#   3  same registry, into another repository (imgctl can mount; skopeo copies)
#   4  everything already at the destination (second promote to the same repository and tag)
#   5  MANY_IMAGES small images (2 layers of MANY_LAYER_MB MiB) from one promoter manifest:
#      `imgctl promote --file` against a loop of `skopeo copy`, the way CI scripts it
#   6  one BIG_LAYER_MB MiB layer, cross-registry: peak RSS (and wall time)
#
# Targets: imgctl never slower than skopeo; at most 0.7x skopeo's wall time on 2 and 5;
# imgctl peak RSS under 64 MiB on 6.
#
# Environment:
#   REPS=7              timed runs per tool and scenario (1-5)
#   WARMUP=1            untimed (but verified) rounds per scenario before the timed ones
#   LAYER_MB=4          layer size of scenarios 1-4
#   MANY_IMAGES=20      images in scenario 5
#   MANY_LAYER_MB=1     layer size of scenario 5
#   BIG_LAYER_MB=1024   the single layer of scenario 6 (0 skips the scenario)
#   BIG_REPS=3          runs per tool of scenario 6
#   IMGCTL=PATH         imgctl binary (default: target/release/imgctl, built with cargo if missing)
#   BENCH_OUT=/tmp      directory for promote.json
#   BENCH_ENFORCE=1     exit 1 when a target is missed (default: report only)
#
# Registries, images, the tools' state and skopeo's blob-info cache all live in one throwaway
# directory that is removed on exit, with the registries this script started.
set -euo pipefail
# EPOCHREALTIME uses the locale's decimal separator; the timing arithmetic needs a dot.
export LC_ALL=C

REPS=${REPS:-7}
WARMUP=${WARMUP:-1}
LAYER_MB=${LAYER_MB:-4}
MANY_IMAGES=${MANY_IMAGES:-20}
MANY_LAYER_MB=${MANY_LAYER_MB:-1}
BIG_LAYER_MB=${BIG_LAYER_MB:-1024}
BIG_REPS=${BIG_REPS:-3}
BENCH_OUT=${BENCH_OUT:-/tmp}
BENCH_ENFORCE=${BENCH_ENFORCE:-0}
RSS_TARGET_MIB=64
RATIO_TARGET=0.7

die() { echo "promote: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
note() { echo "$*" >&2; }

for v in REPS LAYER_MB MANY_IMAGES MANY_LAYER_MB; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
for v in WARMUP BIG_LAYER_MB BIG_REPS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, not '${!v}'"
done
((MANY_IMAGES <= 999)) || die "MANY_IMAGES must be at most 999"
[[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 or newer is needed (no \$EPOCHREALTIME)"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- dependencies: install only what is missing ------------------------------------------
missing=()
have skopeo || missing+=(skopeo)
have docker-registry || missing+=(docker-registry)
have curl || missing+=(curl)
# bash's `time` keyword cannot report memory; GNU time reads the child's rusage.
[[ -x /usr/bin/time ]] || missing+=(time)
if ((${#missing[@]})); then
  note "installing: ${missing[*]}"
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

# --- imgctl ---------------------------------------------------------------------------------
if [[ -n ${IMGCTL:-} ]]; then
  imgctl_bin=$(realpath -m "$IMGCTL")
else
  imgctl_bin=${CARGO_TARGET_DIR:-$repo/target}/release/imgctl
  if [[ ! -x $imgctl_bin ]]; then
    note "building $imgctl_bin"
    (cd "$repo" && cargo build --release --bin imgctl)
  fi
fi
[[ -x $imgctl_bin ]] || die "no executable imgctl at $imgctl_bin"
"$imgctl_bin" promote --help >/dev/null 2>&1 || die "$imgctl_bin has no promote command (stale build?)"
case $imgctl_bin in
  */debug/*) note "promote: warning: $imgctl_bin is a debug build; its numbers mean little" ;;
esac

# --- throwaway work directory and registries -------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/imgctl-promote-bench.XXXXXX")
registry_pids=()
cleanup() {
  local pid
  for pid in "${registry_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${registry_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

LOG=$work/run.log
: >"$LOG"
# Everything here talks to loopback only; a proxy from the caller's environment would be
# timed too (Go skips proxies for loopback, other HTTP stacks may not).
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
# Credentials or settings from the caller would change what either tool does.
unset DOCKER_CONFIG DOCKER_AUTH_CONFIG REGISTRY_AUTH_FILE CONTAINERS_REGISTRIES_CONF \
  IMGCTL_BACKEND IMGCTL_PASSPHRASE IMGCTL_ACTOR IMGCTL_AUDIT_LOG

# Starts docker-registry without auth on a free loopback port; prints host:port. Ports are
# picked at random and retried: one taken between the check and the bind makes the registry
# exit, which is seen below.
start_registry() {
  local name=$1 dir=$work/registry-$1 attempt port pid i
  mkdir -p "$dir/data"
  for ((attempt = 0; attempt < 20; attempt++)); do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
EOF
    docker-registry serve "$dir/config.yml" >>"$dir/log" 2>&1 &
    pid=$!
    registry_pids+=("$pid")
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
        kill -0 "$pid" 2>/dev/null || break
        echo "127.0.0.1:$port"
        return
      fi
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
  done
  cat "$dir/log" >&2
  die "could not start the $name registry"
}
# Not in $(...): the pids must land in this shell's registry_pids for the trap.
start_registry source >"$work/addr" && SRC=$(<"$work/addr")
start_registry destination >"$work/addr" && DST=$(<"$work/addr")
note "registries: source $SRC, destination $DST"

# --- per-run state ----------------------------------------------------------------------------
# Each timed run gets a new, empty HOME and XDG tree: no credentials, no audit log history,
# and, above all, no skopeo blob-info cache. That cache remembers where blobs were seen and
# lets skopeo mount or skip them on later copies, which would time the cache, not the copy.
# skopeo 1.9 has no option for the cache's path; for root it is always
# /var/lib/containers/cache, for everyone else under XDG_DATA_HOME. _CONTAINERS_ROOTLESS_UID
# (the variable podman sets for its re-exec) makes containers/image take the rootless path,
# so root's own cache is never touched either. Checked once below, after the first copy.
bic_uid=$((EUID == 0 ? 65534 : EUID))
home_seq=0
new_home() {
  HOME_DIR=$work/homes/$((++home_seq))
  mkdir -p "$HOME_DIR"/{config,share,state,cache,run}
  chmod 700 "$HOME_DIR/run"
  FENV=(HOME="$HOME_DIR" XDG_CONFIG_HOME="$HOME_DIR/config" XDG_DATA_HOME="$HOME_DIR/share"
    XDG_STATE_HOME="$HOME_DIR/state" XDG_CACHE_HOME="$HOME_DIR/cache"
    XDG_RUNTIME_DIR="$HOME_DIR/run" _CONTAINERS_ROOTLESS_UID="$bic_uid"
    IMGCTL_CONFIG_DIR="$HOME_DIR/imgctl/config" IMGCTL_DATA_DIR="$HOME_DIR/imgctl/data"
    IMGCTL_AUDIT_LOG="$HOME_DIR/audit.jsonl")
}
drop_home() { rm -rf "$HOME_DIR"; }

# Runs a command, its output into the log; on failure shows the log's tail and stops.
quiet() {
  "$@" >>"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; die "failed: $*"; }
}

# Verification has a home of its own, so it never feeds a timed run's cache.
new_home
INSPECT_ENV=("${FENV[@]}") INSPECT_HOME=$HOME_DIR
# Prints the sha256 hex of the manifest at docker://REF, byte for byte as the registry serves
# it; fails with skopeo's complaint in $work/inspect.err.
manifest_hex() {
  local sum
  env "${INSPECT_ENV[@]}" skopeo inspect --raw --tls-verify=false "docker://$1" \
    >"$work/manifest.raw" 2>"$work/inspect.err" || return 1
  sum=$(sha256sum "$work/manifest.raw")
  echo "${sum%% *}"
}
inspect_error() { tail -n 1 "$work/inspect.err"; }

# --- images: OCI layouts written here, byte for byte ----------------------------------------
# Layers are random bytes (incompressible, unique per run) with the uncompressed tar media
# type: neither tool looks inside a layer when copying by digest.
declare -A top kids   # image key -> manifest hex; -> child manifest hexes of an index

# Moves FILE into LAYOUT's blob store under its digest; prints "HEX SIZE".
blob_put() {
  local layout=$1 file=$2 sum size
  sum=$(sha256sum "$file")
  sum=${sum%% *}
  size=$(stat -c %s "$file")
  mv -f "$file" "$layout/blobs/sha256/$sum"
  echo "$sum $size"
}

new_layout() {
  mkdir -p "$1/blobs/sha256"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$1/oci-layout"
}

# One platform's image: NLAYERS layers of MB MiB. Prints "HEX SIZE" of its manifest.
make_image() {
  local layout=$1 name=$2 arch=$3 nlayers=$4 mb=$5 i out hex size layers='' diff_ids='' sep=''
  for ((i = 0; i < nlayers; i++)); do
    head -c "${mb}M" /dev/urandom >"$layout/new"
    out=$(blob_put "$layout" "$layout/new")
    read -r hex size <<<"$out"
    layers+="$sep{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$hex\",\"size\":$size}"
    diff_ids+="$sep\"sha256:$hex\""
    sep=,
  done
  printf '{"architecture":"%s","os":"linux","config":{"Labels":{"bench":"%s"}},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$arch" "$name" "$diff_ids" >"$layout/new"
  out=$(blob_put "$layout" "$layout/new")
  read -r hex size <<<"$out"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$hex" "$size" "$layers" >"$layout/new"
  blob_put "$layout" "$layout/new"
}

# index.json entry naming a manifest or index for `oci:LAYOUT:REF`.
layout_ref() {
  printf '{"mediaType":"%s","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}' \
    "$1" "$2" "$3" "$4"
}
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_INDEX=application/vnd.oci.image.index.v1+json

# Pushes oci:LAYOUT:REF to the source registry as REPO:TAG (not timed) and checks that the
# registry serves the manifest that was written.
seed() {
  local layout=$1 ref=$2 dest=$3 key=$4 got
  quiet env "${INSPECT_ENV[@]}" skopeo copy --all --preserve-digests --dest-tls-verify=false \
    "oci:$layout:$ref" "docker://$dest"
  got=$(manifest_hex "$dest") || die "seeding $dest: cannot read it back: $(inspect_error)"
  [[ $got == "${top[$key]}" ]] || die "seeding $dest: registry serves sha256:$got, wrote sha256:${top[$key]}"
}

note "writing images (layers of $LAYER_MB MiB; $MANY_IMAGES images of 2x$MANY_LAYER_MB MiB)..."
layout=$work/layout
new_layout "$layout"
refs=()
out=$(make_image "$layout" single amd64 8 "$LAYER_MB")
read -r hex size <<<"$out"
top[single]=$hex
refs+=("$(layout_ref $OCI_MANIFEST "$hex" "$size" single)")

index_entries='' sep=''
for arch in amd64 arm64; do
  out=$(make_image "$layout" "multi-$arch" "$arch" 4 "$LAYER_MB")
  read -r hex size <<<"$out"
  kids[multi]+=" $hex"
  index_entries+="$sep{\"mediaType\":\"$OCI_MANIFEST\",\"digest\":\"sha256:$hex\",\"size\":$size,\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"}}"
  sep=,
done
printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s]}' "$OCI_INDEX" "$index_entries" >"$layout/new"
out=$(blob_put "$layout" "$layout/new")
read -r hex size <<<"$out"
top[multi]=$hex
refs+=("$(layout_ref $OCI_INDEX "$hex" "$size" multi)")

for ((i = 0; i < MANY_IMAGES; i++)); do
  name=$(printf 'app%03d' "$i")
  out=$(make_image "$layout" "$name" amd64 2 "$MANY_LAYER_MB")
  read -r hex size <<<"$out"
  top[$name]=$hex
  refs+=("$(layout_ref $OCI_MANIFEST "$hex" "$size" "$name")")
done
(
  IFS=,
  printf '{"schemaVersion":2,"manifests":[%s]}' "${refs[*]}" >"$layout/index.json"
)

note "seeding the source registry..."
seed "$layout" single "$SRC/bench/single:v1" single
# The first skopeo copy shows whether the cache really went to the throwaway home.
[[ -f $INSPECT_HOME/share/containers/cache/blob-info-cache-v1.boltdb ]] \
  || die "skopeo did not put its blob-info cache under XDG_DATA_HOME; runs would share a cache"
seed "$layout" multi "$SRC/bench/multi:v1" multi
for ((i = 0; i < MANY_IMAGES; i++)); do
  name=$(printf 'app%03d' "$i")
  seed "$layout" "$name" "$SRC/many/$name:v1" "$name"
done
rm -rf "$layout"

# --- running and checking one copy ----------------------------------------------------------
# Sets CMD to one tool's copy of SRC_REF (a tag or a digest reference) to DST_REF, inside the
# current fresh home. Both tools copy every platform and keep digests.
copy_cmd() {
  local tool=$1 src=$2 dst=$3
  case $tool in
    imgctl) CMD=(env "${FENV[@]}" "$imgctl_bin" promote "$src" "$dst") ;;
    skopeo) CMD=(env "${FENV[@]}" skopeo copy --all --preserve-digests
      --src-tls-verify=false --dest-tls-verify=false "docker://$src" "docker://$dst") ;;
  esac
}

# Runs "$@" (output to the log), sets ELAPSED_MS to its wall time.
timed() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$@" >>"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; die "failed: $*"; }
  t1=$EPOCHREALTIME
  ELAPSED_MS=$(awk -v a="${t0}" -v b="${t1}" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
}

# Fails loudly unless REPO:TAG at the destination is image KEY, byte for byte, and for an
# index, unless every platform's manifest is there too.
verify() {
  local what=$1 dest_repo=$2 tag=$3 key=$4 got child
  got=$(manifest_hex "$dest_repo:$tag") || die "$what: cannot read $dest_repo:$tag: $(inspect_error)"
  [[ $got == "${top[$key]}" ]] \
    || die "$what: $dest_repo:$tag is sha256:$got, the source is sha256:${top[$key]}"
  for child in ${kids[$key]:-}; do
    got=$(manifest_hex "$dest_repo@sha256:$child") \
      || die "$what: cannot read $dest_repo@sha256:$child: $(inspect_error)"
    [[ $got == "$child" ]] || die "$what: $dest_repo@sha256:$child serves sha256:$got"
  done
}

declare -A samples rss
TOOLS=(imgctl skopeo)

# One scenario of single-image copies: SCN KEY SRC_REF DST_REGISTRY [again]. Each run copies
# into a repository that no run used before; with `again` the same tool first copies there
# untimed, so the timed run finds everything present.
bench_copy() {
  local scn=$1 key=$2 src=$3 dreg=$4 again=${5:-} round k tool dest_repo what
  for ((round = 0; round < WARMUP + REPS; round++)); do
    # Alternate which tool goes first, so drift on the machine hits both alike.
    for k in 0 1; do
      tool=${TOOLS[(round + k) % 2]}
      dest_repo=$dreg/bench/$scn-$round-$tool/$key
      what="scenario $scn, $tool, round $round"
      if [[ -n $again ]]; then
        new_home
        copy_cmd "$tool" "$src" "$dest_repo:v1"
        quiet "${CMD[@]}"
        drop_home
        verify "$what (first copy)" "$dest_repo" v1 "$key"
      fi
      new_home
      copy_cmd "$tool" "$src" "$dest_repo:v1"
      timed "${CMD[@]}"
      drop_home
      verify "$what" "$dest_repo" v1 "$key"
      ((round < WARMUP)) || samples[$scn,$tool]+=" $ELAPSED_MS"
    done
  done
}

note "scenario 1: cross-registry, one platform..."
bench_copy 1 single "$SRC/bench/single:v1" "$DST"
note "scenario 2: cross-registry, two-platform index..."
bench_copy 2 multi "$SRC/bench/multi:v1" "$DST"
note "scenario 3: same registry, another repository..."
bench_copy 3 single "$SRC/bench/single:v1" "$SRC"
note "scenario 4: already at the destination..."
bench_copy 4 multi "$SRC/bench/multi:v1" "$DST" again

# --- scenario 5: many images from one promoter manifest ----------------------------------------
# CI without imgctl runs one `skopeo copy` per image and digest; one fresh home for the whole
# loop, as one CI job would have.
skopeo_loop() {
  local ns=$1 i name
  for ((i = 0; i < MANY_IMAGES; i++)); do
    name=$(printf 'app%03d' "$i")
    env "${FENV[@]}" skopeo copy --all --preserve-digests --src-tls-verify=false \
      --dest-tls-verify=false "docker://$SRC/many/$name@sha256:${top[$name]}" \
      "docker://$DST/$ns/$name:1.0" || return
  done
}

write_promoter_manifest() {
  local file=$1 ns=$2 i name
  {
    printf 'registries:\n- name: %s/many\n  src: true\n- name: %s/%s\nimages:\n' "$SRC" "$DST" "$ns"
    for ((i = 0; i < MANY_IMAGES; i++)); do
      name=$(printf 'app%03d' "$i")
      printf -- '- name: %s\n  dmap:\n    "sha256:%s": ["1.0"]\n' "$name" "${top[$name]}"
    done
  } >"$file"
}

note "scenario 5: $MANY_IMAGES images from one manifest..."
for ((round = 0; round < WARMUP + REPS; round++)); do
  for k in 0 1; do
    tool=${TOOLS[(round + k) % 2]}
    ns=bench/5-$round-$tool
    new_home
    if [[ $tool == imgctl ]]; then
      write_promoter_manifest "$HOME_DIR/promotion.yaml" "$ns"
      timed env "${FENV[@]}" "$imgctl_bin" promote --file "$HOME_DIR/promotion.yaml"
    else
      timed skopeo_loop "$ns"
    fi
    drop_home
    for ((i = 0; i < MANY_IMAGES; i++)); do
      name=$(printf 'app%03d' "$i")
      verify "scenario 5, $tool, round $round" "$DST/$ns/$name" 1.0 "$name"
    done
    ((round < WARMUP)) || samples[5,$tool]+=" $ELAPSED_MS"
  done
done

# --- scenario 6: peak memory with one big layer ------------------------------------------------
if ((BIG_LAYER_MB > 0 && BIG_REPS > 0)); then
  note "scenario 6: writing and seeding one $BIG_LAYER_MB MiB layer..."
  layout=$work/big-layout
  new_layout "$layout"
  out=$(make_image "$layout" big amd64 1 "$BIG_LAYER_MB")
  read -r hex size <<<"$out"
  top[big]=$hex
  printf '{"schemaVersion":2,"manifests":[%s]}' "$(layout_ref $OCI_MANIFEST "$hex" "$size" big)" \
    >"$layout/index.json"
  seed "$layout" big "$SRC/bench/big:v1" big
  rm -rf "$layout"
  note "scenario 6: copying it..."
  for ((round = 0; round < BIG_REPS; round++)); do
    for k in 0 1; do
      tool=${TOOLS[(round + k) % 2]}
      dest_repo=$DST/bench/6-$round-$tool/big
      new_home
      copy_cmd "$tool" "$SRC/bench/big:v1" "$dest_repo:v1"
      # GNU time's %M: the largest resident set of the child, in KiB. `env` execs the tool, so
      # the child is the tool itself.
      timed /usr/bin/time -f %M -o "$HOME_DIR/maxrss" "${CMD[@]}"
      rss[$tool]+=" $(awk '{ v = $1 } END { printf "%.1f", v / 1024 }' "$HOME_DIR/maxrss")"
      drop_home
      verify "scenario 6, $tool, round $round" "$dest_repo" v1 big
      samples[6,$tool]+=" $ELAPSED_MS"
    done
  done
fi

# --- results ----------------------------------------------------------------------------------
# Lists of samples are space-separated words.
median() {
  tr -s ' ' '\n' <<<"$1" | grep . | sort -n | awk '
    { v[NR] = $1 }
    END { if (NR == 0) exit; printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# Exit status of a float comparison a OP b, OP one of awk's.
cmp() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; }
yes_no() { "$@" && echo yes || echo no; }
json_bool() { [[ $1 == yes ]] && echo true || echo false; }
json_list() { local s; s=$(xargs <<<"$1"); echo "[${s// /,}]"; }

declare -A label=(
  [1]="1 cross-registry, 1 platform, 8x$LAYER_MB MiB"
  [2]="2 cross-registry, 2-platform index, 2x4x$LAYER_MB MiB"
  [3]="3 same registry, other repo, 8x$LAYER_MB MiB"
  [4]="4 already at destination (2-platform)"
  [5]="5 $MANY_IMAGES images from one manifest, 2x$MANY_LAYER_MB MiB"
  [6]="6 one $BIG_LAYER_MB MiB layer, cross-registry"
)
scenarios=(1 2 3 4 5)
[[ -n ${samples[6,imgctl]:-} ]] && scenarios+=(6)

declare -A med
for scn in "${scenarios[@]}"; do
  for tool in "${TOOLS[@]}"; do med[$scn,$tool]=$(median "${samples[$scn,$tool]}"); done
  med[$scn,ratio]=$(ratio "${med[$scn,imgctl]}" "${med[$scn,skopeo]}")
done

echo
printf '%-46s | %10s | %10s | %13s | %4s\n' scenario 'imgctl ms' 'skopeo ms' 'imgctl/skopeo' runs
printf '%s\n' '-----------------------------------------------+------------+------------+---------------+-----'
for scn in "${scenarios[@]}"; do
  n=$(wc -w <<<"${samples[$scn,imgctl]}")
  printf '%-46s | %10s | %10s | %12sx | %4s\n' "${label[$scn]}" "${med[$scn,imgctl]}" \
    "${med[$scn,skopeo]}" "${med[$scn,ratio]}" "$n"
done
if [[ -n ${rss[imgctl]:-} ]]; then
  rss_imgctl=$(median "${rss[imgctl]}") rss_skopeo=$(median "${rss[skopeo]}")
  printf '%-46s | %10s | %10s | %12sx | %4s\n' "6 peak RSS, MiB (median)" "$rss_imgctl" \
    "$rss_skopeo" "$(ratio "$rss_imgctl" "$rss_skopeo")" "$BIG_REPS"
fi
echo "(median wall time per run; each run into a repository no run used before, with a fresh"
echo " HOME and skopeo blob-info cache; $WARMUP untimed warm-up round(s) per scenario 1-5)"
echo

worst=1 worst_ratio=0
for scn in "${scenarios[@]}"; do
  if cmp "${med[$scn,ratio]}" ">" "$worst_ratio"; then worst=$scn worst_ratio=${med[$scn,ratio]}; fi
done
never_slower=$(yes_no cmp "$worst_ratio" "<=" 1)
s2_met=$(yes_no cmp "${med[2,ratio]}" "<=" "$RATIO_TARGET")
s5_met=$(yes_no cmp "${med[5,ratio]}" "<=" "$RATIO_TARGET")
echo "imgctl never slower than skopeo: $never_slower (highest imgctl/skopeo: ${worst_ratio}x, scenario $worst)"
echo "scenario 2 at most ${RATIO_TARGET}x skopeo: $s2_met (${med[2,ratio]}x)"
echo "scenario 5 at most ${RATIO_TARGET}x skopeo: $s5_met (${med[5,ratio]}x)"
rss_met=skipped rss_json=null
if [[ -n ${rss[imgctl]:-} ]]; then
  rss_met=$(yes_no cmp "$rss_imgctl" "<" "$RSS_TARGET_MIB")
  rss_json=$(json_bool "$rss_met")
  echo "imgctl peak RSS under $RSS_TARGET_MIB MiB with a $BIG_LAYER_MB MiB layer: $rss_met ($rss_imgctl MiB; skopeo $rss_skopeo MiB)"
else
  echo "imgctl peak RSS under $RSS_TARGET_MIB MiB: skipped (BIG_LAYER_MB=0 or BIG_REPS=0)"
fi

# --- JSON ---------------------------------------------------------------------------------------
mkdir -p "$BENCH_OUT"
json=$BENCH_OUT/promote.json
{
  printf '{\n'
  printf '  "benchmark": "promote",\n'
  printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '  "host": {"kernel": "%s", "cpus": %s},\n' "$(uname -sr)" "$(nproc)"
  printf '  "tools": {"imgctl": "%s", "skopeo": "%s", "registry": "%s"},\n' "$imgctl_bin" \
    "$(skopeo --version | awk '{ print $3 }')" "$(docker-registry --version | awk '{ print $NF }')"
  printf '  "method": "wall time (bash EPOCHREALTIME) of one imgctl promote or skopeo copy --all --preserve-digests between two docker-registry instances on loopback without auth; fresh destination repository, HOME and skopeo blob-info cache per run; tools interleaved; destination manifest digests verified after every run",\n'
  printf '  "config": {"reps": %s, "warmup": %s, "layer_mb": %s, "many_images": %s, "many_layer_mb": %s, "big_layer_mb": %s, "big_reps": %s},\n' \
    "$REPS" "$WARMUP" "$LAYER_MB" "$MANY_IMAGES" "$MANY_LAYER_MB" "$BIG_LAYER_MB" "$BIG_REPS"
  printf '  "scenarios": [\n'
  sep=''
  for scn in "${scenarios[@]}"; do
    printf '%s    {"id": %s, "name": "%s", "imgctl_median_ms": %s, "skopeo_median_ms": %s, "ratio": %s, "imgctl_ms": %s, "skopeo_ms": %s' \
      "$sep" "$scn" "${label[$scn]#* }" "${med[$scn,imgctl]}" "${med[$scn,skopeo]}" "${med[$scn,ratio]}" \
      "$(json_list "${samples[$scn,imgctl]}")" "$(json_list "${samples[$scn,skopeo]}")"
    if [[ $scn == 6 ]]; then
      printf ', "imgctl_max_rss_mib": %s, "skopeo_max_rss_mib": %s, "imgctl_max_rss_median_mib": %s, "skopeo_max_rss_median_mib": %s' \
        "$(json_list "${rss[imgctl]}")" "$(json_list "${rss[skopeo]}")" "$rss_imgctl" "$rss_skopeo"
    fi
    printf '}'
    sep=$',\n'
  done
  printf '\n  ],\n'
  printf '  "targets": {"never_slower": %s, "highest_ratio": %s, "ratio_target": %s, "scenario2_met": %s, "scenario5_met": %s, "rss_target_mib": %s, "rss_met": %s}\n' \
    "$(json_bool "$never_slower")" "$worst_ratio" "$RATIO_TARGET" "$(json_bool "$s2_met")" \
    "$(json_bool "$s5_met")" "$RSS_TARGET_MIB" "$rss_json"
  printf '}\n'
} >"$json"
echo "results: $json"

if [[ $BENCH_ENFORCE == 1 && ($never_slower == no || $s2_met == no || $s5_met == no || $rss_met == no) ]]; then
  die "target missed"
fi
