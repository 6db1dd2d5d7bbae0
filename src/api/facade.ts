/**
 * What the API may ask of a running bridge, and nothing more: the routes call this narrow
 * façade (built by `createBridge` in src/app), never lease, job or inventory internals. Every
 * read here is a read: none of them touches the hardware.
 */
import type { RetentionPolicy } from "../job/retention.ts";
import type { CdiSpec } from "../cdi/schema.ts";
import type { PublisherStats } from "../console/publisher.ts";
import type { ReadbackMode } from "../console/readback.ts";
import type { GpuInfo } from "../contract/info.ts";
import type { ModelCatalog } from "../contract/models.ts";
import type { Namespace } from "../contract/namespace.ts";
import type { Snapshot } from "../contract/snapshot.ts";
import type { GpuStats } from "../inventory/stats.ts";
import type { JobRecord } from "../job/scheduler.ts";
import type { Lease, LeaseRequest } from "../lease/types.ts";
import type { TelemetryView } from "../telemetry/view.ts";
import type { VramBackend } from "../vram/backend.ts";
import type { Vram } from "../vram/mod.ts";
import type { ShardStore } from "../vram/shards.ts";

/** The model registry as the API needs it. */
export interface ApiModels {
  catalog(): ModelCatalog;
  /** Makes `modelId` active (rewrites `active` atomically and republishes); absent without a registry. */
  setActive?(modelId: string): void;
}

/** Leases, as the API may see and change them. */
export interface ApiLeases {
  list(): readonly Lease[];
  /** Live leases, of one GPU or all. */
  live(gpuId?: string): readonly Lease[];
  get(id: string): Lease | undefined;
  grant(req: LeaseRequest): Lease;
  renew(id: string, ttlS?: number): Lease;
  release(id: string, reason: string): Lease;
}

/** Jobs, as the API may see and submit them. */
export interface ApiJobs {
  submit(leaseId: string, descriptor: unknown): JobRecord;
  get(job: string): JobRecord | undefined;
  counts(): Readonly<Record<string, number>>;
  /** Results held in memory (count and bytes), and the policy that frees them (src/job/retention.ts). */
  results?(): { count: number; bytes: number };
  readonly policy?: RetentionPolicy;
}

/** Telemetry ingest and its state (src/telemetry/view.ts): never the spool or the forwarder themselves. */
export type ApiTelemetry = TelemetryView;

/** The shard store as the routes use it: seal, look up, verify, release, and what the VRAM holds. */
export type ApiShardStore = Pick<ShardStore, "seal" | "get" | "list" | "release" | "verify" | "leaseRoom" | "usedBytes"> & {
  readonly backend: Pick<VramBackend, "kind" | "note" | "memInfo">;
};

/** Sealed VRAM shards (src/vram), as the shard routes and `/metrics` need them. */
export interface ApiVram extends Pick<Vram, "unavailable" | "ordinalOf" | "modelDir" | "attest" | "metrics"> {
  /** Null: shards are unavailable on this bridge (`unavailable` says why). */
  readonly store: ApiShardStore | null;
}
/** The CDI spec the bridge keeps (serve --cdi-dir). */
export interface ApiCdi {
  /** Where the spec is written. */
  readonly path: string;
  /** The spec as written now; null while the host cannot be described. */
  current(): CdiSpec | null;
  /** The qualified CDI device of a live lease, or null. */
  deviceFor(leaseId: string): string | null;
}

/** The bridge behind the API. */
export interface BridgeFacade {
  readonly version: string;
  readonly hostname: string;
  /** The GPUs as last read (the publisher's refresh reads the hardware; the API never does). */
  gpus(): readonly GpuInfo[];
  /**
   * Live statistics as last sampled (every DEFAULTS.statsSampleMs of the bridge's clock); never
   * polls. The bridge hands the sample itself, so a read answers without waiting a turn of the
   * event loop (the most asked-for route stays synchronous); a promise of it is taken too.
   */
  stats(): readonly GpuStats[] | Promise<readonly GpuStats[]>;
  /** The namespace as it would be published now, from the GPUs as last read. */
  namespace(): Namespace;
  /** That namespace as a snapshot. */
  snapshot(): Snapshot;
  /** One control line for a GPU (`LEASE`, `RELEASE`, `PRIORITY`, `RESET`). */
  control(gpuId: string, line: string): { message: string; lease?: Lease };
  readonly leases: ApiLeases;
  readonly jobs: ApiJobs;
  readonly models: ApiModels;
  /** Where the console is and how publishing goes (null: not publishing). */
  readonly console: {
    readonly target: { readonly host: string; readonly port: number } | null;
    stats(): PublisherStats | null;
    /** Whether the console reads the VM's files back (null: not publishing). */
    vmReadback?(): ReadbackMode | null;
  };
  readonly telemetry?: ApiTelemetry;
  /** Absent: the bridge serves no shard routes (tests that build a façade without them). */
  readonly vram?: ApiVram;
  /** Absent: CDI is off (no --cdi-dir). */
  readonly cdi?: ApiCdi;
  /** The VM sync's counters as Prometheus text (absent: not publishing). */
  readonly vmMetrics?: () => string;
  /** The device plugin's health and counters as Prometheus text (absent: no --k8s). */
  readonly k8sMetrics?: () => string;
}
