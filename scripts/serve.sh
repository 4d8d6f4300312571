#!/usr/bin/env bash
# One command from a fresh Debian machine to a running console: installs the
# build tools that are missing, builds the UI bundle and the `cloudport`
# binary, then starts `cloudport serve` (console on http://127.0.0.1:3000,
# data in ./cloudport-data). Extra arguments go to `cloudport serve`.
source "$(dirname "$0")/lib.sh"
"$ROOT/scripts/build-site.sh"
log "building cloudport"
(cd "$ROOT" && cargo build -q --release -p server)
log "starting: $ROOT/target/release/cloudport serve $*"
exec "$ROOT/target/release/cloudport" serve "$@"
