#!/usr/bin/env bash
# `make run`: the main job on embedded mock defaults. Starts the mock console and the bridge
# daemon in mock mode publishing to it, with the local API on 127.0.0.1:31338; both log what
# they do. Ctrl-C stops both cleanly. State (leases, the API token, a copy of the example
# registry) goes to .state/.
#
# Settings, from the environment or the make command line (make run PORT=31400 API_PORT=31401):
#   PORT         the mock console's TCP port (31337)
#   API_PORT     the bridge's local API port (31338)
#   STATE_DIR    the bridge's --state-dir (.state)
#   REGISTRY     the model registry (default: mock/registry, copied to $STATE_DIR/registry once)
#   INTERVAL_MS  the bridge's --interval-ms between publishes (5000)
#   READBACK_MS  the bridge's --readback-ms (2000)
#   ARGS         (make only) extra bridge flags, e.g. ARGS="--log-level debug"
set -euo pipefail
cd "$(dirname "$0")/.."
BUN=node_modules/.bin/bun
PORT=${PORT:-31337}
API=${API_PORT:-31338}
STATE=${STATE_DIR:-.state}
INTERVAL=${INTERVAL_MS:-5000}
READBACK=${READBACK_MS:-2000}

fail() {
  echo "make run: $*" >&2
  exit 1
}

for v in PORT API_PORT; do
  p=${!v:-}
  [ -z "$p" ] || [[ "$p" =~ ^[0-9]+$ && "$p" -ge 1 && "$p" -le 65535 ]] ||
    fail "$v must be a TCP port from 1 to 65535, got '$p'"
done
[ "$PORT" != "$API" ] || fail "PORT and API_PORT are both $PORT: give them different ports"

# Something already answering on a port (another make run, most often) would otherwise be
# taken for this run's console or API, and this run would talk to the other one.
taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
taken "$PORT" && fail "port $PORT (the mock console) is taken on 127.0.0.1: another make run or program listens there.
  Stop it, or move this one: make run PORT=$((PORT + 100)) API_PORT=$((API + 100)) STATE_DIR=.state-$((PORT + 100))"
taken "$API" && fail "port $API (the bridge's API) is taken on 127.0.0.1: another make run or program listens there.
  Stop it, or move this one: make run API_PORT=$((API + 100)) (and PORT=, STATE_DIR= for a second bridge)"

# The example registry is copied, not used in place: PUT /v1/models/active rewrites `active`.
if [ -z "${REGISTRY:-}" ]; then
  REGISTRY=$STATE/registry
  if [ ! -e "$REGISTRY" ]; then
    mkdir -p "$STATE" || fail "cannot create STATE_DIR=$STATE (the bridge's --state-dir): pick a writable folder with make run STATE_DIR=DIR"
    cp -R mock/registry "$REGISTRY"
  fi
fi

# Waits until $2 listens on port $1; fails if the process exits first or nothing listens in 10 s.
wait_port() {
  for _ in $(seq 100); do
    kill -0 "$3" 2>/dev/null || {
      wait "$3" && status=0 || status=$?
      fail "$2 exited (status $status) before listening on port $1; its error is above"
    }
    taken "$1" && return 0
    sleep 0.1
  done
  fail "$2 did not listen on port $1 within 10 s"
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
wait_port "$PORT" "the mock console" "$console_pid"

$BUN src/main.ts serve --mock --publish --interval-ms "$INTERVAL" --tcp-port "$PORT" \
  --listen "127.0.0.1:$API" --state-dir "$STATE" --registry "$REGISTRY" --readback-ms "$READBACK" "$@" &
bridge_pid=$!
wait_port "$API" "the bridge" "$bridge_pid"
cat <<EOT

  The bridge is up: the API on 127.0.0.1:$API, the mock console on 127.0.0.1:$PORT, state in
  $STATE, models from $REGISTRY. Try, in another terminal:
    curl -s http://127.0.0.1:$API/v1/gpus
    curl -s -H "Authorization: Bearer \$(cat $STATE/api-token)" -H 'content-type: application/json' \\
      -d '{"gpu_id":"GPU-0","worker_id":"demo","mem_mb":1024,"streams":1,"ttl_s":300}' http://127.0.0.1:$API/v1/leases
    curl -s -X PUT -H "Authorization: Bearer \$(cat $STATE/api-token)" -H 'content-type: application/json' \\
      -d '{"model_id":"demo-lora-v1"}' http://127.0.0.1:$API/v1/models/active

  Play the Queen against the mock VM (the console client speaks what cohsh speaks):
    GBH="$BUN src/main.ts console --tcp-port $PORT"
    \$GBH ls /gpu                                    # what the VM sees
    \$GBH echo /queen/ctl '{"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":4096,"streams":1,"ttl_s":120,"priority":1}}'
    \$GBH cat /gpu/GPU-0/lease                       # the VM's own ACTIVE line for worker-1
    curl -s http://127.0.0.1:$API/v1/leases           # adopted by the bridge within $READBACK ms; expires 120 s later
    \$GBH echo /gpu/GPU-0/status '{"schema":"gpu-breadcrumb/v1","event":"START","command":"demo","status":"RUNNING"}' \\
      --role worker-gpu --ticket t1                    # a breadcrumb: it survives every republish
    \$GBH echo /gpu/GPU-0/ctl RELEASE worker-1 done   # a control line written in the VM, applied once
    \$GBH cat /gpu/GPU-0/ctl; \$GBH cat /gpu/GPU-0/lease   # the bridge's answer, in the VM

  Ctrl-C stops the bridge and the mock console.

EOT
wait "$bridge_pid"
