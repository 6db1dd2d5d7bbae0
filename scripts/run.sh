#!/usr/bin/env bash
# `make run`: the main job on embedded mock defaults. Starts the mock console and the bridge
# daemon in mock mode publishing to it; both log what they do. Ctrl-C stops both cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
BUN=node_modules/.bin/bun
PORT=${PORT:-31337}

$BUN src/main.ts mock-console --port "$PORT" &
console_pid=$!
trap 'kill -INT "$console_pid" 2>/dev/null || true; wait "$console_pid" 2>/dev/null || true' EXIT
# Wait until the console accepts connections (at most ~5 s).
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

$BUN src/main.ts serve --mock --publish --interval-ms "${INTERVAL_MS:-5000}" --tcp-port "$PORT" "$@"
