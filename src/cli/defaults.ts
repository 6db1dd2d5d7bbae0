/**
 * Every default of the command line, once. The option parser, the generated help text and the
 * capabilities that need a default when a test or library caller leaves a setting out all read
 * it from here. (The reference's own defaults come from docs/protocol.md#1-command-line.)
 */

import type { LogLevel } from "../util/log.ts";

export type { LogLevel };

export const BACKENDS = ["auto", "nvml", "cuda", "jetson", "mock"] as const;
/** Where GPUs are read from. */
export type Backend = (typeof BACKENDS)[number];

export const RUNNERS = ["auto", "cpu", "cuda"] as const;
/** What runs jobs. */
export type RunnerKind = (typeof RUNNERS)[number];

export const CONSOLE_ROLES = ["queen", "worker-gpu"] as const;
/** The role the `console` client attaches as (`worker-gpu` needs a ticket). */
export type ConsoleRole = (typeof CONSOLE_ROLES)[number];

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
    backend: "auto",
    sysRoot: "/",
    runner: "auto",
    maxStreamsPerGpu: 16,
    spoolMaxMb: 256,
    queenSegmentKb: 64,
    listenHost: "127.0.0.1",
    listenPort: 31338,
    mockConsoleHost: "127.0.0.1",
    mockConsolePort: 31337,
    ackDelayMs: 0,
    rttMs: 0,
    jitterMs: 0,
    approval: "pending",
    // Sealed VRAM shards (src/vram), set through the environment rather than flags:
    /** `$GPU_BRIDGE_MODEL_DIR` unset: the model folder is this folder under --state-dir. */
    vramModelDir: "models",
    /** At most this many tree worker threads (`$GPU_BRIDGE_VRAM_THREADS`, default the CPU count). */
    vramMaxThreads: 16,
    /** With `$GPU_BRIDGE_VRAM_GATE=sampled` and no `$GPU_BRIDGE_VRAM_SWEEP_MS`: one full verification this often. */
    vramSampledSweepMs: 60_000,
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
    /** How often `serve --cdi-dir` describes the host again. */
    cdiRefreshMs: 10_000,
  } as const satisfies {
    readonly [key: string]: string | number | readonly string[];
    readonly logLevel: LogLevel;
    readonly backend: Backend;
    readonly runner: RunnerKind;
    readonly approval: Approval;
    readonly consoleRole: ConsoleRole;
  },
);
