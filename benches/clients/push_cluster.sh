#!/usr/bin/env bash
# Room fan-out through the push gateway's cluster mode: a redis-server and
# two gateways (examples/push_server --redis), MEMBERS clients per gateway
# in one room, one of them sends MSGS room messages in one write; prints
# the time until every member has every message. Then the same number of
# members on one gateway. The client is Python (one thread, selectors),
# so the figures are bounded by the client as much as by the gateways.
#
# usage: benches/clients/push_cluster.sh [ROUNDS=3] [MEMBERS=50] [MSGS=5000]
# Needs redis-server (apt-get install redis-server) and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3} members=${2:-50} msgs=${3:-5000}
cargo build --release --example push_server >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release/examples/push_server
fp() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rp=$(fp) g1=$(fp) g2=$(fp)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
redis-server --port "$rp" --bind 127.0.0.1 --save "" --appendonly no >/dev/null & pids+=($!)
sleep 0.3
for g in "$g1:a" "$g2:b"; do
  "$bin" --listen "127.0.0.1:${g%:*}" --redis "127.0.0.1:$rp" --node "${g#*:}" \
    --queue 20000 --stats 0 --workers 2 >/dev/null & pids+=($!)
done
sleep 0.5
client() {
python3 - "$@" <<'PY'
import socket, selectors, time, sys
gw = [int(p) for p in sys.argv[1].split(',')]
members, msgs = int(sys.argv[2]), int(sys.argv[3])
socks = []
for gi, port in enumerate(gw):
    for i in range(members):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"LOGIN u{gi}_{i} room\n".encode())
        socks.append(s)
count = {}
for s in socks:
    d = b""
    while b"\n" not in d:
        d += s.recv(4096)
    count[s] = d.split(b"\n", 1)[1].count(b"\n")
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
t = time.time()
socks[0].sendall(b"".join(b"ROOM room m%d\n" % i for i in range(msgs)))
for s in socks:
    s.setblocking(False)
want, got = msgs * len(socks), sum(count.values())
while got < want and time.time() < t + 60:
    for key, _ in sel.select(1):
        got += key.fileobj.recv(1 << 16).count(b"\n")
el = time.time() - t
print(f"{len(gw)} gateway(s) x {members} members, {msgs} room messages: "
      f"{got}/{want} deliveries in {el:.3f}s = {msgs/el:.0f} msgs/s, {got/el:.0f} deliveries/s")
PY
}
echo "# $(date -I) load: $(cut -d' ' -f1-3 /proc/loadavg); $(redis-server --version | cut -d' ' -f1-3)"
for _ in $(seq "$rounds"); do client "$g1,$g2" "$members" "$msgs"; done
for _ in $(seq "$rounds"); do client "$g1" "$((2 * members))" "$msgs"; done
