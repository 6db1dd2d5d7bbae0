# gpu-bridge-host: every target installs what it needs (npm ci brings Bun and Deno).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BUN  := node_modules/.bin/bun
DENO := node_modules/.bin/deno
TSC  := node_modules/.bin/tsc
SRC  := $(shell find src mock ffi -name '*.ts' 2>/dev/null)
BIN  := dist/gpu-bridge-host
BIN_ARM64 := dist/gpu-bridge-host-linux-arm64
VERSION := $(shell sed -n 's/.*"version": "\(.*\)".*/\1/p' package.json | head -1)
BUN_VERSION := $(shell sed -n 's/.*"bun": "\(.*\)".*/\1/p' package.json | head -1)
HOST_ARCH := $(shell uname -m | sed 's/x86_64/x64/; s/aarch64/arm64/')
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=
FIXTURE := test/fixtures/mock-list.json
# --bytecode precompiles the bundle, so start-up skips parsing it. --splitting (which needs
# ESM) keeps each lazily imported module in its own chunk: without it the bundler hoists every
# node: builtin to the top of one file, and node:crypto plus node:fs alone add ~6 ms to every
# start. bench-startup builds its hello-world floor with the same flags. A compiled Bun reads
# `.env` and `bunfig.toml` from its working directory by default: a daemon must not take its
# environment (GPU_BRIDGE_API_TOKEN, GPU_BRIDGE_CUDA_LIB, ...) from whatever folder it starts in.
COMPILE_FLAGS := --compile --minify --bytecode --format=esm --splitting --no-compile-autoload-dotenv --no-compile-autoload-bunfig
# Worker modules are extra entry points: a compiled binary holds only what the build was given.
WORKERS := src/vram/tree-worker.ts src/audit/trail-worker.ts

.PHONY: native-fakes help deps install run lint fmt fmt-check test-reset build-arm64 test-arm64 dist test typecheck test-bun test-deno test-binary build bench bench-startup bench-publish bench-stats bench-doctor bench-leases bench-audit bench-tenancy bench-api bench-telemetry bench-rss bench-vram bench-vram-sets ptx check-ptx gpu-check bench-cdi cdi-consumer bench-vmback soak bench-cancel bench-logs clean mutation deb demo-lora bench-k8s k8s-interop

help: ## list these targets, one line each
	@echo "gpu-bridge-host $(VERSION): make TARGET, where TARGET is one of"
	@awk 'match($$0, /^[a-z0-9-]+:.* ## /) { t = substr($$0, 1, index($$0, ":") - 1); printf "  %-16s %s\n", t, substr($$0, RLENGTH + 1) }' $(firstword $(MAKEFILE_LIST))

# `npm ci`: the committed lock file is installed exactly, or the install fails. The lock records
# every platform's optional binaries (Bun's and Deno's), so the registry serving more or fewer of
# them cannot change what linux-x64 or linux-arm64 get; scripts/check-lock.mjs proves that,
# offline, before anything is fetched. cbor-x's native addon is replaced by a stand-in
# (docs/install.md says why).
node_modules/.installed: package.json package-lock.json scripts/check-lock.mjs
	@if [ -L node_modules ]; then echo "node_modules is a symlink (to $$(readlink node_modules)): npm ci would empty the install it points at; give this checkout its own (cp -al it, or remove the link)"; exit 1; fi
	node scripts/check-lock.mjs
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: node_modules/.installed ## install the locked npm packages (Bun, Deno, ...) with npm ci

# Extra bridge flags go in ARGS, e.g. make run ARGS="--log-level debug". PORT, API_PORT,
# STATE_DIR, REGISTRY, INTERVAL_MS and READBACK_MS move it (scripts/run.sh and the README say how);
# a taken port stops it with the port and the variable named.
run: deps ## run the bridge daemon on the embedded mock defaults (ARGS="--log-level debug" adds flags; PORT=, STATE_DIR=, ...)
	scripts/run.sh $(ARGS)

## Tests ---------------------------------------------------------------------

# Fake libnvidia-ml.so.1 and libcuda.so.1 for the FFI tests, built with the machine's C compiler.
FAKES := mock/native/build/libnvidia-ml.so.1 mock/native/build/libcuda.so.1
CC ?= cc
mock/native/build/libnvidia-ml.so.1: mock/native/fake_nvml.c mock/native/fake_ctl.h
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -O2 -Wall -Wextra -Werror -o $@ $<
mock/native/build/libcuda.so.1: mock/native/fake_cuda.c mock/native/fake_ctl.h src/vram/ptx/sha256_tree.h
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -O2 -Wall -Wextra -Werror -o $@ $<
native-fakes: $(FAKES) ## build the fake libnvidia-ml and libcuda the FFI tests load

test: deps test-reset typecheck lint fmt-check check-ptx test-bun test-deno test-binary test-arm64 ## every check and test: typecheck, lint, fmt-check, check-ptx, bun, deno, binary, arm64
	@awk '{p+=$$1; f+=$$2} END{printf "make test: %d passed, %d failed\n", p, f}' .test-counts
	@rm -f .test-counts

typecheck: deps ## tsc and deno check over the sources
	$(TSC) -p tsconfig.json
	$(DENO) check --quiet src/ mock/

# deno lint's recommended rules over the product code (deno.json says which folders).
lint: deps ## deno lint's recommended rules over the product code
	$(DENO) lint --quiet

# The formatter's settings (deno.json "fmt": 140 columns, 2 spaces, double quotes, semicolons)
# match the house style. `make fmt` rewrites the files; `make fmt-check` only reports.
fmt: deps ## format the TypeScript (deno fmt, settings in deno.json)
	$(DENO) fmt --quiet

fmt-check: deps ## report unformatted files without changing them
	$(DENO) fmt --check --quiet

# Each suite appends "passed failed" to .test-counts; `make test` starts it afresh (a suite run
# on its own before would otherwise be counted twice) and prints the sum last.
test-reset: ## forget the per-suite pass/fail counts make test sums
	@rm -f .test-counts

# The amd64 Debian package is built first where dpkg-deb exists (test/packaging/deb.test.ts
# unpacks it; it skips, saying so, where dpkg-deb is missing).
test-bun: deps native-fakes $(BIN) dist cdi-consumer k8s-interop $(if $(shell command -v dpkg-deb),dist/gpu-bridge-host_$(VERSION)_amd64.deb) ## the bun:test suites (needs the binaries, the tarballs, the amd64 .deb, cdi-consumer and k8s-interop)
	$(BUN) test --timeout 20000 2>&1 | tee .test-bun.log
	@awk '/^ *[0-9]+ pass$$/{p=$$1} /^ *[0-9]+ fail$$/{f=$$1} /^ *[0-9]+ skip$$/{s=$$1} \
	  END{printf "bun test: %d passed, %d failed%s\n", p, f, (s ? sprintf(", %d skipped", s) : ""); \
	      printf "%d %d\n", p, f >> ".test-counts"}' .test-bun.log
	@rm -f .test-bun.log

# The pure core and the --list path also run on Deno.
test-deno: deps native-fakes ## the pure core and --mock --list on Deno
	$(DENO) run --quiet -A src/main.ts --mock --list | cmp - $(FIXTURE)
	NO_COLOR=1 $(DENO) test --quiet -A test/deno/core_deno.ts 2>&1 | tee .test-deno.log
	@awk '/passed \|/{for(i=1;i<=NF;i++){if($$(i+1)=="passed")p=$$i; if($$(i+1)=="failed")f=$$i}} \
	  END{printf "%d %d\n", p, f >> ".test-counts"}' .test-deno.log
	@rm -f .test-deno.log
	@echo "deno: --mock --list matches $(FIXTURE)"

test-binary: $(BIN) ## the compiled binary, run from /tmp, against the --mock --list fixture
	cd /tmp && $(CURDIR)/$(BIN) --mock --list | cmp - $(CURDIR)/$(FIXTURE)
	@echo "binary: --mock --list from /tmp matches $(FIXTURE)"

# Mutation testing (StrykerJS, docs/testing.md): the core modules of scripts/mutation-modules.mjs
# changed since BASE (default: the merge-base with main), every one with FULL=1, one with
# MODULE=name; prints each module's score and fails under 85%. CONCURRENCY sets Stryker's test
# runners (2), MUTATION_BUDGET_S bounds the run's seconds.
mutation: deps native-fakes ## mutation-test the core modules changed since main (FULL=1: all; MODULE=name)
	node scripts/mutation.mjs

# A real CDI consumer for test/cdi/consumer.test.ts: the CDI Go library as Debian packages it
# (podman 4.3's), built offline into build/cdi-load; installs Go and the library with apt-get
# where it can, and says so (the test then skips) where it cannot.
cdi-consumer: ## build the CDI Go library's loader the consumer test runs (apt-get where needed)
	scripts/cdi-consumer.sh

# A non-JavaScript kubelet for test/k8s/interop.test.ts: Debian's python3-grpcio, installed with
# apt-get where it is missing; where it cannot be, it says so (the test then skips).
k8s-interop: ## install python3-grpcio for the device plugin's interop test (apt-get where needed)
	scripts/k8s-interop.sh

## Build ---------------------------------------------------------------------

build: $(BIN) ## write dist/gpu-bridge-host (bun build --compile)

$(BIN): node_modules/.installed $(SRC) Makefile
	@mkdir -p dist
	$(BUN) build $(COMPILE_FLAGS) src/main.ts $(WORKERS) --outfile $@ >/dev/null
	@echo "built $@"

# The arm64 Bun runtime comes from npm (@oven/bun-linux-aarch64, pinned to our Bun) and is
# handed to the compiler, so nothing is downloaded at build time. Its tarball must match the
# integrity the lock records.
ARM64_RUNTIME := build/bun-linux-aarch64-$(BUN_VERSION)/package/bin/bun
$(ARM64_RUNTIME): package.json package-lock.json
	@mkdir -p build/bun-linux-aarch64-$(BUN_VERSION)
	cd build && npm pack @oven/bun-linux-aarch64@$(BUN_VERSION) --pack-destination . --loglevel=error >/dev/null
	node scripts/check-lock.mjs --tarball node_modules/@oven/bun-linux-aarch64 build/oven-bun-linux-aarch64-$(BUN_VERSION).tgz
	tar xzf build/oven-bun-linux-aarch64-$(BUN_VERSION).tgz -C build/bun-linux-aarch64-$(BUN_VERSION)
	@touch $@

build-arm64: $(BIN_ARM64) ## write dist/gpu-bridge-host-linux-arm64 (cross-compiled with the pinned arm64 Bun)

$(BIN_ARM64): node_modules/.installed $(SRC) Makefile $(ARM64_RUNTIME)
	@mkdir -p dist
	$(BUN) build $(COMPILE_FLAGS) --target=bun-linux-arm64 --compile-executable-path $(ARM64_RUNTIME) \
	  src/main.ts $(WORKERS) --outfile $@ >/dev/null
	@echo "built $@"

test-arm64: $(BIN_ARM64) ## check the arm64 binary (scripts/test-arm64.sh)
	scripts/test-arm64.sh

## Packaging -----------------------------------------------------------------

# One staged folder per architecture holds everything an install lays out: the binary, the
# systemd unit (written for /usr/local), the environment file, the README, the man page (from
# the --help tables), the bash, zsh and fish completions, and install.sh. `make dist` tars it;
# `make install` runs its install.sh; `make deb` runs the same install.sh into the package's
# root, so the tarball, an install and the package lay files out the same way.
STAGE = dist/gpu-bridge-host-$(VERSION)-linux-$(1)
PACKAGED := packaging/gpu-bridge-host.service.in packaging/gpu-bridge-host.env packaging/install.sh README.md packaging/gen-man.ts
# A stage's binary: x64's, or arm64's (cross-compiled, see build-arm64).
binary_of = $(if $(filter arm64,$(1)),$(BIN_ARM64),$(BIN))
# The man page and the package's changelog carry the last commit's date, so a rebuild of the
# same commit gives the same files.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

.SECONDEXPANSION:
dist/gpu-bridge-host-$(VERSION)-linux-%/gpu-bridge-host: $(PACKAGED) $$(call binary_of,$$*) $(SRC) node_modules/.installed
	@rm -rf $(@D); mkdir -p $(@D)/completions
	sed -e 's|@PREFIX@|/usr/local|g' -e 's|@SYSCONFDIR@|/etc|g' packaging/gpu-bridge-host.service.in > $(@D)/gpu-bridge-host.service
	cp packaging/gpu-bridge-host.env packaging/install.sh README.md $(@D)/
	$(BUN) src/main.ts completion bash > $(@D)/completions/gpu-bridge-host.bash
	$(BUN) src/main.ts completion zsh > $(@D)/completions/_gpu-bridge-host
	$(BUN) src/main.ts completion fish > $(@D)/completions/gpu-bridge-host.fish
	$(BUN) packaging/gen-man.ts | gzip -9n > $(@D)/gpu-bridge-host.1.gz
	cp $(call binary_of,$*) $@

dist/gpu-bridge-host-$(VERSION)-linux-%.tar.gz: dist/gpu-bridge-host-$(VERSION)-linux-%/gpu-bridge-host
	tar czf $@ -C dist gpu-bridge-host-$(VERSION)-linux-$*
	@echo "wrote $@"

.PRECIOUS: dist/gpu-bridge-host-$(VERSION)-linux-%/gpu-bridge-host
dist: $(call STAGE,x64).tar.gz $(call STAGE,arm64).tar.gz ## write the x64 and arm64 tarballs (binary, unit, man page, completions, install.sh)

# make install [PREFIX=/usr/local] [SYSCONFDIR=/etc] [DESTDIR=] [ARCH=x64|arm64]
ARCH ?= $(HOST_ARCH)
install: $(call STAGE,$(ARCH))/gpu-bridge-host ## install into PREFIX (/usr/local): binary, systemd unit, settings, man page, completions
	PREFIX=$(PREFIX) SYSCONFDIR=$(SYSCONFDIR) DESTDIR=$(DESTDIR) $(call STAGE,$(ARCH))/install.sh

# The Debian packages (docs/packaging.md): amd64 from the x64 stage, arm64 from the arm64 one.
DEB = dist/gpu-bridge-host_$(VERSION)_$(1).deb
stage_of_deb = $(call STAGE,$(if $(filter arm64,$(1)),arm64,x64))
DEB_MAINTAINER ?= Cohesix GPU bridge maintainers <gpu-bridge-host@cohesix.invalid>
dist/gpu-bridge-host_$(VERSION)_%.deb: $$(call stage_of_deb,$$*)/gpu-bridge-host $(wildcard packaging/deb/*)
	VERSION=$(VERSION) DEB_MAINTAINER="$(DEB_MAINTAINER)" packaging/deb/build.sh $* $(call stage_of_deb,$*) $@

deb: $(call DEB,amd64) $(call DEB,arm64) ## build dist/gpu-bridge-host_VERSION_amd64.deb and _arm64.deb (dpkg-deb)

## Benchmarks ----------------------------------------------------------------

# The LoRA loop end to end on the mock (scripts/demo-lora.ts), each step narrated with its time;
# test/scripts/demo-lora.test.ts runs the same under a one-minute deadline.
demo-lora: deps ## the LoRA loop end to end on the mock, narrated step by step with timings
	$(BUN) scripts/demo-lora.ts

bench: bench-startup bench-publish bench-stats bench-leases bench-audit bench-tenancy bench-api bench-telemetry bench-rss bench-vram bench-vram-sets bench-cdi bench-vmback bench-logs bench-k8s ## run the benchmarks under bench/ (all but doctor, cancel, soak and gpu-check)

bench-startup: $(BIN) ## start-up of the compiled binary against a hello-world floor
	COMPILE_FLAGS="$(COMPILE_FLAGS)" $(BUN) bench/startup.ts

# `cdi apply` on every container's start path, against the same hello-world floor.
bench-cdi: $(BIN) ## cdi apply on a container's start path, against the same floor
	COMPILE_FLAGS="$(COMPILE_FLAGS)" $(BUN) bench/cdi.ts

bench-publish: deps ## snapshot encode and publish over the mock console
	$(BUN) bench/publish.ts

bench-stats: deps native-fakes ## GPU stats reads on the fake NVML
	$(BUN) bench/stats.ts

# doctor's checks on the fake NVML and libcuda, process start excluded: cold and warm.
bench-doctor: deps native-fakes ## doctor's checks on the fake NVML and libcuda, cold and warm
	$(BUN) bench/doctor.ts

bench-leases: deps ## lease grant, renew and release throughput
	$(BUN) bench/leases.ts

bench-audit: deps ## lease grants per second without the audit trail, with fsync per record and per batch
	$(BUN) bench/audit.ts

bench-tenancy: deps ## what a tokens file costs the API: GETs and lease grants, single token against principals (PRINCIPALS=N)
	$(BUN) bench/tenancy.ts

bench-telemetry: deps ## telemetry spool and forward throughput
	$(BUN) bench/telemetry.ts

bench-rss: $(BIN) ## resident memory of the compiled daemon
	COMPILE_FLAGS="$(COMPILE_FLAGS)" $(BUN) bench/rss.ts

bench-vmback: deps ## VM read-back of node files
	$(BUN) bench/vmback.ts

# The soak (bench/soak.ts): the compiled daemon on the mock under a steady mixed load, its RSS
# sampled; SOAK_S=N seconds (default 3600), SHORT=1 for the ~60 s CI check of correctness.
soak: $(BIN) ## the compiled daemon under a steady mixed load for SOAK_S seconds (SHORT=1: ~60 s)
	SHORT="$(SHORT)" $(BUN) bench/soak.ts

# 1,000 random job cancellations with large operands under load (bench/cancel.ts); N=... sets the count.
bench-cancel: $(BIN) ## 1,000 random job cancellations with large operands under load (N=...)
	$(BUN) bench/cancel.ts

# Log bytes per hour at INFO under lease churn (DURATION_S=N, LEASES_PER_S=N).
bench-logs: deps ## log bytes per hour at INFO under lease churn (DURATION_S=N, LEASES_PER_S=N)
	$(BUN) bench/logvolume.ts

bench-api: $(BIN) ## HTTP API latency and throughput with wrk
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } || { echo "bench-api needs wrk (apt-get install wrk)"; exit 1; }
	$(BUN) bench/api.ts

# The device plugin's Allocate, request to reply with the CDI spec written (ROUNDS=N).
bench-k8s: deps ## device plugin Allocate latency p50/p99 for 1 and 8 devices (ROUNDS=N)
	$(BUN) bench/k8s.ts

# Sealed VRAM shards: seal and verify throughput on the CPU path (VRAM_BENCH_MB=N).
bench-vram-sets: deps ## tensor-parallel sets: the set's execute-check against its members one by one, a set read as it grows (SETS_BENCH_MB=N, SETS_BENCH_MEMBERS=N)
	$(BUN) bench/vram-sets.ts

bench-vram: deps native-fakes ## sealed VRAM shards: seal/verify throughput, then sharing: hand-out, execute-check (VRAM_BENCH_MB=N, SHARE_BENCH_MB=N)
	$(BUN) bench/vram.ts
	@mkdir -p build && : > build/share-bench.ctl
	FAKE_GPU_CTL=$(CURDIR)/build/share-bench.ctl $(BUN) bench/vram-share.ts

# Regenerates every shipped PTX module and the TypeScript embedding it (src/job/ptx/generated/,
# src/vram/ptx/generated/) from the .cu sources with nvcc; see scripts/gen-ptx.sh for how the
# header is lowered to PTX ISA 6.0 / sm_50 and why ptxas proves that safe.
ptx: ## regenerate the shipped PTX and its TypeScript embedding with nvcc
	scripts/gen-ptx.sh

# Every shipped .ptx assembled by ptxas for sm_75, sm_87 and sm_90 (the oldest ptxas 13 knows,
# Orin, Hopper), and the generated files compared with what their .cu sources give. Each half is
# skipped, saying so, where ptxas or nvcc is missing: no GPU is needed.
PTX_ARCHS := sm_75 sm_87 sm_90
check-ptx: ## assemble every shipped PTX with ptxas and compare it with its .cu source
	@if command -v ptxas >/dev/null; then \
	  for f in $$(find src -name '*.ptx' | sort); do \
	    for a in $(PTX_ARCHS); do ptxas -arch=$$a -o /dev/null $$f || { echo "check-ptx: ptxas -arch=$$a rejects $$f" >&2; exit 1; }; done; \
	    echo "check-ptx: $$f: $$(sed -n 's/^\.version //p' $$f | head -1) / $$(sed -n 's/^\.target //p' $$f | head -1), ptxas ok for $(PTX_ARCHS)"; \
	  done; \
	else echo "check-ptx: SKIPPED: ptxas not found, the shipped PTX was not assembled (install the CUDA toolkit)"; fi
	@if command -v nvcc >/dev/null; then scripts/gen-ptx.sh --check; \
	else echo "check-ptx: SKIPPED the up-to-date check: nvcc not found"; fi

# On a machine with an NVIDIA GPU: everything that needs one, in one run, ending with one table
# (docs/gpu-check.md): doctor, inventory and stats against nvidia-smi, cdi generate, both job
# kernels, portable against native tree PTX, seal and verify at 1 and 10 GiB, a changed byte.
# Exit 1 if any step fails or cannot run. ARGS passes flags, e.g. ARGS="--gib 1 --device 1".
gpu-check: deps ## on a host with an NVIDIA GPU: every GPU check in one run, one table (ARGS=...)
	$(BUN) scripts/gpu-check.ts $(ARGS)

clean: ## remove dist/, build/ and the fake native libraries
	rm -rf dist build .test-counts mock/native/build
