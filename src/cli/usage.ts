/**
 * The `--help` texts, generated: each flag's line comes from FLAG_HELP (its argument name and
 * its help, written once), each default from DEFAULTS, and a test checks that every flag the
 * parse tables accept has its help here and nothing else does. Loaded only for `--help`.
 */
import { VERSION } from "../util/version.ts";
import { APPROVALS, BACKENDS, CONSOLE_ROLES, DEFAULTS, JOB_KERNELS, RUNNERS } from "../config/defaults.ts";
import { MAX_STREAMS, MAX_TTL_S } from "../config/limits.ts";
import { LIMITS } from "../contract/limits.ts";
import { MAX_WINDOW } from "../contract/window.ts";

/** One flag's help: the argument it takes (none for a switch) and what it does. */
export interface FlagHelp {
  readonly arg?: string;
  /** One or more lines; the first follows the flag, the rest are indented beneath it. */
  readonly text: string;
}

const or = (xs: readonly string[]) => `${xs.slice(0, -1).join(", ")} or ${xs.at(-1)}`;

const LOG_FORMAT_TEXT =
  `text (default ${DEFAULTS.logFormat}) or json: one JSON object per line (time, level,\ncomponent, message and the line's ids), for journald and log shippers`;

/** The bridge's flags (and `serve`'s, which are the same less --list and --version). */
export const FLAG_HELP: Readonly<Record<string, FlagHelp>> = {
  "mock": { text: "use the deterministic mock inventory instead of real GPUs" },
  "backend": {
    arg: "NAME",
    text: `${DEFAULTS.backend} (default), ${
      or(BACKENDS.filter((b) => b !== DEFAULTS.backend))
    }; auto tries NVML, then\nCUDA (the Jetson backend when the GPU is integrated)`,
  },
  "sys-root": { arg: "DIR", text: `read /sys, /proc and /etc under DIR (default ${DEFAULTS.sysRoot})` },
  "registry": { arg: "DIR", text: "model registry root (DIR/available/<id>/manifest.toml, DIR/active);\ndefault: the built-in catalog" },
  "seal-active": {
    arg: "LEASE_ID",
    text: "seal each adapter's weights into this lease's VRAM, and verify them,\nbefore it becomes active (docs/models.md)",
  },
  "list": { text: "print the /gpu namespace as JSON on stdout" },
  "publish": { text: "publish the snapshot to /gpu/bridge/ctl over the TCP console" },
  "interval-ms": {
    arg: "MS",
    text:
      "with --publish: keep running as a daemon; every MS, re-read the\ninventory and publish if anything changed (an unchanged snapshot\nis re-sent once a minute). Changes to the registry publish at once.",
  },
  "tcp-host": { arg: "HOST", text: `console host (default ${DEFAULTS.tcpHost})` },
  "tcp-port": { arg: "PORT", text: `console port (default ${DEFAULTS.tcpPort})` },
  "auth-token": {
    arg: "TOKEN",
    text: `console token; if absent or blank: $COH_AUTH_TOKEN, then\n$COHSH_AUTH_TOKEN, then "${DEFAULTS.authToken}"`,
  },
  "ticket": { arg: "TICKET", text: "ticket sent with ATTACH (default empty)" },
  "ack-timeout-ms": { arg: "MS", text: `how long to wait for each console ack (default ${DEFAULTS.ackTimeoutMs})` },
  "window": {
    arg: "N",
    text:
      `console lines in flight before their acks, 1 (stop-and-wait) to ${MAX_WINDOW}\n(default ${DEFAULTS.window}; the console queues ${LIMITS.consoleQueueLines} lines and drops the oldest)`,
  },
  "readback-ms": {
    arg: "MS",
    text:
      `read the VM's node files back (CAT) every MS while idle, so lines the\nVM's clients write are seen and kept; 0: only before full snapshots\n(default ${DEFAULTS.readbackMs})`,
  },
  "verify-max-age-ms": {
    arg: "MS",
    text:
      `a sealed shard's execute-check answers yes only after a full\nverification newer than MS (0: one on every check; default ${DEFAULTS.verifyMaxAgeMs})`,
  },
  "verify-mode": {
    arg: "MODE",
    text:
      `full: verify every leaf of a lease's sealed shards before each of its jobs;\nsampled: random leaves, with a whole shard swept in the background\n(default ${DEFAULTS.verifyMode}; else $GPU_BRIDGE_VRAM_GATE)`,
  },
  "verify-sweep-ms": {
    arg: "MS",
    text:
      `verify one whole sealed shard every MS in the background; 0: never\n(default 0, ${DEFAULTS.vramSampledSweepMs} when sampled; else $GPU_BRIDGE_VRAM_SWEEP_MS)`,
  },
  "max-ttl-s": {
    arg: "S",
    text: `the longest TTL a lease may be granted, amended or renewed for\n(default ${MAX_TTL_S}, a week)`,
  },
  "max-lease-mem-mb": { arg: "N", text: "the most MiB one lease may hold (default: no maximum but the GPU's)" },
  "max-lease-streams": { arg: "N", text: `the most streams one lease may hold (default ${MAX_STREAMS})` },
  "lease-mem-mb": { arg: "N", text: "the MiB of a lease asked for without mem_mb (default: none, so it\nis refused)" },
  "lease-streams": { arg: "N", text: "the streams of a lease asked for without streams (default: none,\nso it is refused)" },
  "lease-ttl-s": {
    arg: "S",
    text: `the TTL of a lease asked for without one (default ${DEFAULTS.leaseTtlS}, or\n--max-ttl-s when shorter)`,
  },
  "allowed-kernels": {
    arg: "LIST",
    text: `the jobs this bridge runs, of ${
      JOB_KERNELS.join(", ")
    } (a staged PTX bundle),\ncomma-separated (default ${DEFAULTS.allowedKernels})`,
  },
  "vram-policy-check-ms": {
    arg: "MS",
    text:
      `check every sealed shard's memory against the VRAM-only policy every MS\n(it is also checked at start-up; 0: at start-up only; default ${DEFAULTS.vramPolicyCheckMs})`,
  },
  "state-dir": { arg: "DIR", text: "where leases are journalled across restarts\n(default $XDG_STATE_HOME/gpu-bridge-host)" },
  "bundle-dir": { arg: "DIR", text: "staged job inputs and outputs; without it jobs carry payload_b64" },
  "runner": {
    arg: "KIND",
    text: `${DEFAULTS.runner} (default: cuda on real GPUs, cpu on the mock), ${or(RUNNERS.filter((r) => r !== DEFAULTS.runner))}`,
  },
  "max-streams-per-gpu": { arg: "N", text: `streams that may be leased on one GPU at once (default ${DEFAULTS.maxStreamsPerGpu})` },
  "job-results-mb": {
    arg: "N",
    text:
      `job results kept for GET /v1/jobs/{job}/result, all jobs together; the oldest are freed past it (default ${DEFAULTS.jobResultsMb})`,
  },
  "job-results-age-s": { arg: "S", text: `a job's result is freed this long after it finished (default ${DEFAULTS.jobResultsAgeS})` },
  "device-id": { arg: "ID", text: "the device the Queen files this host's telemetry under (default: host name)" },
  "spool-max-mb": { arg: "N", text: `local spool cap; past it the oldest segment is dropped (default ${DEFAULTS.spoolMaxMb})` },
  "queen-segment-kb": { arg: "N", text: `start a new Queen segment past this many bytes (default ${DEFAULTS.queenSegmentKb})` },
  "audit-fsync": {
    arg: "MODE",
    text:
      `record: sync each record before going on; batch: written on a worker\nthread, one background sync for all written meanwhile (default ${DEFAULTS.auditFsync})`,
  },
  "audit-file-mb": { arg: "N", text: `start a new trail file past this many MiB (default ${DEFAULTS.auditFileMb})` },
  "audit-files": {
    arg: "N",
    text: `keep this many trail files, dropping the oldest; lease history reaches\nas far back as they do (default ${DEFAULTS.auditFiles})`,
  },
  "listen": { arg: "HOST:PORT", text: `where the HTTP API listens (default ${DEFAULTS.listenHost}:${DEFAULTS.listenPort})` },
  "allow-remote": { text: "allow a non-loopback --listen (needs an explicit token)" },
  "api-token": {
    arg: "TOKEN",
    text: "bearer token for mutating routes; else $GPU_BRIDGE_API_TOKEN, else\none generated into <state-dir>/api-token (mode 0600)",
  },
  "tokens": {
    arg: "FILE",
    text:
      "named principals instead of the one token (TOML; gpu-bridge-host tokens add):\nevery route but /healthz then needs a token, each role its routes;\nreloaded on SIGHUP",
  },
  "no-api": { text: "do not serve the API" },
  "cdi-dir": {
    arg: "DIR",
    text:
      `keep a CDI spec (kind ${DEFAULTS.cdiBridgeKind}) in DIR/gpu-bridge-host.json: the\nGPUs, and one device per live lease; GET /v1/cdi returns it`,
  },
  "cdi-root": { arg: "DIR", text: `read device nodes and driver files for it under DIR (default ${DEFAULTS.cdiRoot})` },
  "config": {
    arg: "FILE",
    text:
      "settings from a TOML file whose keys are these flags without dashes\n(max-streams-per-gpu = 8); a flag given here overrides the file's;\ngpu-bridge-host config check FILE checks one",
  },
  "mps": {
    text: "run (or adopt) an MPS control daemon per GPU under <state-dir>/mps;\n" +
      "each lease's CDI device is then an MPS client capped at its memory and\n" +
      "stream share (needs --cdi-dir; $GPU_BRIDGE_MPS_CONTROL names the program)",
  },
  "kubelet-dir": {
    arg: "DIR",
    text: `run the Kubernetes device plugin with the kubelet in DIR (default ${DEFAULTS.kubeletDir});\nneeds --k8s-resource and --cdi-dir`,
  },
  "k8s": { text: `run the Kubernetes device plugin with the kubelet in ${DEFAULTS.kubeletDir}` },
  "k8s-resource": { arg: "NAME", text: "the resource pods request, DOMAIN/NAME (e.g. cohesix.io/gpu)" },
  "k8s-share": { arg: "N", text: "advertise each GPU as N devices <UUID>::<k>, each a lease of 1/N of its memory (default 1)" },
  "k8s-poll-ms": {
    arg: "MS",
    text: `read PodResources every MS; a lease no pod holds is released (default ${DEFAULTS.k8sPollMs})`,
  },
  "k8s-recover-ms": {
    arg: "MS",
    text: `a GPU is Healthy again MS after its last critical XID or ECC event (default ${DEFAULTS.k8sRecoverMs})`,
  },
  "k8s-ignored-xids": { arg: "LIST", text: `XIDs that do not make a GPU Unhealthy, comma-separated (default ${DEFAULTS.k8sIgnoredXids})` },
  "nfd-file": { arg: "FILE", text: `write Node Feature Discovery labels to FILE (e.g. ${DEFAULTS.nfdFile})` },
  "log-level": { arg: "LEVEL", text: `debug, info, warn or error (default ${DEFAULTS.logLevel}); logs go to stderr` },
  "log-format": { arg: "FORMAT", text: LOG_FORMAT_TEXT },
  "help": { text: "print this help" },
  "version": { text: "print the version" },
};

/** `mock-console`'s flags. */
export const MOCK_CONSOLE_HELP: Readonly<Record<string, FlagHelp>> = {
  "host": { arg: "HOST", text: `address to listen on (default ${DEFAULTS.mockConsoleHost})` },
  "port": { arg: "PORT", text: `port to listen on, 0 for any free port (default ${DEFAULTS.mockConsolePort})` },
  "auth-token": { arg: "TOKEN", text: `token AUTH must present; same fallbacks as the bridge (default "${DEFAULTS.authToken}")` },
  "ack-delay-ms": { arg: "MS", text: `delay every ack, to imitate a slow server (default ${DEFAULTS.ackDelayMs})` },
  "rtt-ms": {
    arg: "MS",
    text: `round trip of the link, half of it each way, frames travelling side\nby side as on a long wire (default ${DEFAULTS.rttMs})`,
  },
  "jitter-ms": { arg: "MS", text: `extra random delay per chunk, 0..MS, order kept (default ${DEFAULTS.jitterMs})` },
  "noise": { text: "interleave log-mirror lines, PONG and END with every ack" },
  "no-readback": {
    text: "behave as an older console that only takes ECHO: CAT and LS are\nanswered ERR <VERB> reason=unsupported",
  },
  "export-min-records": {
    arg: "N",
    text: `the mock Queen exports a LoRA job once it holds N telemetry records\nof one base model (default ${DEFAULTS.exportMinRecords})`,
  },
  "export-window-s": { arg: "S", text: `records count for S seconds after they arrive (default ${DEFAULTS.exportWindowS})` },
  "log-level": { arg: "LEVEL", text: `debug, info, warn or error (default ${DEFAULTS.logLevel})` },
  "log-format": { arg: "FORMAT", text: LOG_FORMAT_TEXT },
  "help": { text: "print this help" },
};

/** `stats`'s flags. */
export const STATS_HELP: Readonly<Record<string, FlagHelp>> = {
  "mock": { text: "show the mock inventory's GPUs" },
  "backend": { arg: "NAME", text: `as the bridge's --backend (default ${DEFAULTS.backend})` },
  "sys-root": { arg: "DIR", text: `read /sys, /proc and /etc under DIR (default ${DEFAULTS.sysRoot})` },
  "json": { text: "print one JSON object instead of the table" },
  "log-level": { arg: "LEVEL", text: `debug, info, warn or error (default ${DEFAULTS.logLevel})` },
  "log-format": { arg: "FORMAT", text: LOG_FORMAT_TEXT },
  "help": { text: "print this help" },
};

/** `telemetry push`'s and `telemetry export`'s flags. */
export const TELEMETRY_HELP: Readonly<Record<"push" | "export", Readonly<Record<string, FlagHelp>>>> = {
  push: {
    "url": { arg: "URL", text: `the running bridge's API (default http://${DEFAULTS.listenHost}:${DEFAULTS.listenPort})` },
    "api-token": { arg: "TOKEN", text: "the API token; else $GPU_BRIDGE_API_TOKEN, else <state-dir>/api-token" },
    "state-dir": { arg: "DIR", text: "where the API token is read (default $XDG_STATE_HOME/gpu-bridge-host)" },
    "help": { text: "print this help" },
  },
  export: {
    "out": { arg: "FILE", text: "the CBOR bundle to write (needed)" },
    "since": { arg: "T", text: "only records whose window ends at or after T (epoch ms or RFC 3339)" },
    "state-dir": { arg: "DIR", text: "where the spool is read (default $XDG_STATE_HOME/gpu-bridge-host)" },
    "help": { text: "print this help" },
  },
};

/** `audit verify`'s flags. */
export const AUDIT_HELP: Readonly<Record<string, FlagHelp>> = {
  "json": { text: "print the verdict as one JSON object" },
  "help": { text: "print this help" },
};

/** `vram attest-verify`'s flags. */
export const VRAM_ATTEST_HELP: Readonly<Record<string, FlagHelp>> = {
  "key": {
    arg: "FILE",
    text: "the bridge's public key: the body of GET /v1/vram/attestation-key, a JWK,\nor a PEM public key (- for standard input); needed",
  },
  "key-id": { arg: "ID", text: "the key id the statement must name (16 hex digits), when you pinned one" },
  "json": { text: "print the verdict as one JSON object" },
  "help": { text: "print this help" },
};

/** `models import`'s flags. */
export const MODELS_IMPORT_HELP: Readonly<Record<string, FlagHelp>> = {
  "id": { arg: "ID", text: "the model's id in the registry (needed)" },
  "registry": { arg: "DIR", text: "the registry root (needed)" },
  "parent": { arg: "ID", text: "the parent model (default: base_model in lora.json)" },
  "job-id": { arg: "J", text: "the training job recorded in the manifest" },
  "approval": { arg: "STATUS", text: `${or(APPROVALS)} (default ${DEFAULTS.approval})` },
  "from-export": {
    arg: "DIR",
    text:
      "the Queen export the adapter was trained from (base_model.ref, policy.toml,\ntelemetry.cbor): its parent, job, window and hashes are recorded",
  },
  "help": { text: "print this help" },
};

/** `models verify`'s flags. */
export const MODELS_VERIFY_HELP: Readonly<Record<string, FlagHelp>> = {
  "registry": { arg: "DIR", text: "the registry root (needed)" },
  "json": { text: "print the report as one JSON object" },
  "help": { text: "print this help" },
};

/** `models watch`'s flags. */
export const MODELS_WATCH_HELP: Readonly<Record<string, FlagHelp>> = {
  "exec": { arg: "CMD", text: "run CMD (sh -c) on every activation, with GPU_BRIDGE_MODEL_ID, _PATH, _SHARD set (needed)" },
  "url": { arg: "URL", text: `the bridge's API (default http://${DEFAULTS.listenHost}:${DEFAULTS.listenPort})` },
  "api-token": { arg: "TOKEN", text: "sent as a bearer token, for a bridge whose reads need one" },
  "help": { text: "print this help" },
};

/** `peft export`'s flags. */
export const PEFT_EXPORT_HELP: Readonly<Record<string, FlagHelp>> = {
  "out": { arg: "DIR", text: "write the job's three files into DIR/<job>/ (needed)" },
  "job": { arg: "ID", text: "the job under /queen/export/lora_jobs (default: the newest)" },
  "force": { text: "replace files an earlier export wrote" },
  "tcp-host": { arg: "HOST", text: `console host (default ${DEFAULTS.tcpHost})` },
  "tcp-port": { arg: "PORT", text: `console port (default ${DEFAULTS.tcpPort})` },
  "auth-token": { arg: "TOKEN", text: `console token; same fallbacks as the bridge (default "${DEFAULTS.authToken}")` },
  "ticket": { arg: "TICKET", text: "ticket sent with ATTACH queen" },
  "ack-timeout-ms": { arg: "MS", text: `how long to wait for each answer (default ${DEFAULTS.ackTimeoutMs})` },
  "help": { text: "print this help" },
};

/** `config check`'s flags. */
export const CONFIG_CHECK_HELP: Readonly<Record<string, FlagHelp>> = {
  "help": { text: "print this help" },
};

export const CONFIG_USAGE = `gpu-bridge-host config check: check a settings file for serve --config.

Usage:
  gpu-bridge-host config check FILE

FILE is TOML whose keys are serve's flags without their dashes, with TOML values:
  max-streams-per-gpu = 8
  tokens = "/etc/gpu-bridge-host/tokens.toml"
  listen = "127.0.0.1:31338"
  mock = true
Each value is checked by the flag's own rule, with the flag's own message, and the settings
together by serve's rules across flags. Prints what the file sets; exit status 2 and the
message when serve would refuse it. On serve's command line, a flag overrides the file's value.
`;

/** `tokens add`'s flags. */
export const TOKENS_ADD_HELP: Readonly<Record<string, FlagHelp>> = {
  "role": {
    arg: "ROLE",
    text: "reader (GETs, events), operator (leases, jobs, shards, telemetry\nfor its workers) or admin (everything) (needed)",
  },
  "workers": { arg: "PATTERNS", text: "an operator's worker ids, comma-separated; * matches any run" },
  "file": { arg: "FILE", text: "the tokens file (made if absent, rewritten atomically, mode 0600) (needed)" },
  "help": { text: "print this help" },
};

/** `completion`'s flags. */
export const COMPLETION_HELP: Readonly<Record<string, FlagHelp>> = {
  "help": { text: "print this help" },
};

/**
 * The environment the bridge reads (and the one it sets for containers). A test holds every
 * `GPU_BRIDGE_*` name in the code to a line here.
 */
export const ENVIRONMENT: readonly (readonly [string, string])[] = [
  ["COH_AUTH_TOKEN", "the console token when --auth-token is absent or blank"],
  ["COHSH_AUTH_TOKEN", "the console token when COH_AUTH_TOKEN is unset too"],
  ["GPU_BRIDGE_API_TOKEN", "the API's bearer token when --api-token is not given"],
  ["GPU_BRIDGE_NVML_LIB", "libnvidia-ml.so.1 to load before the loader's search path"],
  ["GPU_BRIDGE_CUDA_LIB", "libcuda.so.1 to load before the loader's search path"],
  ["GPU_BRIDGE_MODEL_DIR", `where sealed shards are read from files (default <state-dir>/${DEFAULTS.vramModelDir})`],
  ["GPU_BRIDGE_VRAM_VERIFY", "cpu or gpu: the path that verifies sealed shards (default gpu on CUDA)"],
  ["GPU_BRIDGE_VRAM_GATE", "sampled: as --verify-mode sampled, which overrides it"],
  ["GPU_BRIDGE_VRAM_SWEEP_MS", "as --verify-sweep-ms, which overrides it"],
  ["GPU_BRIDGE_VRAM_THREADS", `CPU worker threads for shard trees (default the CPU count, at most ${DEFAULTS.vramMaxThreads})`],
  ["GPU_BRIDGE_MPS_CONTROL", `serve --mps: the MPS control program (default ${DEFAULTS.mpsControl} on PATH)`],
  ["GPU_BRIDGE_LEASE_ID", "set, not read: a leased CDI device gives its container the lease's id"],
  ["GPU_BRIDGE_MODEL_ID", "set, not read: models watch --exec gives CMD the model now active"],
  ["GPU_BRIDGE_MODEL_PATH", "set, not read: models watch --exec gives CMD that model's registry folder"],
  ["GPU_BRIDGE_MODEL_SHARD", "set, not read: models watch --exec gives CMD its sealed shard's handle (JSON) or empty"],
  ["GPU_BRIDGE_SHARE_SOCKET", "set, not read: where a leased container finds its shard socket"],
  ["GPU_BRIDGE_SHARE_TOKEN_FILE", "set, not read: where a leased container finds its share token"],
  ["XDG_STATE_HOME", "the default --state-dir is $XDG_STATE_HOME/gpu-bridge-host"],
];

/** `  NAME`, padded past the longest name, then what it does. */
const envLines = () => {
  const width = Math.max(...ENVIRONMENT.map(([name]) => name.length)) + 2;
  return ENVIRONMENT.map(([name, text]) => `  ${name.padEnd(width)}${text}\n`).join("");
};

/** `cdi`'s subcommands' flags (src/cli/cdi.ts), each subcommand's table on its own. */
export const CDI_HELP: Readonly<Record<"generate" | "validate" | "apply" | "list", Readonly<Record<string, FlagHelp>>>> = {
  generate: {
    "mock": { text: "describe the mock inventory's GPUs (--backend mock)" },
    "backend": {
      arg: "NAME",
      text: `${DEFAULTS.backend} (default), ${or(BACKENDS.filter((b) => b !== DEFAULTS.backend))}, as the bridge's --backend`,
    },
    "kind": { arg: "VENDOR/CLASS", text: `the spec's kind (default ${DEFAULTS.cdiKind})` },
    "format": { arg: "json|yaml", text: `the text written (default ${DEFAULTS.cdiFormat}; an --output ending in .yaml picks yaml)` },
    "output": { arg: "FILE", text: "write the spec to FILE, atomically (default: stdout)" },
    "dev-root": {
      arg: "DIR",
      text: `read device nodes under DIR (default ${DEFAULTS.cdiRoot}; with --mock, the mock GPUs' nodes, no DIR read)`,
    },
    "driver-root": { arg: "DIR", text: `read driver libraries, firmware and tools under DIR (default ${DEFAULTS.cdiRoot})` },
    "sys-root": { arg: "DIR", text: `read /sys, /proc and /etc under DIR (default ${DEFAULTS.sysRoot})` },
    "csv-dir": { arg: "DIR", text: `Jetson: the CSV files that list the host's files\n(default ${DEFAULTS.cdiCsvDir})` },
    "hook-path": { arg: "PATH", text: `the CDI hook; hooks are written only where it exists\n(default ${DEFAULTS.cdiHookPath})` },
    "help": { text: "print this help" },
  },
  validate: {
    "consumer-version": {
      arg: "X.Y.Z",
      text: "would a consumer with that CDI library accept the files?\n(0.5.0: the library in Debian 12's podman 4.3)",
    },
    "no-host-check": { text: "do not compare device numbers with this host's nodes" },
    "help": { text: "print this help" },
  },
  apply: {
    "spec-dir": { arg: "DIR", text: `a spec folder, may repeat, lowest priority first\n(default ${DEFAULTS.cdiSpecDirs.join(", then ")})` },
    "input": { arg: "FILE", text: "the OCI config.json to edit (default: stdin)" },
    "output": { arg: "FILE", text: "write the edited config.json to FILE, atomically (default: stdout)" },
    "cache-dir": {
      arg: "DIR",
      text:
        "the validated-spec cache, writable by this user alone\n(default for root /run/gpu-bridge-host/cdi-cache; for others\n/run/user/UID/gpu-bridge-host/cdi-cache when that is $XDG_RUNTIME_DIR)",
    },
    "no-cache": { text: "read and validate every spec, and cache nothing" },
    "help": { text: "print this help" },
  },
  list: {
    "spec-dir": { arg: "DIR", text: `a spec folder, may repeat, lowest priority first\n(default ${DEFAULTS.cdiSpecDirs.join(", then ")})` },
    "cache-dir": {
      arg: "DIR",
      text:
        "the validated-spec cache, writable by this user alone\n(default for root /run/gpu-bridge-host/cdi-cache; for others\n/run/user/UID/gpu-bridge-host/cdi-cache when that is $XDG_RUNTIME_DIR)",
    },
    "no-cache": { text: "read and validate every spec, and cache nothing" },
    "help": { text: "print this help" },
  },
};

/** `doctor`'s flags. */
export const DOCTOR_HELP: Readonly<Record<string, FlagHelp>> = {
  "mock": { text: "check the host for the mock inventory (no driver checks)" },
  "backend": { arg: "NAME", text: `as the bridge's --backend (default ${DEFAULTS.backend}); NVML and CUDA are both probed` },
  "sys-root": { arg: "DIR", text: `read /sys, /proc, /etc and the CDI folders under DIR (default ${DEFAULTS.sysRoot})` },
  "dev-root": { arg: "DIR", text: `read device nodes under DIR (default ${DEFAULTS.devRoot})` },
  "state-dir": { arg: "DIR", text: "the state folder to check (default $XDG_STATE_HOME/gpu-bridge-host)" },
  "spool-max-mb": { arg: "N", text: `the spool cap free disk is measured against (default ${DEFAULTS.spoolMaxMb})` },
  "tcp-host": { arg: "HOST", text: `console host (default ${DEFAULTS.tcpHost})` },
  "tcp-port": {
    arg: "PORT",
    text: `check the console at this port: AUTH and ATTACH only, no publish\n(default ${DEFAULTS.tcpPort} when --auth-token is given)`,
  },
  "auth-token": { arg: "TOKEN", text: "console token to check; same fallbacks as the bridge" },
  "ticket": { arg: "TICKET", text: "ticket sent with ATTACH (default empty)" },
  "timeout-ms": { arg: "MS", text: `the most any network step waits (default ${DEFAULTS.doctorTimeoutMs})` },
  "json": { text: "print the report as one JSON object" },
  "help": { text: "print this help" },
};

/** `console`'s flags. */
export const CONSOLE_HELP: Readonly<Record<string, FlagHelp>> = {
  "tcp-host": { arg: "HOST", text: `console host (default ${DEFAULTS.tcpHost})` },
  "tcp-port": { arg: "PORT", text: `console port (default ${DEFAULTS.tcpPort})` },
  "auth-token": { arg: "TOKEN", text: `console token; same fallbacks as the bridge (default "${DEFAULTS.authToken}")` },
  "role": { arg: "ROLE", text: `${or(CONSOLE_ROLES)} (default ${DEFAULTS.consoleRole})` },
  "ticket": { arg: "TICKET", text: "ticket sent with ATTACH (worker-gpu needs one)" },
  "ack-timeout-ms": { arg: "MS", text: `how long to wait for the answer (default ${DEFAULTS.ackTimeoutMs})` },
  "raw": {
    text:
      "print the VM's text as received; by default control characters\n(escape sequences), bidirectional overrides and line separators\nare shown escaped (\\u001b), so a VM's text cannot drive the terminal",
  },
  "help": { text: "print this help" },
};

const COLUMN = 25;

/** `  --flag ARG` padded to the help column, then the help, continuation lines indented. */
function flagLines(table: Readonly<Record<string, FlagHelp>>, flags: readonly string[]): string {
  let out = "";
  for (const flag of flags) {
    const h = table[flag];
    if (h === undefined) throw new Error(`No help for --${flag}`);
    const head = `  --${flag}${h.arg === undefined ? "" : ` ${h.arg}`}`;
    const [first, ...rest] = h.text.split("\n");
    out += `${head.length < COLUMN - 1 ? head.padEnd(COLUMN) : `${head}  `}${first}\n`;
    for (const line of rest) out += `${" ".repeat(COLUMN)}${line}\n`;
  }
  return out;
}

/** The sections of the main help, in order, each naming its flags. */
export const SECTIONS: readonly (readonly [string, readonly string[]])[] = [
  ["Inventory and models", ["mock", "backend", "sys-root", "registry", "seal-active"]],
  ["Actions (--list and --publish may be combined; the list is printed first)", ["list", "publish", "interval-ms"]],
  ["Console", ["tcp-host", "tcp-port", "auth-token", "ticket", "ack-timeout-ms", "window", "readback-ms"]],
  ["Leases and jobs (with --interval-ms or serve)", [
    "state-dir",
    "bundle-dir",
    "runner",
    "max-streams-per-gpu",
    "job-results-mb",
    "job-results-age-s",
    "allowed-kernels",
    "verify-mode",
    "verify-sweep-ms",
    "verify-max-age-ms",
    "vram-policy-check-ms",
  ]],
  ["Lease policy (with --interval-ms or serve; docs/tenancy.md)", [
    "max-ttl-s",
    "max-lease-mem-mb",
    "max-lease-streams",
    "lease-mem-mb",
    "lease-streams",
    "lease-ttl-s",
  ]],
  ["Telemetry (with --interval-ms or serve)", ["device-id", "spool-max-mb", "queen-segment-kb"]],
  ["Local API (with --interval-ms or serve)", ["listen", "allow-remote", "api-token", "tokens", "no-api"]],
  ["Containers (with serve)", ["cdi-dir", "cdi-root", "mps"]],
  ["Audit trail (<state-dir>/audit, docs/audit.md)", ["audit-fsync", "audit-file-mb", "audit-files"]],
  ["Kubernetes (with serve)", [
    "k8s",
    "kubelet-dir",
    "k8s-resource",
    "k8s-share",
    "k8s-poll-ms",
    "k8s-recover-ms",
    "k8s-ignored-xids",
    "nfd-file",
  ]],
  ["Other", ["config", "log-level", "log-format", "help", "version"]],
];

export const USAGE = `gpu-bridge-host ${VERSION}: mirrors this host's GPUs into a Cohesix VM under /gpu.

Usage:
  gpu-bridge-host [--mock] [--registry DIR] --list
  gpu-bridge-host [--mock] [--registry DIR] --publish [--interval-ms MS] [console options]
  gpu-bridge-host serve [--mock] [--registry DIR] [--publish [--interval-ms MS]] [console options]
  gpu-bridge-host stats [--json] [--mock | --backend NAME] [--sys-root DIR]
  gpu-bridge-host doctor [--json] [--tcp-port PORT --auth-token TOKEN] ...   run first on a new host
  gpu-bridge-host telemetry push FILE | telemetry export --out FILE [--since T]
  gpu-bridge-host models import DIR --id ID --registry DIR [--parent ID | --from-export DIR] [--approval S]
  gpu-bridge-host models verify [ID] --registry DIR | models watch --exec CMD [--url URL]
  gpu-bridge-host peft export --out DIR [--job ID] [--force]   pull a LoRA export job from the Queen
  gpu-bridge-host audit verify DIR [--json]   prove the audit trail whole (audit --help)
  gpu-bridge-host vram attest-verify FILE --key KEYFILE   check a shard's attestation offline (vram --help)
  gpu-bridge-host tokens add NAME --role ROLE [--workers PATTERNS] --file FILE   a new API principal
  gpu-bridge-host config check FILE   check a --config settings file as serve would take it
  gpu-bridge-host mock-console [--port PORT] ...   a local stand-in for the Cohesix console
  gpu-bridge-host console ls|cat|echo PATH ...     one request to a console, as cohsh sends it
  gpu-bridge-host cdi generate|validate|apply|list ...   CDI specs for containers (cdi --help)
  gpu-bridge-host completion bash|zsh|fish   a shell completion script

${SECTIONS.map(([title, flags]) => `${title}:\n${flagLines(FLAG_HELP, flags)}`).join("\n")}
Environment:
${envLines()}
Shell completion: gpu-bridge-host completion bash|zsh|fish (completion --help).

Exit status: 0 on success, 1 on failure, 2 on a usage error.
`;

export const MOCK_CONSOLE_USAGE = `gpu-bridge-host mock-console: a local stand-in for the Cohesix TCP console.

It speaks the console protocol (framing, AUTH, ATTACH, ECHO, PING, CAT, LS), holds the /gpu tree
that published snapshots produce, and validates /gpu/bridge/ctl exactly as the VM does. Like the
VM, it serves queen and worker-gpu sessions at once, spawns and kills GPU workers through
/queen/ctl, and takes appends to the GPU nodes' ctl, lease and status up to their caps. It plays
the Queen's side of the LoRA loop too: the telemetry ingest under /queen/telemetry/<device>/ with
the Queen's quotas, and an export policy that writes /queen/export/lora_jobs/<job>/
(telemetry.cbor, base_model.ref, policy.toml) once enough records of one base model arrived.

Usage:
  gpu-bridge-host mock-console [options]

Options:
${flagLines(MOCK_CONSOLE_HELP, Object.keys(MOCK_CONSOLE_HELP).filter((f) => f !== "help"))}`;

export const PEFT_USAGE = `gpu-bridge-host peft export: pull a LoRA training job from the Queen, as coh peft export does.

Usage:
  gpu-bridge-host peft export --out DIR [--job ID] [--force] [console options]

Lists /queen/export/lora_jobs over the console (attached as queen), checks the job holds exactly
telemetry.cbor, base_model.ref and policy.toml, reads each (telemetry.cbor arrives as b64: lines),
checks what it can (the CBOR frames, the base model id, policy.toml's TOML and the telemetry's
SHA-256 and size it records), and writes the three files into DIR/<job>/. Files already there are
kept and the export refused unless --force.

Options:
${flagLines(PEFT_EXPORT_HELP, Object.keys(PEFT_EXPORT_HELP).filter((f) => f !== "help"))}`;

export const CONSOLE_USAGE = `gpu-bridge-host console: one request to a Cohesix console, as cohsh would send it.

Usage:
  gpu-bridge-host console ls DIR [options]            list a directory (bare names)
  gpu-bridge-host console cat FILE [options]          print a file's lines
  gpu-bridge-host console echo FILE LINE... [options] append one line (the words joined by spaces)

Options:
${flagLines(CONSOLE_HELP, ["tcp-host", "tcp-port", "auth-token", "role", "ticket", "ack-timeout-ms", "raw"])}
Examples (against make run):
  gpu-bridge-host console ls /gpu
  gpu-bridge-host console echo /queen/ctl '{"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":4096,"streams":1,"ttl_s":120}}'
  gpu-bridge-host console cat /gpu/GPU-0/lease
`;

export const SERVE_USAGE = `gpu-bridge-host serve: run the bridge as a daemon until SIGINT or SIGTERM.

Usage:
  gpu-bridge-host serve [--mock] [--registry DIR] [--publish [--interval-ms MS]] [console options]

Takes the bridge's flags (see gpu-bridge-host --help) except --list. With --publish it keeps the
VM's /gpu current: it reconnects with backoff, republishes on every connection and right after
a change, and pings the console when idle. --interval-ms defaults to ${DEFAULTS.serveIntervalMs} here.
`;

export const STATS_USAGE = `gpu-bridge-host stats: print live GPU statistics.

Usage:
  gpu-bridge-host stats [--json] [--mock | --backend NAME] [--sys-root DIR]

Shows what the info payload leaves out: UUID, PCI bus id, utilisation, memory, temperature,
power and energy, clocks, compute capability, MIG mode and processes (on Jetson: load, GPU
frequency, the GPU thermal zone, shared memory). A field the hardware does not report is null
in --json and "-" in the table.

Library overrides: GPU_BRIDGE_NVML_LIB and GPU_BRIDGE_CUDA_LIB name the libraries to load first.

Options:
${flagLines(STATS_HELP, Object.keys(STATS_HELP).filter((f) => f !== "help"))}`;

export const DOCTOR_USAGE = `gpu-bridge-host doctor: check this host before the bridge's first start.

Usage:
  gpu-bridge-host doctor [--json] [--mock | --backend NAME] [--tcp-port PORT --auth-token TOKEN]

Checks and lists, with a fix under each problem: the NVML and CUDA libraries found (and where
GPU_BRIDGE_NVML_LIB / GPU_BRIDGE_CUDA_LIB point), the GPUs each sees and whether they agree,
the device nodes (majors, modes), whether every shipped PTX module JIT-compiles on every GPU
under this driver, VMM/IPC support for sharing shards, MIG and MPS state, what the VRAM-only
policy means here, the CDI specs in ${DEFAULTS.cdiSpecDirs.join(" and ")} against this host, the state
folder's owner and modes, free disk for the spool, and (with --tcp-port or --auth-token) that
the console answers and takes the token: AUTH and ATTACH only, nothing is published.

✓ works, ✗ fails and is needed, ! broken but not needed for these flags, · for information.
Exit status: 0 when everything the given flags need works, 1 otherwise. Nothing is written.

Options:
${flagLines(DOCTOR_HELP, Object.keys(DOCTOR_HELP).filter((f) => f !== "help"))}`;

export const TELEMETRY_USAGE = `gpu-bridge-host telemetry: feed and read the LoRA loop's telemetry.

Usage:
  gpu-bridge-host telemetry push FILE [--url URL] [--api-token TOKEN] [--state-dir DIR]
      Validates gpu-telemetry/v1 records (NDJSON, one per line; - reads stdin) and posts them
      to the running bridge (default http://${DEFAULTS.listenHost}:${DEFAULTS.listenPort}), which spools and forwards them.
      The token: --api-token, else $GPU_BRIDGE_API_TOKEN, else <state-dir>/api-token.
  gpu-bridge-host telemetry export --out FILE [--since T] [--state-dir DIR]
      Writes the spooled records as one CBOR bundle (gpu-telemetry-bundle/v1), optionally only
      those whose window ends at or after T (epoch ms or RFC 3339). Safe while the bridge runs.
`;

export const AUDIT_USAGE = `gpu-bridge-host audit verify: prove an audit trail whole.

Usage:
  gpu-bridge-host audit verify DIR [--json]

DIR is a trail's folder (<state-dir>/audit). Every line must carry the SHA-256 of the line
before it, every change id must follow the last, and every file after the first must open with
an anchor naming the previous file: an edited, removed or reordered record, or a file removed
from the middle, is named with its file and line, and the exit status is 1. A trail whose oldest
files were dropped by retention verifies from its first anchor. On success it prints the changes
checked and the last line's hash (keep it elsewhere to notice records cut from the end later).
See docs/audit.md.

Options:
${flagLines(AUDIT_HELP, ["json"])}`;

export const VRAM_USAGE = `gpu-bridge-host vram attest-verify: check a shard's attestation offline.

Usage:
  gpu-bridge-host vram attest-verify FILE --key KEYFILE [--key-id ID] [--json]

FILE is an attestation as GET /v1/shards/{id}/attestation returns it (or the share socket's open
answer), - for standard input. KEYFILE is the bridge's public key, saved beforehand. Nothing is
asked of the bridge: the statement's fields are checked, then that it names the key given, then
its Ed25519 signature over the statement's canonical JSON. When it holds, what was attested is
printed (shard, digests, GPU, state, policy, time) and the exit status is 0; otherwise one line
says why (a malformed statement naming the field, a key id mismatch, a bad signature) and the
exit status is 1. See docs/vram-sharing.md.

Options:
${flagLines(VRAM_ATTEST_HELP, ["key", "key-id", "json"])}`;

export const COMPLETION_USAGE = `gpu-bridge-host completion: a shell's completion script, on stdout.

Usage:
  gpu-bridge-host completion bash|zsh|fish

Completes every command, subcommand and flag, and the values of flags that take a choice, a
file or a folder. The Debian package installs all three; by hand, for example:
  gpu-bridge-host completion bash > ~/.local/share/bash-completion/completions/gpu-bridge-host
  gpu-bridge-host completion zsh > "\${fpath[1]}/_gpu-bridge-host"
  gpu-bridge-host completion fish > ~/.config/fish/completions/gpu-bridge-host.fish
`;

export const MODELS_USAGE = `gpu-bridge-host models: the registry's side of the LoRA loop (docs/models.md).

Usage:
  gpu-bridge-host models import DIR --id ID --registry REG [--parent ID] [--job-id J]
      [--approval pending|approved|rejected] [--from-export EXPORT]
  gpu-bridge-host models verify [ID] --registry REG [--json]
  gpu-bridge-host models watch --exec CMD [--url URL] [--api-token TOKEN]

DIR holds adapter.safetensors and lora.json (and optionally metrics.json). The model appears as
REG/available/ID/ with a manifest.toml recording the parent model (--parent, or base_model in
lora.json), the training job, the telemetry window, the approval status (default ${DEFAULTS.approval}) and
each file's SHA-256 and size. An id or manifest the VM would refuse is refused here. A running
bridge publishes the new model within a second; make it active with PUT /v1/models/active
once it is approved (PUT /v1/models/ID/approval). The manifest also records the SHA-256 of the
parent's manifest, a link of the chain that verify checks. --from-export reads a Queen export
(/queen/export/lora_jobs/<job>/ copied out: base_model.ref, policy.toml, telemetry.cbor): the
parent, the job, the telemetry window and the two files' SHA-256 are recorded from it.

verify re-hashes the files of ID (default: the active model) and of each ancestor, and each
manifest a child recorded; it prints every check, and exits 0 when all match, 1 otherwise.

watch follows the running bridge's events and runs CMD (sh -c) on every activation with
GPU_BRIDGE_MODEL_ID, GPU_BRIDGE_MODEL_PATH and GPU_BRIDGE_MODEL_SHARD (the sealed shard's handle
as JSON, or empty) set; a failing CMD is reported and the watch goes on; it resumes across
reconnects and bridge restarts. It runs until interrupted.
`;

export const TOKENS_USAGE = `gpu-bridge-host tokens add: a new principal for the API's tokens file.

Usage:
  gpu-bridge-host tokens add NAME --role ROLE [--workers PATTERNS] --file FILE

Makes a random token for principal NAME, prints it once on stdout, and adds the principal to
FILE (serve --tokens FILE) with the token's SHA-256, never the token: the file is rewritten
whole or not at all, mode 0600, its other lines kept. Quotas are set by editing the file
(docs/tenancy.md). A running bridge loads the new file on SIGHUP.

Options:
${flagLines(TOKENS_ADD_HELP, Object.keys(TOKENS_ADD_HELP).filter((f) => f !== "help"))}`;

/** A subcommand's flag lines, indented beneath its synopsis. */
const cdiFlagLines = (sub: keyof typeof CDI_HELP) =>
  flagLines(CDI_HELP[sub], Object.keys(CDI_HELP[sub]).filter((f) => f !== "help")).replace(/^(?=.)/gm, "    ");

export const CDI_USAGE = `gpu-bridge-host cdi: CDI specs for container runtimes (podman, Docker, containerd, CRI-O).

Usage:
  gpu-bridge-host cdi generate [--mock | --backend NAME] [--kind VENDOR/CLASS] [--format json|yaml]
      [--output FILE] [--dev-root DIR] [--driver-root DIR] [--sys-root DIR] [--csv-dir DIR]
      [--hook-path PATH]
      Writes a spec for this host's GPUs as nvidia-ctk does: devices by index, by UUID and all,
      MIG devices, the control nodes that exist, driver libraries, firmware and tools, the
      minimum cdiVersion it needs. Jetson: from the CSV files in --csv-dir.
${cdiFlagLines("generate")}
  gpu-bridge-host cdi validate [--consumer-version X.Y.Z] [--no-host-check] FILE...
      The reference library's rules plus stricter ones (absolute paths, hook timeout > 0,
      bind mounts, device numbers that match this host's nodes). Exit 1 when any file is
      invalid.
${cdiFlagLines("validate")}
  gpu-bridge-host cdi apply [--spec-dir DIR]... [--input FILE] [--output FILE]
      [--cache-dir DIR | --no-cache] DEVICE...
      Applies the devices' edits to an OCI config.json by the reference library's rules. An
      unknown device changes nothing. A spec read before comes from the cache, keyed by its
      text: an edited spec is read again.
${cdiFlagLines("apply")}
  gpu-bridge-host cdi list [--spec-dir DIR]... [--cache-dir DIR | --no-cache]
      Prints the qualified names (vendor/class=name) the folders resolve.
${cdiFlagLines("list")}`;
