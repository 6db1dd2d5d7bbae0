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
  --listen "127.0.0.1:$API" --state-dir "$STATE" --readback-ms "${READBACK_MS:-2000}" "$@" &
bridge_pid=$!
wait_port "$API"
cat <<EOT

  The bridge is up. Try, in another terminal:
    curl -s http://127.0.0.1:$API/v1/gpus
    curl -s -H "Authorization: Bearer \$(cat $STATE/api-token)" -H 'content-type: application/json' \\
      -d '{"gpu_id":"GPU-0","worker_id":"demo","mem_mb":1024,"streams":1,"ttl_s":300}' http://127.0.0.1:$API/v1/leases

  Play the Queen against the mock VM (the console client speaks what cohsh speaks):
    GBH="$BUN src/main.ts console --tcp-port $PORT"
    \$GBH ls /gpu                                    # what the VM sees
    \$GBH echo /queen/ctl '{"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":4096,"streams":1,"ttl_s":120,"priority":1}}'
    \$GBH cat /gpu/GPU-0/lease                       # the VM's own ACTIVE line for worker-1
    curl -s http://127.0.0.1:$API/v1/leases           # adopted by the bridge within ${READBACK_MS:-2000} ms; expires 120 s later
    \$GBH echo /gpu/GPU-0/status '{"schema":"gpu-breadcrumb/v1","event":"START","command":"demo","status":"RUNNING"}' \\
      --role worker-gpu --ticket t1                    # a breadcrumb: it survives every republish
    \$GBH echo /gpu/GPU-0/ctl RELEASE worker-1 done   # a control line written in the VM, applied once
    \$GBH cat /gpu/GPU-0/ctl; \$GBH cat /gpu/GPU-0/lease   # the bridge's answer, in the VM

  Ctrl-C stops the bridge and the mock console.

EOT
wait "$bridge_pid"
