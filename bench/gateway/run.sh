#!/usr/bin/env bash
# Gateway benchmark: the same upstream (nginx answering a fixed body, run as a
# Cloudport component) reached through nginx as reverse proxy (one worker,
# keep-alive upstream) and through the Cloudport gateway (one thread), with
# wrk, alternating, in the same run. Prints a Markdown table with the ratio.
#
#   bench/gateway/run.sh [seconds per round, default 10] [rounds, default 3]
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$ROOT"
apt_install wrk nginx curl
[[ -x target/release/cloudport ]] || { scripts/build-site.sh; cargo build -q --release -p server; }
SECS=${1:-10}
ROUNDS=${2:-3}
CONNS=${CONNS:-64}

WORK="$(mktemp -d)"
cp target/release/cloudport "$WORK/cloudport"
TOKEN=bench-gateway-token-0123456789
API=127.0.0.1:3951
GATEWAY=127.0.0.1:3952
ANCHOR=127.0.0.1:3953
trap 'kill $(jobs -p) 2>/dev/null; [[ -f $WORK/anchor.pid ]] && kill $(cat $WORK/anchor.pid) 2>/dev/null; sleep 0.5; rm -rf "$WORK"' EXIT

CLOUDPORT_DATACENTER_TOKEN=$TOKEN "$WORK/cloudport" datacenter --name bench --listen $API \
  --data-dir "$WORK/dc" --gateway-listen $GATEWAY --gateway-threads 1 >"$WORK/dc.log" 2>&1 &
until curl -fs http://$API/healthz >/dev/null; do sleep 0.05; done
api() { curl -fsS -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }

# The upstream component: one replica of nginx, uploaded as source.
api -X POST http://$API/v1/teams/bench/apps/bench/components \
  -d '{"name":"up","source":{"kind":"upload"},"ports":[{"port":8080,"protocol":"http","outer":true}],"replicas":1}' >/dev/null
tar -czf "$WORK/up.tar.gz" -C bench/gateway/upstream .
api -X PUT --data-binary @"$WORK/up.tar.gz" -H 'content-type: application/octet-stream' \
  http://$API/v1/teams/bench/apps/bench/components/up/source >/dev/null
for _ in $(seq 1 300); do
  status=$(api http://$API/v1/teams/bench/apps/bench/components/up | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])')
  [[ $status == running ]] && break
  sleep 0.2
done
[[ $status == running ]] || { echo "the upstream component did not start ($status)" >&2; cat "$WORK/dc.log" >&2; exit 1; }
UPSTREAM=$(api http://$API/v1/teams/bench/apps/bench/components/up/replicas | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["port"])')
HOST=up.bench.bench.localhost

mkdir -p "$WORK/tmp"
sed -e "s#__WORK__#$WORK#g" -e "s/__UPSTREAM__/$UPSTREAM/" -e "s/__PORT__/${ANCHOR#*:}/" \
  bench/gateway/anchor-nginx.conf.in > "$WORK/anchor.conf"
nginx -p "$WORK" -c "$WORK/anchor.conf" &
until curl -fs http://$ANCHOR/ >/dev/null; do sleep 0.05; done
curl -fs -H "Host: $HOST" http://$GATEWAY/ | grep -q "hello from the upstream" || { echo "gateway does not route" >&2; exit 1; }

# One wrk run: prints "requests/s p99-ms".
measure() {
  wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -H "Host: $HOST" "http://$1/" | python3 -c '
import re, sys
text = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors: print(f"warning: {errors.group(1)} non-2xx answers", file=sys.stderr)
print(f"{rps:.0f} {p99:.2f}")'
}
# Warm both up, then alternate.
wrk -t1 -c"$CONNS" -d2s -H "Host: $HOST" "http://$ANCHOR/" >/dev/null
wrk -t1 -c"$CONNS" -d2s -H "Host: $HOST" "http://$GATEWAY/" >/dev/null
: > "$WORK/nginx.txt"; : > "$WORK/gateway.txt"
for r in $(seq 1 "$ROUNDS"); do
  measure $ANCHOR | tee -a "$WORK/nginx.txt" | sed "s/^/round $r nginx:   /" >&2
  measure $GATEWAY | tee -a "$WORK/gateway.txt" | sed "s/^/round $r gateway: /" >&2
done
python3 - "$WORK/nginx.txt" "$WORK/gateway.txt" "$CONNS" "$SECS" "$ROUNDS" <<'PY'
import statistics, sys
def load(p):
    rows = [tuple(map(float, l.split())) for l in open(p) if l.strip()]
    return statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
n_rps, n_p99 = load(sys.argv[1])
g_rps, g_p99 = load(sys.argv[2])
conns, secs, rounds = sys.argv[3:6]
print(f"wrk -t1 -c{conns}, {rounds} alternating rounds of {secs} s, medians")
print()
print("| proxy (one worker/thread) | requests/s | p99 |")
print("|---|---|---|")
print(f"| nginx (keep-alive upstream) | {n_rps:,.0f} | {n_p99:.2f} ms |")
print(f"| Cloudport gateway | {g_rps:,.0f} | {g_p99:.2f} ms |")
print(f"| **ratio gateway / nginx** | **{g_rps / n_rps:.2f} ×** | {g_p99 / n_p99:.2f} × |")
PY
