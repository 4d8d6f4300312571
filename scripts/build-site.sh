#!/usr/bin/env bash
# Builds the browser bundle into target/site: the app crate compiled to WASM
# with `hydrate`, bound with wasm-bindgen, shrunk with wasm-opt, named by
# content hash, and gzipped. The server embeds that folder when it is built.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_build_tools

log "building the WASM bundle"
cargo build -q -p app --lib --target wasm32-unknown-unknown --features hydrate --profile wasm-release
STAGE="$ROOT/target/site-stage"
rm -rf "$STAGE" && mkdir -p "$STAGE"
wasm-bindgen --target web --no-typescript --out-dir "$STAGE" --out-name cloudport \
    "$ROOT/target/wasm32-unknown-unknown/wasm-release/app.wasm"
if command -v wasm-opt >/dev/null; then
    wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
        "$STAGE/cloudport_bg.wasm" -o "$STAGE/cloudport_bg.opt.wasm"
    mv "$STAGE/cloudport_bg.opt.wasm" "$STAGE/cloudport_bg.wasm"
fi
cat style/*.css > "$STAGE/cloudport.css"

HASH="$(cat "$STAGE/cloudport.js" "$STAGE/cloudport_bg.wasm" "$STAGE/cloudport.css" | sha256sum | cut -c1-12)"
SITE="$ROOT/target/site"
rm -rf "$SITE" && mkdir -p "$SITE/pkg"
cp -r public/. "$SITE/"
cp "$STAGE/cloudport.js" "$SITE/pkg/cloudport-$HASH.js"
cp "$STAGE/cloudport_bg.wasm" "$SITE/pkg/cloudport-$HASH.wasm"
cp "$STAGE/cloudport.css" "$SITE/pkg/cloudport-$HASH.css"
# zopfli writes standard gzip, about 4 % smaller than gzip -9.
for f in "$SITE"/pkg/*; do
    if command -v zopfli >/dev/null; then zopfli --i5 "$f"; else gzip -9 -k "$f"; fi
done
log "bundle cloudport-$HASH: wasm $(stat -c %s "$SITE/pkg/cloudport-$HASH.wasm") bytes, gzipped $(stat -c %s "$SITE/pkg/cloudport-$HASH.wasm.gz") bytes"
