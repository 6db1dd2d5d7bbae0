#!/usr/bin/env bash
# `make run`: the main job on embedded mock defaults. Starts the mock console and the bridge
# daemon in mock mode publishing to it, with the local API on 127.0.0.1:31338; both log what
# they do. Ctrl-C stops both cleanly. State (leases, the API token) goes to .state/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUN=node_modules/.bin/bun
PORT=${PORT:-31337}
API=${API_PORT:-31338}
STATE=${STATE_DIR:-.state}

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing is listening on port $1" >&2
  return 1
}

$BUN src/main.ts mock-console --port "$PORT" &
console_pid=$!
bridge_pid=
cleanup() {
  [ -n "$bridge_pid" ] && kill -INT "$bridge_pid" 2>/dev/null || true
  kill -INT "$console_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
wait_port "$PORT"

$BUN src/main.ts serve --mock --publish --interval-ms "${INTERVAL_MS:-5000}" --tcp-port "$PORT" \
  --listen "127.0.0.1:$API" --state-dir "$STATE" "$@" &
bridge_pid=$!
wait_port "$API"
cat <<EOT

  The bridge is up. Try, in another terminal:
    curl -s http://127.0.0.1:$API/v1/gpus
    curl -s -H "Authorization: Bearer \$(cat $STATE/api-token)" -H 'content-type: application/json' \\
      -d '{"gpu_id":"GPU-0","worker_id":"demo","mem_mb":1024,"streams":1,"ttl_s":300}' http://127.0.0.1:$API/v1/leases
  Ctrl-C stops the bridge and the mock console.

EOT
wait "$bridge_pid"
