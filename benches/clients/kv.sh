#!/usr/bin/env bash
# kv_server (goro) against redis-server, both driven by redis-benchmark,
# interleaved rounds in one sitting. Prints one line per round and server,
# then the medians. Usage:
#   benches/clients/kv.sh [ROUNDS (3)] [WORKERS (2)]
# Needs redis-server and redis-tools (apt-get install redis-server redis-tools).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
workers=${2:-2}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --example kv_server -q
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
gp=$(free_port); rp=$(free_port)
"$target/release/examples/kv_server" --port "$gp" --workers "$workers" >/dev/null &
gpid=$!
redis-server --port "$rp" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
rpid=$!
trap 'kill $gpid $rpid 2>/dev/null || true' EXIT
sleep 0.5
echo "# $(date -I) $(uname -r) load: $(cut -d' ' -f1-3 /proc/loadavg); $(redis-server --version | cut -d' ' -f1-3)"
out=$(mktemp)
for r in $(seq "$rounds"); do
  for p in 1 16; do
    n=$(( p == 1 ? 200000 : 2000000 ))
    for who in goro redis; do
      port=$([ $who = goro ] && echo "$gp" || echo "$rp")
      redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -c 50 -n "$n" -P "$p" --csv 2>/dev/null \
        | tail -n +2 | tr -d '"' | while IFS=, read -r test rps _; do
            echo "$who P$p $test $rps" | tee -a "$out"
          done
    done
  done
done
echo "# medians of $rounds rounds (requests/s), goro on $workers workers"
python3 - "$out" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    who, p, test, rps = line.split()
    d[(p, test, who)].append(float(rps))
print("| pipeline | test | goro kv_server | redis-server | goro/redis |")
print("|---|---|---|---|---|")
for p in ("P1", "P16"):
    for t in ("SET", "GET"):
        g = statistics.median(d[(p, t, "goro")]); r = statistics.median(d[(p, t, "redis")])
        print(f"| -{p} | {t} | {g:,.0f} | {r:,.0f} | {g/r:.2f}x |")
PY
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
