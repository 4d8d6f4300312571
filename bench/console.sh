#!/usr/bin/env bash
# Console benchmarks: start-up time to a healthy /healthz, idle memory,
# login-page SSR latency under wrk (with nginx serving the same HTML as a
# static file, measured in the same run, as the anchor), and the size of the
# WASM bundle. Prints a Markdown table for docs/benchmarks.md.
#
#   bench/console.sh            (builds what is missing first)
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
apt_install wrk hyperfine nginx curl
[[ -x target/release/cloudport ]] || { scripts/build-site.sh; cargo build -q --release -p server; }

BIN="$ROOT/target/release/cloudport"
WORK="$(mktemp -d)"
PORT=3931
NGINX_PORT=3932
trap 'kill $(jobs -p) 2>/dev/null; [[ -f $WORK/nginx.pid ]] && kill "$(cat $WORK/nginx.pid)" 2>/dev/null; rm -rf "$WORK"' EXIT

# 1. Process start to /healthz 200, on a fresh data folder each run (includes
#    creating the SQLite database, migrations and hashing the admin password).
cat > "$WORK/ready.sh" <<SH
#!/usr/bin/env bash
d=\$(mktemp -d)
CLOUDPORT_ADMIN_PASSWORD=bench-password $BIN serve --listen 127.0.0.1:$PORT --data-dir "\$d" >/dev/null 2>&1 &
pid=\$!
until curl -fs http://127.0.0.1:$PORT/healthz >/dev/null; do sleep 0.005; done
kill \$pid; wait \$pid 2>/dev/null; rm -rf "\$d"
SH
chmod +x "$WORK/ready.sh"
hyperfine -N --warmup 2 --runs 20 --export-json "$WORK/ready.json" "$WORK/ready.sh" >&2
READY_MS=$(python3 -c "import json;r=json.load(open('$WORK/ready.json'))['results'][0];print(f\"{r['mean']*1000:.0f} ms (±{r['stddev']*1000:.0f})\")")

# 2. Idle resident memory after start-up and one login.
CLOUDPORT_ADMIN_PASSWORD=bench-password "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$WORK/data" >/dev/null 2>&1 &
SERVER=$!
until curl -fs http://127.0.0.1:$PORT/healthz >/dev/null; do sleep 0.02; done
curl -fs -o /dev/null http://127.0.0.1:$PORT/login
curl -fs -o /dev/null -H 'content-type: application/json' -d '{"username":"admin","password":"bench-password"}' http://127.0.0.1:$PORT/api/v1/auth/login
sleep 2
RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$SERVER/status)

# 3. Login page: Cloudport SSR vs nginx serving the same bytes from disk.
mkdir -p "$WORK/www"
curl -fs http://127.0.0.1:$PORT/login > "$WORK/www/login.html"
cat > "$WORK/nginx.conf" <<NG
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; location / { default_type text/html; } }
}
NG
nginx -c "$WORK/nginx.conf"
sleep 0.3
wrk_run() { wrk -t2 -c50 -d10s --latency "$1" 2>&1; }
parse() { # requests/s, p50, p99 from wrk --latency output
  awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {printf "%s %s %s\n", rps, p50, p99}'
}
wrk_run "http://127.0.0.1:$NGINX_PORT/login.html" >/dev/null   # warm-up
read -r CP_RPS CP_P50 CP_P99 < <(wrk_run "http://127.0.0.1:$PORT/login" | parse)
read -r NG_RPS NG_P50 NG_P99 < <(wrk_run "http://127.0.0.1:$NGINX_PORT/login.html" | parse)
RATIO=$(python3 -c "print(f'{$CP_RPS/$NG_RPS:.2f}')")

# 4. The WASM bundle as served.
WASM=$(ls target/site/pkg/*.wasm)
RAW_KB=$(( $(stat -c %s "$WASM") / 1024 ))
GZ_KB=$(( $(stat -c %s "$WASM.gz") / 1024 ))

cat <<MD
| measure | result | goal |
|---|---|---|
| process start → \`/healthz\` 200 (hyperfine, 20 runs, fresh data dir) | $READY_MS | < 1 s |
| idle resident memory after one login | $((RSS_KB / 1024)) MB | < 40 MB |
| \`GET /login\` SSR, wrk -t2 -c50 -d10s: requests/s | $CP_RPS (nginx static copy: $NG_RPS, ratio $RATIO) | — |
| \`GET /login\` SSR latency p50 / p99 | $CP_P50 / $CP_P99 (nginx: $NG_P50 / $NG_P99) | p99 < 10 ms |
| WASM bundle raw / gzipped | ${RAW_KB} KB / ${GZ_KB} KB | < 500 KB gzipped |
MD
