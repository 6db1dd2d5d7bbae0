#!/usr/bin/env bash
# `make test-arm64`: the arm64 binary under qemu-user, emulating the Jetson Nano's Cortex-A57.
# --mock --list must print the fixture's exact bytes and a publish to the mock console must land.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/dist/gpu-bridge-host-linux-arm64
SYSROOT=/usr/aarch64-linux-gnu
if ! command -v qemu-aarch64 >/dev/null || [ ! -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ]; then
  echo "test-arm64: installing qemu-user and the arm64 C library from Debian's packages"
  if ! { apt-get install -y -qq qemu-user libc6-arm64-cross >/dev/null 2>&1 ||
         { apt-get update -qq && apt-get install -y -qq qemu-user libc6-arm64-cross >/dev/null; }; }; then
    echo "test-arm64: SKIPPED: qemu-user cannot be installed here (needs root and Debian's packages)"
    exit 0
  fi
fi
run() { qemu-aarch64 -cpu cortex-a57 -L "$SYSROOT" "$BIN" "$@"; }

start=$(date +%s)
(cd /tmp && run --mock --list) | cmp - test/fixtures/mock-list.json
echo "arm64 (Cortex-A57, emulated): --mock --list matches the fixture"

log=$(mktemp)
node_modules/.bin/bun src/main.ts mock-console --port 0 --auth-token arm 2>"$log" &
console=$!
trap 'kill -INT $console 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
run --mock --publish --tcp-port "$port" --auth-token arm
for _ in $(seq 50); do grep -q "snapshot landed" "$log" && break; sleep 0.1; done
grep -q "snapshot landed: 2 GPUs, 2 models" "$log"
echo "arm64 (Cortex-A57, emulated): a publish to the mock console landed"
echo "test-arm64: passed in $(( $(date +%s) - start )) s"
