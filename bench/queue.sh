#!/usr/bin/env bash
# Task queue benchmark: both backends in the same run, on this machine.
# Starts its own etcd on loopback (temp data dir, free ports), runs the
# queue_bench example against the embedded (SQLite) queue and against etcd,
# and prints a Markdown table for docs/queue.md, with each figure as a ratio
# of its goal and etcd's throughput as a ratio of the embedded anchor.
# Rows: both backends with 2 producers × 4 workers, then etcd again with
# 8 × 8 (how it scales with concurrency); the etcd rows once with workers
# calling claim then ack, once with ack_and_claim (ack a task and claim the
# next in one call: one etcd transaction). Throughput is the median of RUNS runs.
#
#   bench/queue.sh                      (defaults: 5000 tasks, RUNS=3)
#   TASKS=20000 RUNS=5 bench/queue.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
apt_install etcd-server protobuf-compiler

TASKS="${TASKS:-5000}"
RUNS="${RUNS:-3}"
SAMPLES="${SAMPLES:-400}"
ETCD_BIN="${ETCD_BIN:-/usr/bin/etcd}"

log "building the benchmark (release)"
cargo build -q --release -p datacenter --features service --example queue_bench
BENCH="$ROOT/target/release/examples/queue_bench"

WORK="$(mktemp -d)"
ETCD_PID=""
cleanup() {
    [[ -n "$ETCD_PID" ]] && kill "$ETCD_PID" 2>/dev/null && wait "$ETCD_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
CLIENT_PORT="$(free_port)"
PEER_PORT="$(free_port)"
CLIENT="http://127.0.0.1:$CLIENT_PORT"
PEER="http://127.0.0.1:$PEER_PORT"
log "starting etcd ($("$ETCD_BIN" --version | head -1)) on $CLIENT, data in $WORK"
# Compaction keeps the revision history of a write-heavy queue from growing without end.
"$ETCD_BIN" --name default --data-dir "$WORK/etcd" \
    --listen-client-urls "$CLIENT" --advertise-client-urls "$CLIENT" \
    --listen-peer-urls "$PEER" --initial-advertise-peer-urls "$PEER" \
    --initial-cluster "default=$PEER" \
    --auto-compaction-mode revision --auto-compaction-retention 10000 \
    --log-level warn >"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
for _ in $(seq 100); do
    curl -fs "$CLIENT/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$CLIENT/health" >/dev/null || { cat "$WORK/etcd.log" >&2; echo "etcd did not start" >&2; exit 1; }

# The embedded database lives in the system temp dir; say what that is backed by.
TMP_FS="$(df -T "${TMPDIR:-/tmp}" | awk 'NR==2 {print $2}')"
ETCD_FS="$(df -T "$WORK" | awk 'NR==2 {print $2}')"

run() { "$BENCH" --backend "$1" --endpoints "$CLIENT" --tasks "$TASKS" --producers "$2" \
        --workers "$3" --runs "$RUNS" --samples "$SAMPLES" --markdown "${@:4}"; }
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
log "embedded, 2 producers × 4 workers"
ROW1="$(run embedded 2 4)"
log "etcd, 2 producers × 4 workers"
ROW2="$(run etcd 2 4)"
log "etcd, 2 producers × 4 workers, ack_and_claim"
ROW3="$(run etcd 2 4 --ack-and-claim)"
log "etcd, 8 producers × 8 workers"
ROW4="$(run etcd 8 8)"
log "etcd, 8 producers × 8 workers, ack_and_claim"
ROW5="$(run etcd 8 8 --ack-and-claim)"
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# Columns of a row: backend, worker calls, tasks, producers×workers, median tasks/s, range,
# p50, p99, mean.
python3 - "$ROW1" "$ROW2" "$ROW3" "$ROW4" "$ROW5" <<'PY'
import sys
goals = {"embedded": 2000, "etcd": 1000}
rows = [[c.strip() for c in r.strip().strip("|").split("|")] for r in sys.argv[1:]]
anchor = float(rows[0][4])
ok = lambda b: "✓" if b else "✗"
print("| backend | worker calls | tasks | producers×workers | tasks/s (median) | runs | vs goal | vs embedded | enqueue→claim p50 ms | p99 ms | p99 vs 20 ms |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for backend, calls, tasks, pw, tps, spread, p50, p99, mean in rows:
    tps, p99f = float(tps), float(p99)
    goal = goals[backend]
    print(f"| {backend} | {calls} | {tasks} | {pw} | {tps:,.0f} | {spread} | {tps/goal:.2f}× of {goal:,} {ok(tps >= goal)} "
          f"| {tps/anchor:.2f} | {p50} | {p99} | {p99f/20:.2f} {ok(p99f < 20)} |")
PY
echo
echo "etcd $("$ETCD_BIN" --version | head -1 | awk '{print $3}') on $ETCD_FS, SQLite on $TMP_FS; $(nproc) cores;" \
     "$TASKS tasks of ~256 B payload per run; load average before $LOAD_BEFORE, after $LOAD_AFTER."
