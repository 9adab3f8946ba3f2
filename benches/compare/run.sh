#!/usr/bin/env bash
# Side-by-side comparison of goro with Go, may, tokio and OS threads.
#
# Builds every peer in release mode, runs each workload on each peer
# (three interleaved rounds, peer order rotated every round), and prints one
# table of medians with goro's ratio to the best peer. Raw results and the
# table are appended to results/<date>.txt (results/<date>-quick.txt for
# --quick). See README.md.
#
# usage: benches/compare/run.sh [--quick] [--only w1,w2] [--peers p1,p2] [--rounds N]
#
#   --quick        tiny sizes, one round; exits non-zero if a built peer loses
#                  a message (may's select excepted: known, only reported) or a
#                  goro workload crashes. Meant for CI smoke tests.
#   --only LIST    workloads to run (default: all), from:
#                  spawn pingpong chan_mpmc select mutex idle idle_1m echo timers chain
#                  idle_shared idle_1m_shared pingpong_shared (goro on shared stacks)
#   --peers LIST   peers to build and run (default: go,may,tokio,threads,goro)
#   --rounds N     rounds (default 3, --quick 1)
#
# Environment: CARGO_TARGET_DIR (default: benches/compare/target) holds every
# build, the Go binary included; RUN_TIMEOUT caps one run in seconds
# (default 120, --quick 60).

set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ALL_PEERS=(go may tokio threads goro)
ALL_WORKLOADS=(spawn pingpong chan_mpmc select mutex idle idle_1m echo timers chain idle_shared idle_1m_shared pingpong_shared)
# Pseudo-workloads: label -> "<real workload> <extra args>" and the peers that run it.
IDLE_1M_ARGS="idle --n 1000000"
IDLE_1M_PEERS=" go goro "
# goro with GORO_SHARED_STACKS=1 (Builder::shared_stack as the default):
# label -> real workload args; run by goro alone, compared with the
# other peers' rows of the real workload.
declare -A SHARED_ARGS=([idle_shared]="idle" [idle_1m_shared]="idle --n 1000000" [pingpong_shared]="pingpong")

QUICK=0
ROUNDS=""
ONLY=""
PEERS_ARG=""

die() { echo "run.sh: $*" >&2; exit 2; }
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --only) [ $# -ge 2 ] || die "--only needs a list"; ONLY=$2; shift ;;
        --only=*) ONLY=${1#--only=} ;;
        --peers) [ $# -ge 2 ] || die "--peers needs a list"; PEERS_ARG=$2; shift ;;
        --peers=*) PEERS_ARG=${1#--peers=} ;;
        --rounds) [ $# -ge 2 ] || die "--rounds needs a number"; ROUNDS=$2; shift ;;
        --rounds=*) ROUNDS=${1#--rounds=} ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done

if [ -z "$ROUNDS" ]; then
    if [ $QUICK = 1 ]; then ROUNDS=1; else ROUNDS=3; fi
fi
case "$ROUNDS" in ''|*[!0-9]*|0) die "--rounds must be a positive integer" ;; esac

contains() { # contains <word> <list...>
    local w=$1; shift
    local x
    for x in "$@"; do [ "$x" = "$w" ] && return 0; done
    return 1
}

PEERS=()
if [ -n "$PEERS_ARG" ]; then
    IFS=', ' read -r -a wanted <<< "$PEERS_ARG"
    for p in "${wanted[@]}"; do
        [ -z "$p" ] && continue
        contains "$p" "${ALL_PEERS[@]}" || die "unknown peer '$p' (known: ${ALL_PEERS[*]})"
    done
    # Keep the canonical column order.
    for p in "${ALL_PEERS[@]}"; do contains "$p" "${wanted[@]}" && PEERS+=("$p"); done
else
    PEERS=("${ALL_PEERS[@]}")
fi
[ ${#PEERS[@]} -gt 0 ] || die "no peers selected"

WORKLOADS=()
if [ -n "$ONLY" ]; then
    IFS=', ' read -r -a wanted <<< "$ONLY"
    for w in "${wanted[@]}"; do
        [ -z "$w" ] && continue
        contains "$w" "${ALL_WORKLOADS[@]}" || die "unknown workload '$w' (known: ${ALL_WORKLOADS[*]})"
    done
    for w in "${ALL_WORKLOADS[@]}"; do contains "$w" "${wanted[@]}" && WORKLOADS+=("$w"); done
else
    for w in "${ALL_WORKLOADS[@]}"; do
        # 1M idle tasks is a capacity figure, not a smoke test.
        [ $QUICK = 1 ] && { [ "$w" = idle_1m ] || [ "$w" = idle_1m_shared ]; } && continue
        WORKLOADS+=("$w")
    done
fi
[ ${#WORKLOADS[@]} -gt 0 ] || die "no workloads selected"

TARGET=${CARGO_TARGET_DIR:-$HERE/target}
export CARGO_TARGET_DIR=$TARGET
if [ $QUICK = 1 ]; then RUN_TIMEOUT=${RUN_TIMEOUT:-60}; else RUN_TIMEOUT=${RUN_TIMEOUT:-120}; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/goro-compare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
RAW=$WORK/raw.txt
: > "$RAW"

log() { echo "[compare] $*" >&2; }

# ---------------------------------------------------------------- build

declare -A BIN BUILD_STATUS

ensure_go() {
    command -v go >/dev/null 2>&1 && return 0
    log "go not found: installing the Debian package golang-go"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    $sudo apt-get update >&2 && $sudo apt-get install -y golang-go >&2
    command -v go >/dev/null 2>&1
}

build_go() {
    ensure_go || return 1
    mkdir -p "$TARGET/go"
    (cd "$HERE/go" && go build -o "$TARGET/go/cmp-go" .) > "$WORK/build-go.log" 2>&1 || return 1
    BIN[go]=$TARGET/go/cmp-go
}

cargo_build() { # cargo_build <peer> <log> [cargo args...]
    local peer=$1 logf=$2; shift 2
    cargo build --release --manifest-path "$HERE/$peer/Cargo.toml" "$@" >> "$logf" 2>&1
}

build_cargo_peer() {
    local peer=$1
    cargo_build "$peer" "$WORK/build-$peer.log" || return 1
    BIN[$peer]=$TARGET/release/cmp-$peer
}

# goro is written ahead of its API: if the full peer does not build, find the
# workloads that do (one cargo feature each) and build those.
build_goro() {
    local logf=$WORK/build-goro.log
    if cargo_build goro "$logf"; then
        BIN[goro]=$TARGET/release/cmp-goro
        return 0
    fi
    log "goro: full build failed; probing workloads one by one"
    cargo_build goro "$logf" --no-default-features || return 1
    local ok=() w
    for w in spawn pingpong chan_mpmc select mutex idle echo timers chain; do
        if cargo_build goro "$logf" --no-default-features --features "$w"; then
            ok+=("$w")
        fi
    done
    [ ${#ok[@]} -gt 0 ] || return 1
    local feats
    feats=$(IFS=,; echo "${ok[*]}")
    log "goro: building the workloads that compile: $feats"
    cargo_build goro "$logf" --no-default-features --features "$feats" || return 1
    BUILD_STATUS[goro]="partial:$feats"
    BIN[goro]=$TARGET/release/cmp-goro
}

for p in "${PEERS[@]}"; do
    log "building $p"
    case $p in
        go) build_go ;;
        goro) build_goro ;;
        *) build_cargo_peer "$p" ;;
    esac
    if [ $? -eq 0 ] && [ -n "${BIN[$p]:-}" ] && [ -x "${BIN[$p]}" ]; then
        BUILD_STATUS[$p]=${BUILD_STATUS[$p]:-ok}
    else
        BUILD_STATUS[$p]=failed
        unset 'BIN[$p]'
        log "$p: build FAILED (log tail below); its column will read n/a"
        tail -n 15 "$WORK/build-$p.log" 2>/dev/null | sed 's/^/    /' >&2
    fi
    echo "BUILD peer=$p status=${BUILD_STATUS[$p]}" >> "$RAW"
done

# ---------------------------------------------------------------- run

# echo also counts system calls per request (both sides: client and server
# run in one process) with perf's raw_syscalls tracepoint, where perf works.
PERF_OK=0
if command -v perf > /dev/null 2>&1 \
    && perf stat -x, -o /dev/null -e raw_syscalls:sys_enter true > /dev/null 2>&1; then
    PERF_OK=1
fi

# Whether <peer> runs workload <label> at all (built, and a peer of it).
runs_here() { # runs_here <peer> <workload label>
    local peer=$1 label=$2
    [ -n "${BIN[$peer]:-}" ] || return 1
    if [ "$label" = idle_1m ]; then
        [[ "$IDLE_1M_PEERS" == *" $peer "* ]] || return 1
    elif [ -n "${SHARED_ARGS[$label]:-}" ]; then
        [ "$peer" = goro ] || return 1
    fi
    return 0
}

DONE_RUNS=0
run_one() { # run_one <round> <peer> <workload label>
    local round=$1 peer=$2 label=$3 args envs=()
    runs_here "$peer" "$label" || return 0
    if [ "$label" = idle_1m ]; then
        args=$IDLE_1M_ARGS
    elif [ -n "${SHARED_ARGS[$label]:-}" ]; then
        args=${SHARED_ARGS[$label]}
        envs=(GORO_SHARED_STACKS=1)
    else
        args=$label
    fi
    DONE_RUNS=$((DONE_RUNS + 1))
    log "[$DONE_RUNS/$TOTAL_RUNS] round $round: $label on $peer ..."
    local extra=()
    [ $QUICK = 1 ] && extra=(--quick)
    local out=$WORK/out err=$WORK/err rc
    local wrap=()
    if [ "$label" = echo ] && [ $PERF_OK = 1 ]; then
        wrap=(perf stat -x, -o "$WORK/perf" -e raw_syscalls:sys_enter --)
    fi
    # shellcheck disable=SC2086  # $args is a word list on purpose
    env "${envs[@]}" timeout -k 5 "$RUN_TIMEOUT" "${wrap[@]}" "${BIN[$peer]}" $args "${extra[@]}" > "$out" 2> "$err"
    rc=$?
    local result
    result=$(grep -m1 '^RESULT ' "$out" || true)
    if [ ${#wrap[@]} -gt 0 ] && [ -n "$result" ]; then
        local sys reqs
        sys=$(awk -F, '/raw_syscalls:sys_enter/ { print $1; exit }' "$WORK/perf" 2>/dev/null)
        reqs=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<< "$result")
        if [[ "$sys" =~ ^[0-9]+$ && "$reqs" =~ ^[0-9]+$ ]] && [ "$reqs" -gt 0 ]; then
            result="$result syscalls_per_req=$(awk -v s="$sys" -v r="$reqs" 'BEGIN { printf "%.2f", s / r }')"
        fi
    fi
    echo "RUN round=$round peer=$peer workload=$label rc=$rc | $result" >> "$RAW"
    if [ $rc -ne 0 ] || [ -z "$result" ]; then
        # Keep the lines that say why, on one line.
        local why
        why=$( { grep -vE '^[[:space:]]+([0-9]+: |at )' "$err" \
                 | grep -E 'panicked|error|Error|failed|abort|Segmentation|overflow' \
                 || tail -n 3 "$err"; } | head -n 3 | tr '\n\t' '  ' | cut -c1-300)
        echo "ERR round=$round peer=$peer workload=$label rc=$rc | $why" >> "$RAW"
        log "round $round  $(printf '%-9s %-8s' "$label" "$peer") rc=$rc ${why:0:120}"
    else
        log "round $round  $(printf '%-9s %-8s' "$label" "$peer") ${result#RESULT * }"
    fi
}

START_TS=$(date '+%F %T %z')
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
n_peers=${#PEERS[@]}
TOTAL_RUNS=0
for w in "${WORKLOADS[@]}"; do
    for p in "${PEERS[@]}"; do
        if runs_here "$p" "$w"; then TOTAL_RUNS=$((TOTAL_RUNS + 1)); fi
    done
done
TOTAL_RUNS=$((TOTAL_RUNS * ROUNDS))
log "$TOTAL_RUNS runs: ${#WORKLOADS[@]} workloads, ${#PEERS[@]} peers, $ROUNDS round(s)"
for ((round = 1; round <= ROUNDS; round++)); do
    rot=$(( (round - 1) % n_peers ))
    order=("${PEERS[@]:rot}" "${PEERS[@]:0:rot}")
    log "round $round/$ROUNDS, peer order: ${order[*]}"
    for w in "${WORKLOADS[@]}"; do
        for p in "${order[@]}"; do
            run_one "$round" "$p" "$w"
        done
    done
done

# ---------------------------------------------------------------- report

lock_version() { # lock_version <Cargo.lock> <crate>
    awk -v name="$2" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$1" 2>/dev/null
}

cpu=$(lscpu 2>/dev/null | awk -F: '/^Model name/ { sub(/^[ \t]+/, "", $2); print $2; exit }')
{
    echo "date:     $START_TS"
    echo "mode:     $([ $QUICK = 1 ] && echo quick || echo normal), rounds=$ROUNDS, timeout=${RUN_TIMEOUT}s"
    echo "cpu:      ${cpu:-unknown} ($(nproc) CPUs), kernel $(uname -r), vm.max_map_count=$(cat /proc/sys/vm/max_map_count 2>/dev/null)"
    echo "load:     ${START_LOAD:-?} at start, $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) at end (1/5/15-min load average; other work on the machine moves the figures)"
    echo "go:       $(go version 2>/dev/null || echo none)"
    echo "rustc:    $(rustc --version 2>/dev/null)"
    echo "may:      $(lock_version "$HERE/may/Cargo.lock" may)"
    echo "tokio:    $(lock_version "$HERE/tokio/Cargo.lock" tokio) (async-channel $(lock_version "$HERE/tokio/Cargo.lock" async-channel))"
    echo "threads:  crossbeam-channel $(lock_version "$HERE/threads/Cargo.lock" crossbeam-channel)"
    echo "goro:     $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown) (working tree; build: ${BUILD_STATUS[goro]:-not selected})"
} > "$WORK/header.txt"

table_args=(--peers "$(IFS=,; echo "${PEERS[*]}")" --rounds "$ROUNDS")
[ $QUICK = 1 ] && table_args+=(--quick)
# The chart of the full runs (results/chart.svg, shown by BENCHMARKS.md
# and the README); a --quick run leaves it alone.
[ $QUICK = 1 ] || table_args+=(--svg "$HERE/results/chart.svg" --title \
    "goro and its peers: benches/compare/run.sh, $START_TS, goro $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null), medians of $ROUNDS")
python3 "$HERE/table.py" "$RAW" "${table_args[@]}" > "$WORK/table.txt"
status=$?

mkdir -p "$HERE/results"
if [ $QUICK = 1 ]; then
    RESULTS=$HERE/results/$(date +%F)-quick.txt
else
    RESULTS=$HERE/results/$(date +%F).txt
fi
{
    echo "==================== benches/compare/run.sh $START_TS"
    cat "$WORK/header.txt"
    echo
    cat "$WORK/table.txt"
    echo
    echo "---- raw"
    cat "$RAW"
    echo
} >> "$RESULTS"

echo
cat "$WORK/header.txt"
echo
cat "$WORK/table.txt"
echo
echo "raw results appended to ${RESULTS#"$PWD"/}"
exit $status
