#!/usr/bin/env bash
# Builds build/cdi-load: test/consumer/cdi-load.go against the CNCF CDI Go library as Debian
# packages it (0.5.x, the library inside Debian 12's podman 4.3), offline, in GOPATH mode from
# /usr/share/gocode. test/cdi/consumer.test.ts loads our generated specs with it. Where Go or the
# library cannot be installed, it says so and the test skips, visibly.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/cdi-load
LIB=/usr/share/gocode/src/github.com/container-orchestrated-devices/container-device-interface
PKGS="golang-go golang-github-container-orchestrated-devices-container-device-interface-dev"
if ! command -v go >/dev/null || [ ! -d "$LIB" ]; then
  echo "cdi-consumer: installing Go and the CDI library's source from Debian's packages"
  # shellcheck disable=SC2086
  if ! { apt-get install -y -qq $PKGS >/dev/null 2>&1 ||
         { apt-get update -qq && apt-get install -y -qq $PKGS >/dev/null; }; }; then
    echo "cdi-consumer: SKIPPED: $PKGS cannot be installed here (needs root and Debian's packages); the consumer test will skip"
    rm -f "$OUT"
    exit 0
  fi
fi
if [ -x "$OUT" ] && [ "$OUT" -nt test/consumer/cdi-load.go ]; then exit 0; fi
mkdir -p build/cdi-load-src
cp test/consumer/cdi-load.go build/cdi-load-src/main.go
# GOPATH mode (no modules): every import resolves under /usr/share/gocode, nothing is fetched.
(cd build/cdi-load-src && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off GOCACHE="$PWD/../go-cache" \
  go build -o "../cdi-load" main.go)
echo "cdi-consumer: built $OUT with $(go version | cut -d' ' -f3) and the CDI library in $LIB"
