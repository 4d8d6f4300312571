#!/usr/bin/env bash
# One command for the whole test suite on a fresh Debian machine: installs
# what is missing (build tools, PostgreSQL, Chromium, Playwright from npm),
# starts a throwaway PostgreSQL on a loopback port, builds the UI bundle and
# the binary, then runs the Rust tests (SQLite and PostgreSQL) and the
# browser tests against the real binary.
source "$(dirname "$0")/lib.sh"
source "$ROOT/scripts/postgres.sh"
cd "$ROOT"

ensure_build_tools
apt_install postgresql chromium etcd-server protobuf-compiler openssl
# Node.js may come from elsewhere than Debian (whose npm would conflict with it).
command -v npm >/dev/null || apt_install nodejs npm
start_test_postgres

"$ROOT/scripts/build-site.sh"

log "Rust tests (unit, integration on SQLite and PostgreSQL)"
cargo test --release --workspace --no-fail-fast

# `cargo test` has just built target/release/cloudport for the integration tests.
log "browser tests (Playwright driving /usr/bin/chromium)"
cd "$ROOT/end2end"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent
npx playwright test
