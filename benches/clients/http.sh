#!/usr/bin/env bash
# examples/http_server (goro) against Go net/http, a tokio + httparse
# peer and a hyper peer, all serving GET /json, driven by
# `wrk -t 2 -c 100 -d 10s`, interleaved rounds in one sitting; prints
# each run, then the medians.
#   benches/clients/http.sh [ROUNDS (3)] [WORKERS (2)] [SECS (10)]
# Needs wrk and go (apt-get install wrk golang-go).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}; workers=${2:-2}; secs=${3:-10}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --example http_server -q
mkdir -p "$target"; abs=$(realpath "$target")
(cd benches/compare/http/go && go build -o "$abs/http-go" .)
CARGO_TARGET_DIR="$target/http-tokio" cargo build --release -q --manifest-path benches/compare/http/tokio/Cargo.toml
CARGO_TARGET_DIR="$target/http-hyper" cargo build --release -q --manifest-path benches/compare/http/hyper/Cargo.toml
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
gp=$(free_port); op=$(free_port); tp=$(free_port); hp=$(free_port)
"$target/release/examples/http_server" --port "$gp" --workers "$workers" >/dev/null & p1=$!
GOMAXPROCS=$workers "$target/http-go" -port "$op" >/dev/null & p2=$!
"$target/http-tokio/release/http-tokio" --port "$tp" --workers "$workers" >/dev/null & p3=$!
"$target/http-hyper/release/http-hyper" --port "$hp" --workers "$workers" >/dev/null & p4=$!
trap 'kill $p1 $p2 $p3 $p4 2>/dev/null || true' EXIT
sleep 0.5
echo "# $(date -I) $(uname -r) load: $(cut -d' ' -f1-3 /proc/loadavg); $(go version | cut -d' ' -f3)"
out=$(mktemp)
for r in $(seq "$rounds"); do
  for who in goro go tokio hyper; do
    case $who in goro) port=$gp;; go) port=$op;; tokio) port=$tp;; hyper) port=$hp;; esac
    rps=$(wrk -t 2 -c 100 -d "${secs}s" "http://127.0.0.1:$port/json" | awk '/Requests\/sec/ {print $2}')
    echo "$who $rps" | tee -a "$out"
  done
done
python3 - "$out" "$workers" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    who, rps = line.split(); d[who].append(float(rps))
m = {k: statistics.median(v) for k, v in d.items()}
best = max(m["go"], m["tokio"], m["hyper"])
print(f"| server ({sys.argv[2]} workers) | requests/s (median) |")
print("|---|---|")
for k in ("goro", "go", "tokio", "hyper"):
    print(f"| {k} | {m[k]:,.0f} |")
print(f"| goro / best peer | {m['goro']/best:.2f}x |")
PY
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
