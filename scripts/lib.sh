# Shared helpers for the project scripts. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/target/tools"
# The wasm-bindgen CLI must match the wasm-bindgen crate pinned in Cargo.toml.
WASM_BINDGEN_VERSION="$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' "$ROOT/Cargo.toml")"
export PATH="$HOME/.cargo/bin:$TOOLS/node_modules/.bin:$PATH"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing Debian packages: ${missing[*]}"
        if [[ ! -f /var/lib/apt/periodic/cloudport-updated ]]; then
            apt-get update -qq && mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/cloudport-updated
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# What building the console needs: the wasm target, a matching wasm-bindgen
# CLI, and wasm-opt (from the npm package binaryen) to shrink the bundle.
ensure_build_tools() {
    command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
    apt_install pkg-config gzip zopfli protobuf-compiler
    if ! rustup target list --installed | grep -q wasm32-unknown-unknown; then
        log "adding the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
    if [[ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]]; then
        log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about two minutes, once)"
        cargo install -q wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION"
    fi
    if ! [[ -x "$TOOLS/node_modules/.bin/wasm-opt" ]] && command -v npm >/dev/null; then
        log "installing wasm-opt (npm package binaryen)"
        mkdir -p "$TOOLS"
        npm install --silent --prefix "$TOOLS" binaryen@132 >/dev/null 2>&1 || log "wasm-opt unavailable; the bundle will be larger"
    fi
}
