#!/usr/bin/env bash
# Makes sure Debian's python3-grpcio (gRPC's C core, as the kubelet's grpc-go is not JavaScript
# either) is there for test/k8s/interop.test.ts, installing it with apt-get where it can; where
# it cannot, it says so and the test skips, visibly.
set -euo pipefail
PY=/usr/bin/python3
if "$PY" -c 'import grpc' 2>/dev/null; then exit 0; fi
echo "k8s-interop: installing python3-grpcio from Debian's packages"
if ! { apt-get install -y -qq python3-grpcio >/dev/null 2>&1 ||
       { apt-get update -qq && apt-get install -y -qq python3-grpcio >/dev/null; }; }; then
  echo "k8s-interop: SKIPPED: python3-grpcio cannot be installed here (needs root and Debian's packages); the interop test will skip"
  exit 0
fi
echo "k8s-interop: $("$PY" -c 'import grpc; print("python3-grpcio", grpc.__version__)')"
