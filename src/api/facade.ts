/**
 * What the API may ask of a running bridge, and nothing more: the routes call this narrow
 * façade (built by `createBridge` in src/app), never lease, job or inventory internals. Every
 * read here is a read: none of them touches the hardware.
 */
import type { RetentionPolicy } from "../job/retention.ts";
import type { CdiSpec } from "../cdi/schema.ts";
import type { EventHub } from "../changes/stream.ts";
import type { PublisherStats } from "../console/publisher.ts";
import type { ReadbackMode } from "../console/readback.ts";
import type { GpuInfo } from "../contract/info.ts";
import type { EndedLease } from "../audit/history.ts";
import type { ModelCatalog } from "../contract/models.ts";
import type { Activation, ApprovalChange } from "../models/activation.ts";
import type { Namespace } from "../contract/namespace.ts";
import type { Snapshot } from "../contract/snapshot.ts";
import type { GpuStats } from "../inventory/stats.ts";
import type { JobRecord } from "../job/scheduler.ts";
import type { Lease, LeaseRequest } from "../lease/types.ts";
import type { LeasePolicy } from "../lease/policy.ts";
import type { TelemetryView } from "../telemetry/view.ts";
import type { VramBackend } from "../vram/backend.ts";
import type { Vram } from "../vram/mod.ts";
import type { ShardStore } from "../vram/shards.ts";

/** The model registry as the API needs it. */
export interface ApiModels {
  catalog(): ModelCatalog;
  /** The registry's folder; absent without one. */
  readonly registry?: string;
  /**
   * Makes `modelId` active once it passes the gate (rewrites `active` atomically and republishes;
   * src/models/activation.ts); absent without a registry. What the activation did, where it says.
   */
  setActive?(
    modelId: string,
    options?: { readonly force?: boolean; readonly seal_lease?: string },
  ): void | Partial<Activation> | Promise<void | Partial<Activation>>;
  /** Records an approval decision in the model's manifest; absent without a registry. */
  setApproval?(modelId: string, status: "approved" | "rejected", reason: string): ApprovalChange;
}

/** Leases, as the API may see and change them. */
export interface ApiLeases {
  list(): readonly Lease[];
  /** Live leases, of one GPU or all. */
  live(gpuId?: string): readonly Lease[];
  get(id: string): Lease | undefined;
  grant(req: LeaseRequest): Lease;
  renew(id: string, ttlS?: number): Lease;
  /** The lease policy: what a request may leave out, and the maxima (absent: DEFAULT_LEASE_POLICY). */
  readonly policy?: LeasePolicy;
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
export type ApiShardStore =
  & Pick<ShardStore, "seal" | "get" | "list" | "release" | "verify" | "leaseRoom" | "usedBytes" | "shareRefusal">
  & {
    readonly backend: Pick<VramBackend, "kind" | "note" | "memInfo">;
  };

/** Sealed VRAM shards (src/vram), as the shard routes and `/metrics` need them. */
export interface ApiVram extends
  Pick<
    Vram,
    "unavailable" | "ordinalOf" | "modelDir" | "attest" | "metrics" | "share" | "executeCheck" | "set" | "attestSet" | "executeCheckSet"
  > {
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

/** A principal as `GET /v1/principals/me` shows it (src/api/scope.ts). */
export interface PrincipalView {
  readonly name: string;
  readonly role: string;
  readonly workers: readonly string[];
  /** Every quota: what is in use, the limit (null: none), and what it counts. */
  readonly quotas: Readonly<Record<string, { readonly use: number; readonly limit: number | null; readonly what: string }>>;
}

/** The principals of a tokens file, as the API sees them (present only with one). */
export interface ApiPrincipals {
  /** The calling principal with its use against its quotas. */
  me(): PrincipalView;
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
  /** The leases that ended at or after a time, from the audit trail (absent: no trail). */
  readonly leaseHistory?: (sinceMs: number) => { readonly leases: readonly EndedLease[]; readonly truncated: boolean };
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
  /** The record of changes as event streams (absent: a façade built without one, in tests). */
  readonly events?: Pick<EventHub, "open" | "clients" | "dropped" | "counts">;
  /** The effective settings, secrets masked, for `GET /v1/config` (absent: a façade built without them). */
  readonly settings?: () => Readonly<Record<string, unknown>>;
  /** The calling principal and its quotas (absent: no tokens file; scope.ts sets it). */
  readonly principals?: ApiPrincipals;
  /** The device plugin's health and counters as Prometheus text (absent: no --k8s). */
  readonly k8sMetrics?: () => string;
}
