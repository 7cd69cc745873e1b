#!/bin/sh
# Runs examples/node/embed.js (libsimclr through the koffi FFI) when Node.js is
# installed; prints "skipped: no node" and exits 0 otherwise. koffi comes from
# examples/node/package-lock.json (npm ci) when node_modules is missing.
# Env: SIMCLR_LIBRARY = the .so to load (default: lib/libsimclr.so.0 of this tree).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dir="$here/examples/node"
if ! command -v node >/dev/null 2>&1; then
    echo "node example: skipped: no node"
    exit 0
fi
if [ ! -d "$dir/node_modules/koffi" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "node example: skipped: no npm to install koffi"
        exit 0
    fi
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
SIMCLR_LIBRARY="${SIMCLR_LIBRARY:-$here/lib/libsimclr.so.0}" node "$dir/embed.js"
