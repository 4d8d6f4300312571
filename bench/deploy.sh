#!/usr/bin/env bash
# Deploy benchmarks: wall time of `cloudport push` — upload, build, deploy and
# wait until healthy — per sample app, against a console with its embedded
# datacenter. "cold" pushes each run to a new component (no dependency cache,
# nothing running yet); "cached" pushes again to the same running component
# (dependencies unchanged, so a rolling deploy of a new version).
# Prints a Markdown table for docs/benchmarks.md.
#
#   bench/deploy.sh            (builds what is missing first)
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
apt_install hyperfine curl
[[ -x target/release/cloudport ]] || { scripts/build-site.sh; cargo build -q --release -p server; }

WORK="$(mktemp -d)"
# A private copy: a rebuild during the run must not swap the binary under it.
cp target/release/cloudport "$WORK/cloudport"
BIN="$WORK/cloudport"
PORT=3941
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT

CLOUDPORT_ADMIN_PASSWORD=bench-password "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$WORK/data" >"$WORK/serve.log" 2>&1 &
until curl -fs http://127.0.0.1:$PORT/healthz >/dev/null; do sleep 0.05; done
curl -fs -c "$WORK/jar" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"bench-password"}' http://127.0.0.1:$PORT/api/v1/auth/login >/dev/null
export CLOUDPORT_URL="http://127.0.0.1:$PORT"
export CLOUDPORT_TOKEN=$(curl -fs -b "$WORK/jar" -H 'content-type: application/json' \
  -d '{"name":"bench"}' http://127.0.0.1:$PORT/api/v1/tokens | python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')
echo 0 > "$WORK/n"

mean() { python3 -c "import json;r=json.load(open('$1'))['results'][0];print(f\"{r['mean']:.2f} s (±{r['stddev']:.2f}, min {r['min']:.2f})\")"; }

echo "| sample | cold: new component | cached: push again |"
echo "|---|---|---|"
for sample in static-site python-hello node-hello python-deps rust-hello; do
  cat > "$WORK/cold.sh" <<SH
#!/usr/bin/env bash
n=\$(( \$(cat $WORK/n) + 1 )); echo \$n > $WORK/n
exec $BIN push $ROOT/examples/$sample --team bench --app cold --component $sample-\$n >/dev/null
SH
  cat > "$WORK/cached.sh" <<SH
#!/usr/bin/env bash
exec $BIN push $ROOT/examples/$sample --team bench --app cached --component $sample >/dev/null
SH
  chmod +x "$WORK/cold.sh" "$WORK/cached.sh"
  hyperfine -N --runs 5 --export-json "$WORK/cold.json" "$WORK/cold.sh" >&2
  hyperfine -N --warmup 1 --runs 5 --export-json "$WORK/cached.json" "$WORK/cached.sh" >&2
  echo "| $sample | $(mean "$WORK/cold.json") | $(mean "$WORK/cached.json") |"
done
