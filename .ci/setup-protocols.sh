#!/usr/bin/env bash
# Real protocol servers and clients for tests/protocols and bench/protocols_today.py:
# npm packages (Socket.IO, graphql-ws, MQTT.js, rpc-websockets, a STOMP broker and client)
# pinned to exact versions in .ci/node_modules (or $WSTAPE_NODE_MODULES), and Debian's
# mosquitto. The Python ones (python-socketio, aiohttp, paho-mqtt) are in pyproject's dev
# extra.
# Idempotent and quiet: does nothing when every pinned version is already installed; prints
# the installer's output and fails when an install fails (CI must run these tests, not skip).
# Run after setup-clients.sh: npm prunes what it was not asked for, so ws is asked for
# again here, at the version setup-clients.sh pins.
set -euo pipefail
cd "$(dirname "$0")/.."

WS_VERSION=$(sed -n 's/^WS_VERSION=//p' .ci/setup-clients.sh)
[ -n "$WS_VERSION" ] || { echo "setup-protocols: no WS_VERSION in .ci/setup-clients.sh" >&2; exit 1; }
PACKAGES=(
    "ws@$WS_VERSION"
    socket.io-client@4.8.4
    graphql-ws@6.4.2
    graphql@16.15.0
    mqtt@5.16.0
    rpc-websockets@10.0.1
    stomp-broker-js@1.3.0
    @stomp/stompjs@7.5.0
)
NODE_MODULES=${WSTAPE_NODE_MODULES:-.ci/node_modules}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

fail() {
    echo "setup-protocols: $1 failed:" >&2
    cat "$log" >&2
    exit 1
}

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    echo "setup-protocols: installing mosquitto (apt-get)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq >"$log" 2>&1 || fail "apt-get update"
    # policy-rc.d / no systemd: the package's own service is not started (the tests run
    # their own broker with their own config).
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        mosquitto >"$log" 2>&1 || fail "apt-get install mosquitto"
    [ -x /usr/sbin/mosquitto ] || fail "mosquitto install (no /usr/sbin/mosquitto)"
fi

if [ "$(basename "$NODE_MODULES")" != node_modules ]; then
    echo "setup-protocols: WSTAPE_NODE_MODULES must name a folder called node_modules" >&2
    exit 1
fi
command -v node >/dev/null || { echo "setup-protocols: node not found" >&2; exit 1; }
prefix=$(dirname "$NODE_MODULES")
modules=$(realpath -m "$NODE_MODULES")
missing=()
for spec in "${PACKAGES[@]}"; do
    name=${spec%@*}
    want=${spec##*@}
    have=$(node -p 'require(process.argv[1]).version' "$modules/$name/package.json" \
        2>/dev/null || true)
    if [ "$have" != "$want" ]; then missing+=("$spec"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v npm >/dev/null || { echo "setup-protocols: npm not found" >&2; exit 1; }
    mkdir -p "$prefix"
    # All of them at once, every time: an install of only the missing ones would prune the rest.
    npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund \
        --loglevel=error "${PACKAGES[@]}" >"$log" 2>&1 \
        || fail "npm install ${missing[*]}"
    for spec in "${PACKAGES[@]}"; do
        name=${spec%@*}
        want=${spec##*@}
        have=$(node -p 'require(process.argv[1]).version' "$modules/$name/package.json" \
            2>/dev/null || true)
        [ "$have" = "$want" ] || { echo "npm left $name at '$have', not $want" >"$log"; fail "npm install"; }
    done
fi
