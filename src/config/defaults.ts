/**
 * Every default of the command line, once. The option parser, the generated help text and the
 * capabilities that need a default when a test or library caller leaves a setting out all read
 * it from here. (The reference's own defaults come from docs/protocol.md#1-command-line.)
 */

import type { LogFormat, LogLevel } from "../util/log.ts";

export type { LogFormat, LogLevel };

export const BACKENDS = ["auto", "nvml", "cuda", "jetson", "mock"] as const;
/** Where GPUs are read from. */
export type Backend = (typeof BACKENDS)[number];

export const RUNNERS = ["auto", "cpu", "cuda"] as const;
/** What runs jobs. */
export type RunnerKind = (typeof RUNNERS)[number];

export const CONSOLE_ROLES = ["queen", "worker-gpu"] as const;
/** The role the `console` client attaches as (`worker-gpu` needs a ticket). */
export type ConsoleRole = (typeof CONSOLE_ROLES)[number];

export const JOB_KERNELS = ["vadd", "matmul", "ptx"] as const;
/** What a job may run: the bridge's own vadd or matmul, or a staged PTX bundle (`--allowed-kernels`). */
export type JobKernel = (typeof JOB_KERNELS)[number];

export const VERIFY_MODES = ["full", "sampled"] as const;
/** How a sealed shard is checked before each job (`--verify-mode`): every leaf, or random leaves. */
export type VerifyMode = (typeof VERIFY_MODES)[number];

export const APPROVALS = ["pending", "approved", "rejected"] as const;
/** The approval status an imported model is recorded with. */
export type Approval = (typeof APPROVALS)[number];

export const DEFAULTS = Object.freeze(
  {
    tcpHost: "127.0.0.1",
    tcpPort: 31337,
    authToken: "changeme",
    ticket: "",
    ackTimeoutMs: 5000,
    /** Console lines in flight before their acks (src/contract/window.ts bounds it). */
    window: 4,
    /**
     * Idle read-back of the VM's node files (`--readback-ms`; 0: only before full snapshots).
     * Each read-back is one CAT per node file (README, "The VM talks back", has its link cost).
     */
    readbackMs: 2000,
    /**
     * Least time between the full snapshots the VM sync asks for (a lease line is over one echo
     * payload, a log needs compacting): lease churn costs at most one per period, and that
     * period is the most it delays a lease line reaching the VM (docs/protocol.md, section 12).
     */
    minSnapshotMs: 1000,
    /** Ordinary changes to `<state-dir>/vm-mirror.json` are saved at most this often. */
    mirrorSaveMs: 1000,
    /** The role `console` attaches as. */
    consoleRole: "queen",
    /** `serve --publish` without `--interval-ms`. */
    serveIntervalMs: 30_000,
    logLevel: "info",
    /** `--log-format`: plain lines for a terminal; `json` for journald and log shippers. */
    logFormat: "text",
    /**
     * The daemon's INFO summary of publishes, appends and read-backs: per-event lines repeat many
     * times a second under load, so they are DEBUG and this line counts them once a period.
     */
    activitySummaryMs: 60_000,
    /** The newest changes kept in memory for event streams that resume (`Last-Event-ID`). */
    changesKept: 4096,
    /** Events one stream may have waiting before its client is dropped as too slow. */
    eventClientQueue: 1024,
    /** An idle event stream gets a comment line this often (proxies close silent connections). */
    eventHeartbeatMs: 15_000,
    backend: "auto",
    sysRoot: "/",
    runner: "auto",
    maxStreamsPerGpu: 16,
    // What finished jobs keep in memory for the API (src/job/retention.ts): a record (state,
    // summary, the result's size and SHA-256) for a count and an hour; the result bytes, all
    // jobs together, up to `--job-results-mb` and for `--job-results-age-s`.
    jobKeepFinished: 4096,
    jobKeepFinishedS: 3600,
    jobResultsMb: 64,
    jobResultsAgeS: 600,
    /** How long a stop waits for killed job processes to exit (within the daemon's 2 s stop). */
    stopChildrenMs: 1500,
    spoolMaxMb: 256,
    queenSegmentKb: 64,
    /** Warn when forwarding made no progress for this long while records wait and the console is up. */
    telemetryStallMs: 60_000,
    listenHost: "127.0.0.1",
    listenPort: 31338,
    mockConsoleHost: "127.0.0.1",
    mockConsolePort: 31337,
    ackDelayMs: 0,
    rttMs: 0,
    jitterMs: 0,
    /** The mock Queen exports a LoRA job once it holds this many records of one base model... */
    exportMinRecords: 32,
    /** ...that arrived within this many seconds. */
    exportWindowS: 3600,
    approval: "pending",
    /**
     * Live GPU stats are sampled this often (src/inventory/stats-cache.ts); the API and
     * `/metrics` serve the last sample and never poll the hardware themselves.
     */
    statsSampleMs: 2000,
    /**
     * `--lease-ttl-s`: the TTL of a lease asked for without one (a LEASE control line without
     * `ttl=`, a POST /v1/leases without `ttl_s`): the contract's example lease (docs/protocol.md,
     * section 7), or `--max-ttl-s` when that is shorter.
     */
    leaseTtlS: 120,
    /** `--verify-mode`: each sealed shard verified whole before every job of its lease. */
    verifyMode: "full",
    /** `--allowed-kernels`: every kind of job. */
    allowedKernels: "vadd,matmul,ptx",
    /** Released leases the lease manager keeps for lookups (`GET /v1/leases/{id}` after the end). */
    keepReleasedLeases: 1024,
    /** The publisher re-reads the host at least this often, changed or not. */
    publishRefreshMs: 60_000,
    /** A connected publisher pings the console after this long without traffic. */
    pingIdleMs: 15_000,
    /** Changes within this long of each other are one publish. */
    publishDebounceMs: 50,
    /** A telemetry spool segment file rolls to the next past this size. */
    spoolSegmentBytes: 1 << 20,
    /** The model registry's fallback poll (events are lost on some file systems). */
    registryPollMs: 1000,
    /** The slowest the registry poll gets, however long a load takes (each waits 50 times the last load). */
    registryPollMaxMs: 30_000,
    /** How long a registry that looks half-written may stay so before it replaces the last good catalog. */
    registrySettleMs: 5000,
    /** File-system events on the registry within this long of each other are one reload. */
    registryDebounceMs: 20,
    // Sealed VRAM shards (src/vram), set through the environment rather than flags:
    /** `$GPU_BRIDGE_MODEL_DIR` unset: the model folder is this folder under --state-dir. */
    vramModelDir: "models",
    /** At most this many tree worker threads (`$GPU_BRIDGE_VRAM_THREADS`, default the CPU count). */
    vramMaxThreads: 16,
    /** `--verify-mode sampled` without `--verify-sweep-ms` (or their variables): one full verification this often. */
    vramSampledSweepMs: 60_000,
    /** `--verify-max-age-ms`: how old the last full verification may be for an execute-check's yes. */
    verifyMaxAgeMs: 60_000,
    /** `vram-audit.jsonl` rolls to `.1` past this size; at most `vramAuditFiles` files are kept (8 MiB in all). */
    vramAuditBytes: 1 << 20,
    vramAuditFiles: 8,
    /** The audit trail (`<state-dir>/audit`): synced per record or per batch, file size, files kept. */
    auditFsync: "batch" as "record" | "batch",
    auditFileMb: 8,
    auditFiles: 64,
    /** `serve --cdi-root` and `cdi generate`'s --dev-root and --driver-root. */
    cdiRoot: "/",
    /** `cdi generate --kind`: nvidia-ctk's kind, so its consumers find the devices. */
    cdiKind: "nvidia.com/gpu",
    /** The bridge's own kind (`serve --cdi-dir`): distinct from nvidia-ctk's, so both resolve side by side. */
    cdiBridgeKind: "cohesix/gpu",
    /** `cdi generate --hook-path`: hooks are written only where this file exists. */
    cdiHookPath: "/usr/bin/nvidia-cdi-hook",
    /** `cdi generate --csv-dir` (Jetson). */
    cdiCsvDir: "/etc/nvidia-container-runtime/host-files-for-container.d",
    cdiFormat: "json",
    /** `cdi apply|list --spec-dir`: lowest priority first. */
    cdiSpecDirs: ["/etc/cdi", "/var/run/cdi"],
    /** `serve --mps`: the MPS control program, found on PATH (GPU_BRIDGE_MPS_CONTROL names another). */
    mpsControl: "nvidia-cuda-mps-control",
    /** How often `serve --cdi-dir` describes the host again. */
    cdiRefreshMs: 10_000,
    /**
     * The most a spec file (`cdi apply|list|validate`) may hold: nvidia-ctk's spec of an 8-GPU
     * MIG host is about 40 KB. A bigger file, or one that is not a regular file, is skipped and named.
     */
    cdiSpecMaxBytes: 1024 * 1024,
    /** The most `cdi apply --input FILE` may hold (a runtime's config.json is a few KB). */
    cdiConfigMaxBytes: 16 * 1024 * 1024,
    /** `serve --kubelet-dir`: the kubelet's folder (device-plugins/, pod-resources/). */
    kubeletDir: "/var/lib/kubelet",
    /** `serve --k8s-poll-ms`: how often PodResources is read to release the leases of gone containers. */
    k8sPollMs: 2000,
    /**
     * The TTL k8s leases are granted and renewed with (renewed while a pod holds their devices),
     * or `--max-ttl-s` when that is shorter.
     */
    k8sLeaseTtlS: 3600,
    /** How long a k8s lease's devices may be missing from PodResources before it is released. */
    k8sGraceMs: 10_000,
    /** `serve --k8s-recover-ms`: a GPU is Healthy again this long after its last critical event. */
    k8sRecoverMs: 30_000,
    /**
     * `serve --k8s-ignored-xids`: XIDs that are the application's fault, not the GPU's, as NVIDIA's
     * plugin skips them: 13 graphics engine exception, 31 memory page fault, 43 GPU stopped
     * processing, 45 preemptive cleanup, 68 video processor exception, 109 context switch timeout.
     */
    k8sIgnoredXids: "13,31,43,45,68,109",
    /** `serve --k8s-share N`: the most devices one GPU may be advertised as. */
    k8sShareMax: 64,
    /** `serve --nfd-file`: Node Feature Discovery's local feature folder, our file in it. */
    nfdFile: "/etc/kubernetes/node-feature-discovery/features.d/gpu-bridge-host",
    /** `doctor --timeout-ms`: the most any network step of the doctor waits. */
    doctorTimeoutMs: 1000,
    /** `doctor --dev-root`: where device nodes are read. */
    devRoot: "/",
  } as const satisfies {
    readonly [key: string]: string | number | readonly string[];
    readonly logLevel: LogLevel;
    readonly logFormat: LogFormat;
    readonly backend: Backend;
    readonly runner: RunnerKind;
    readonly approval: Approval;
    readonly consoleRole: ConsoleRole;
    readonly verifyMode: VerifyMode;
  },
);
