#!/usr/bin/env bash
# Real clients for tests/clients: Debian's Chromium (driven by Playwright, never
# `playwright install`) and the npm package ws for the Node.js test.
# Idempotent and quiet: does nothing when both are already there; prints the installer's
# output and fails when an install fails (CI must run the real-client tests, not skip them).
# The tests find ws in $WSTAPE_NODE_MODULES, else in .ci/node_modules (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."

WS_VERSION=8.23.0
NODE_MODULES=${WSTAPE_NODE_MODULES:-.ci/node_modules}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

fail() {
    echo "setup-clients: $1 failed:" >&2
    cat "$log" >&2
    exit 1
}

if [ ! -x /usr/bin/chromium ]; then
    echo "setup-clients: installing chromium (apt-get, about a minute)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq >"$log" 2>&1 || fail "apt-get update"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >"$log" 2>&1 \
        || fail "apt-get install chromium"
    [ -x /usr/bin/chromium ] || fail "chromium install (no /usr/bin/chromium)"
fi

if [ "$(basename "$NODE_MODULES")" != node_modules ]; then
    echo "setup-clients: WSTAPE_NODE_MODULES must name a folder called node_modules" >&2
    exit 1
fi
prefix=$(dirname "$NODE_MODULES")
installed=$(node -p 'require(process.argv[1]).version' "$(realpath -m "$NODE_MODULES")/ws/package.json" \
    2>/dev/null || true)
if [ "$installed" != "$WS_VERSION" ]; then
    command -v npm >/dev/null || { echo "setup-clients: npm not found" >&2; exit 1; }
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund \
        --loglevel=error "ws@$WS_VERSION" >"$log" 2>&1 || fail "npm install ws@$WS_VERSION"
fi
