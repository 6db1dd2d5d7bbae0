/**
 * The lease manager: a pure core over an injected clock. Grants check the GPU, the ranges, the
 * memory still unleased and a per-GPU stream cap, and say why with numbers when they refuse.
 * Expiry uses one timer over a min-heap of deadlines (not one timer per lease); renewals push
 * a new deadline and the stale one is skipped when it surfaces.
 */
import { DEFAULTS } from "../config/defaults.ts";
import { SAFE_ID_RULE } from "../contract/ids.ts";
import { MinHeap } from "../util/heap.ts";
import { checkPolicy, DEFAULT_LEASE_POLICY, type LeasePolicy, overMaximum } from "./policy.ts";
import { checkCount, checkPriority, checkStreams, checkTtl } from "./ranges.ts";
import {
  type Clock,
  type LeasableGpu,
  type Lease,
  LeaseError,
  type LeaseEvent,
  type LeaseRequest,
  REASON,
  systemClock,
  WORKER_ID,
} from "./types.ts";

export interface LeaseManagerOptions {
  /** The GPUs that can be leased now (the inventory). */
  readonly gpus: () => readonly LeasableGpu[];
  readonly clock?: Clock;
  /** Streams that may be leased on one GPU at once (default DEFAULTS.maxStreamsPerGpu). */
  readonly maxStreamsPerGpu?: number;
  /** Extra admission policy: a reason to refuse `candidate`, or null. */
  readonly admit?: (gpuId: string, live: readonly Lease[], candidate: Lease) => string | null;
  readonly newId?: () => string;
  /** Released leases kept for lookups (default DEFAULTS.keepReleasedLeases). */
  readonly keepReleased?: number;
  /** The MIG devices a lease may name instead of a GPU: `MIG-<uuid>` to the parent's GPU id. */
  readonly migDevices?: () => ReadonlyMap<string, string>;
  /** The operator's maxima every grant, amendment and renewal is held to (default DEFAULT_LEASE_POLICY). */
  readonly policy?: LeasePolicy;
}

/** The longest delay a JavaScript timer holds (2^31-1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

interface Deadline {
  readonly at: number;
  readonly id: string;
}

let counter = 0;
const defaultId = () => `lease-${Date.now().toString(36)}-${(++counter).toString(36)}${Math.random().toString(36).slice(2, 6)}`;

export class LeaseManager {
  readonly #o: Required<Omit<LeaseManagerOptions, "admit" | "migDevices">> & Pick<LeaseManagerOptions, "admit" | "migDevices">;
  readonly #leases = new Map<string, Lease>();
  readonly #liveByGpu = new Map<string, Set<string>>();
  /** Running totals per GPU, so a grant costs O(1) rather than a walk over its leases. */
  readonly #used = new Map<string, { mem: number; streams: number }>();
  #live = 0;
  #gpuIndex: { source: readonly LeasableGpu[]; byId: Map<string, LeasableGpu> } | null = null;
  readonly #byWorker = new Map<string, string>();
  /** Live leases of MIG devices: `MIG-<uuid>` to the lease id. */
  readonly #migHeld = new Map<string, string>();
  readonly #released: string[] = [];
  readonly #deadlines = new MinHeap<Deadline>((a, b) => a.at < b.at);
  readonly #listeners = new Set<(e: LeaseEvent) => void>();
  #timer: unknown = null;
  #armedAt = Infinity;

  constructor(options: LeaseManagerOptions) {
    this.#o = {
      clock: systemClock,
      maxStreamsPerGpu: DEFAULTS.maxStreamsPerGpu,
      newId: defaultId,
      keepReleased: DEFAULTS.keepReleasedLeases,
      policy: DEFAULT_LEASE_POLICY,
      ...options,
    };
  }

  /** Subscribes to lease events; returns the unsubscribe function. */
  on(listener: (e: LeaseEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The lease policy in force (its defaults fill in what a request leaves out: src/lease/policy.ts). */
  get policy(): LeasePolicy {
    return this.#o.policy;
  }

  /** How many leases are live (O(1)). */
  get liveCount(): number {
    return this.#live;
  }

  get(id: string): Lease | undefined {
    return this.#leases.get(id);
  }

  /** Every known lease, live ones first. */
  list(): Lease[] {
    return [...this.#leases.values()].sort((a, b) => (a.state === b.state ? a.granted_at - b.granted_at : a.state === "ACTIVE" ? -1 : 1));
  }

  /** The live leases, of one GPU or of all. */
  live(gpuId?: string): Lease[] {
    const ids = gpuId === undefined ? [...this.#liveByGpu.values()].flatMap((s) => [...s]) : [...(this.#liveByGpu.get(gpuId) ?? [])];
    return ids.map((id) => this.#leases.get(id)!);
  }

  /** The live lease of `workerId` on `gpuId`, if any. */
  ofWorker(gpuId: string, workerId: string): Lease | undefined {
    const id = this.#byWorker.get(`${gpuId}\0${workerId}`);
    return id === undefined ? undefined : this.#leases.get(id);
  }

  /** Grants a lease or throws LeaseError saying why not. A `gpu_id` of `MIG-<uuid>` takes that MIG device alone. */
  grant(asked: LeaseRequest): Lease {
    const req = this.#resolveMig(asked);
    const gpu = this.#gpu(req.gpu_id);
    if (gpu === undefined) throw new LeaseError("not_found", `Unknown GPU ${JSON.stringify(req.gpu_id)}`, "gpu_id");
    checkRequest(req);
    // Every source of leases comes through here: the API, control lines, the VM's records, k8s.
    checkPolicy(this.#o.policy, req);
    const existing = this.ofWorker(req.gpu_id, req.worker_id);
    if (existing !== undefined) {
      throw new LeaseError(
        "conflict",
        `${req.worker_id} already holds lease ${existing.id} on ${req.gpu_id}; renew or release it`,
        "worker_id",
      );
    }
    this.#checkRoom(gpu, req, this.#used.get(req.gpu_id) ?? { mem: 0, streams: 0 });
    const now = this.#o.clock.now();
    const lease: Lease = {
      id: this.#o.newId(),
      gpu_id: req.gpu_id,
      worker_id: req.worker_id,
      mem_mb: req.mem_mb,
      streams: req.streams,
      ttl_s: req.ttl_s,
      priority: req.priority,
      state: "ACTIVE",
      granted_at: now,
      expires_at: now + req.ttl_s * 1000,
      ...(req.mig_uuid !== undefined && { mig_uuid: req.mig_uuid }),
      ...(req.principal !== undefined && { principal: req.principal }),
    };
    const refusal = this.#o.admit === undefined ? null : this.#o.admit(req.gpu_id, this.live(req.gpu_id), lease);
    if (refusal !== null) throw new LeaseError("insufficient", refusal);
    this.#activate(lease);
    this.#emit({ type: "granted", lease });
    return lease;
  }

  /**
   * A request naming a MIG device, as a request for its parent GPU holding that device. Refused
   * when the device is unknown, held by another lease, or its GPU is leased whole (and a whole
   * lease is refused while a MIG device of its GPU is held): a MIG device is never shared.
   */
  #resolveMig(req: LeaseRequest): LeaseRequest & { readonly mig_uuid?: string } {
    const uuid = req.gpu_id;
    const parent = typeof uuid === "string" && uuid.startsWith("MIG-") ? this.#o.migDevices?.().get(uuid) : undefined;
    if (typeof uuid === "string" && uuid.startsWith("MIG-") && parent === undefined) {
      const known = [...(this.#o.migDevices?.().keys() ?? [])];
      throw new LeaseError(
        "not_found",
        `Unknown MIG device ${JSON.stringify(uuid)}: ${
          this.#o.migDevices === undefined
            ? "MIG devices are leased through the bridge's CDI spec (serve --cdi-dir, on the NVML backend)"
            : known.length === 0
            ? "no GPU here has MIG devices"
            : `this host's are ${known.slice(0, 16).join(", ")}${known.length > 16 ? `, and ${known.length - 16} more` : ""}`
        }`,
        "gpu_id",
      );
    }
    const gpuId = parent ?? uuid;
    if (this.#migHeld.size === 0 && parent === undefined) return req; // the common case, O(1)
    const migLeases = [...this.#migHeld.values()].map((id) => this.#leases.get(id)!).filter((l) => l.gpu_id === gpuId);
    const until = (l: Lease) => ` (until ${new Date(l.expires_at).toISOString()})`;
    if (parent === undefined) {
      const l = migLeases[0];
      if (l === undefined) return req;
      throw new LeaseError(
        "conflict",
        `${gpuId} is split into MIG devices and lease ${l.id} holds ${l.mig_uuid}${until(l)}; lease a free MIG device by its UUID`,
        "gpu_id",
      );
    }
    const holder = migLeases.find((l) => l.mig_uuid === uuid);
    if (holder !== undefined) {
      throw new LeaseError("conflict", `MIG device ${uuid} is taken: lease ${holder.id} holds it${until(holder)}`, "gpu_id");
    }
    const whole = this.live(gpuId).find((l) => l.mig_uuid === undefined);
    if (whole !== undefined) {
      throw new LeaseError(
        "conflict",
        `${gpuId}, the GPU of MIG device ${uuid}, is leased whole by lease ${whole.id}${until(whole)}`,
        "gpu_id",
      );
    }
    return { ...req, gpu_id: gpuId, mig_uuid: uuid };
  }

  /** Extends a live lease by `ttl_s` (default: its own TTL) from now. */
  renew(id: string, ttlS?: number): Lease {
    const lease = this.#liveLease(id);
    const ttl = ttlS ?? lease.ttl_s;
    checkTtl(ttl);
    // A TTL asked for now is held to the maximum; the lease's own is the term it was granted
    // (or kept with from the journal after the maximum was lowered: docs/tenancy.md).
    const over = ttlS === undefined ? null : overMaximum(this.#o.policy, "ttl_s", ttlS);
    if (over !== null) throw over;
    lease.expires_at = this.#o.clock.now() + ttl * 1000;
    this.#deadlines.push({ at: lease.expires_at, id });
    this.#arm();
    this.#emit({ type: "renewed", lease });
    return lease;
  }

  /** Throws LeaseError when `req` does not fit on `gpu` beside what others already hold (`used`). */
  #checkRoom(gpu: LeasableGpu, req: Pick<LeaseRequest, "gpu_id" | "mem_mb" | "streams">, used: { mem: number; streams: number }): void {
    if (used.mem + req.mem_mb > gpu.memory_mb) {
      throw new LeaseError(
        "insufficient",
        `insufficient memory on ${req.gpu_id}: requested ${req.mem_mb} MiB, ${Math.max(0, gpu.memory_mb - used.mem)} MiB unleased`,
        "mem_mb",
      );
    }
    const cap = this.#o.maxStreamsPerGpu;
    if (used.streams + req.streams > cap) {
      throw new LeaseError(
        "insufficient",
        `insufficient streams on ${req.gpu_id}: requested ${req.streams}, ${Math.max(0, cap - used.streams)} of ${cap} unleased`,
        "streams",
      );
    }
  }

  /**
   * Changes a live lease's terms (memory, streams, TTL, priority), admitted exactly as a new
   * grant of those terms would be, with the lease's own share counted as free; the TTL runs
   * anew from now. Throws LeaseError saying why when they do not fit (nothing changes then).
   */
  amend(id: string, asked: Pick<LeaseRequest, "mem_mb" | "streams" | "ttl_s" | "priority">): Lease {
    const lease = this.#liveLease(id);
    const terms = { mem_mb: asked.mem_mb, streams: asked.streams, ttl_s: asked.ttl_s, priority: asked.priority };
    checkRequest({ ...lease, ...terms });
    checkPolicy(this.#o.policy, terms);
    const gpu = this.#gpu(lease.gpu_id);
    if (gpu === undefined) throw new LeaseError("not_found", `Unknown GPU ${JSON.stringify(lease.gpu_id)}`, "gpu_id");
    const used = this.#used.get(lease.gpu_id) ?? { mem: 0, streams: 0 };
    // The lease's own share counts as free: it is what the new terms replace.
    this.#checkRoom(gpu, { gpu_id: lease.gpu_id, ...terms }, { mem: used.mem - lease.mem_mb, streams: used.streams - lease.streams });
    const now = this.#o.clock.now();
    const candidate: Lease = { ...lease, ...terms, expires_at: now + terms.ttl_s * 1000 };
    const others = this.live(lease.gpu_id).filter((l) => l.id !== id);
    const refusal = this.#o.admit === undefined ? null : this.#o.admit(lease.gpu_id, others, candidate);
    if (refusal !== null) throw new LeaseError("insufficient", refusal);
    this.#account(lease, -1);
    // In place: the scheduler, the VRAM store and the API hold this object.
    Object.assign(lease, terms);
    lease.expires_at = candidate.expires_at;
    this.#account(lease, 1);
    this.#deadlines.push({ at: lease.expires_at, id });
    this.#arm();
    this.#emit({ type: "amended", lease });
    return lease;
  }

  /** Changes a live lease's priority (checkPriority's range). */
  setPriority(id: string, priority: number): Lease {
    const lease = this.#liveLease(id);
    checkPriority(priority);
    lease.priority = priority;
    this.#emit({ type: "priority", lease });
    return lease;
  }

  /** Ends a live lease. */
  release(id: string, reason = "released"): Lease {
    if (typeof reason !== "string" || !REASON.test(reason)) {
      throw new LeaseError("invalid", `reason must be 1-128 printable ASCII characters, got ${JSON.stringify(reason)}`, "reason");
    }
    const lease = this.#liveLease(id);
    this.#end(lease, reason);
    return lease;
  }

  /** Ends every live lease of `gpuId` (the RESET verb). */
  releaseGpu(gpuId: string, reason: string): Lease[] {
    const ended = this.live(gpuId);
    for (const lease of ended) this.#end(lease, reason);
    return ended;
  }

  /**
   * Adopts leases from a journal at start-up: live ones whose deadline has passed are released
   * now (reason `expired`), the rest are re-armed. No `granted` events are emitted for them.
   */
  restore(leases: readonly Lease[]): { restored: Lease[]; expired: Lease[]; refused: { lease: Lease; why: string }[] } {
    const now = this.#o.clock.now();
    const restored: Lease[] = [];
    const expired: Lease[] = [];
    const refused: { lease: Lease; why: string }[] = [];
    for (const lease of leases) {
      if (lease.state !== "ACTIVE" || this.#leases.has(lease.id)) continue;
      // A journal is input like any other: it is held to what a grant would have been.
      const why = this.#restoreProblem(lease);
      if (why !== null) {
        refused.push({ lease, why });
        continue;
      }
      // A deadline further off than the lease's TTL means the clock is behind the one that
      // wrote the journal (a Jetson booting without RTC): give the lease its TTL from now.
      const expiresAt = Math.min(lease.expires_at, now + lease.ttl_s * 1000);
      this.#activate({ ...lease, expires_at: expiresAt });
      const adopted = this.#leases.get(lease.id)!;
      if (lease.expires_at <= now) {
        this.#end(adopted, "expired");
        expired.push(adopted);
      } else {
        restored.push(adopted);
      }
    }
    return { restored, expired, refused };
  }

  #restoreProblem(lease: Lease): string | null {
    const gpu = this.#gpu(lease.gpu_id);
    if (gpu === undefined) return `unknown GPU ${JSON.stringify(lease.gpu_id)}`;
    try {
      checkRequest(lease);
    } catch (error) {
      return (error as Error).message;
    }
    const held = this.ofWorker(lease.gpu_id, lease.worker_id);
    if (held !== undefined) return `${lease.worker_id} already holds lease ${held.id} on ${lease.gpu_id}`;
    const migHolder = lease.mig_uuid === undefined ? undefined : this.#migHeld.get(lease.mig_uuid);
    if (migHolder !== undefined) return `MIG device ${lease.mig_uuid} is taken: lease ${migHolder} holds it`;
    const used = this.#used.get(lease.gpu_id) ?? { mem: 0, streams: 0 };
    if (used.mem + lease.mem_mb > gpu.memory_mb) {
      return `insufficient memory on ${lease.gpu_id}: ${lease.mem_mb} MiB, ${Math.max(0, gpu.memory_mb - used.mem)} MiB unleased`;
    }
    if (used.streams + lease.streams > this.#o.maxStreamsPerGpu) return `insufficient streams on ${lease.gpu_id}`;
    return null;
  }

  /** Stops the expiry timer (leases stay as they are). */
  close(): void {
    if (this.#timer !== null) this.#o.clock.clearTimer(this.#timer);
    this.#timer = null;
    this.#armedAt = Infinity;
  }

  #liveLease(id: string): Lease {
    const lease = this.#leases.get(id);
    if (lease === undefined) throw new LeaseError("not_found", `Unknown lease ${JSON.stringify(id)}`, "id");
    if (lease.state !== "ACTIVE") {
      throw new LeaseError("permission", `Lease ${id} has ended (${lease.released_reason ?? "released"}); take a new lease`);
    }
    return lease;
  }

  /** The GPU `id` of the current inventory, through an index rebuilt when the inventory changes. */
  #gpu(id: string): LeasableGpu | undefined {
    const source = this.#o.gpus();
    if (this.#gpuIndex?.source !== source) this.#gpuIndex = { source, byId: new Map(source.map((g) => [g.id, g])) };
    return this.#gpuIndex.byId.get(id);
  }

  #account(lease: Lease, sign: 1 | -1): void {
    let used = this.#used.get(lease.gpu_id);
    if (used === undefined) this.#used.set(lease.gpu_id, used = { mem: 0, streams: 0 });
    used.mem += sign * lease.mem_mb;
    used.streams += sign * lease.streams;
    this.#live += sign;
  }

  #activate(lease: Lease): void {
    this.#account(lease, 1);
    this.#leases.set(lease.id, lease);
    let set = this.#liveByGpu.get(lease.gpu_id);
    if (set === undefined) this.#liveByGpu.set(lease.gpu_id, set = new Set());
    set.add(lease.id);
    this.#byWorker.set(`${lease.gpu_id}\0${lease.worker_id}`, lease.id);
    if (lease.mig_uuid !== undefined) this.#migHeld.set(lease.mig_uuid, lease.id);
    this.#deadlines.push({ at: lease.expires_at, id: lease.id });
    this.#arm();
  }

  #end(lease: Lease, reason: string): void {
    this.#account(lease, -1);
    lease.state = "RELEASED";
    lease.released_reason = reason;
    this.#liveByGpu.get(lease.gpu_id)?.delete(lease.id);
    this.#byWorker.delete(`${lease.gpu_id}\0${lease.worker_id}`);
    if (lease.mig_uuid !== undefined) this.#migHeld.delete(lease.mig_uuid);
    this.#released.push(lease.id);
    while (this.#released.length > this.#o.keepReleased) this.#leases.delete(this.#released.shift()!);
    // Each live lease has one current deadline in the heap; the rest are stale (renewed or
    // released early) and skipped as they surface. Compact once they outnumber the live ones,
    // which amortises the O(n) rebuild to O(1) per stale entry.
    if (this.#deadlines.size - this.#live > this.#live + 1024) {
      this.#deadlines.filter((d) => this.#leases.get(d.id)?.state === "ACTIVE" && this.#leases.get(d.id)!.expires_at === d.at);
    }
    this.#emit({ type: "released", lease, reason });
  }

  /** Keeps the one timer set for the earliest live deadline. */
  #arm(): void {
    const top = this.#deadlines.peek();
    const at = top?.at ?? Infinity;
    if (at === this.#armedAt) return;
    if (this.#timer !== null) this.#o.clock.clearTimer(this.#timer);
    this.#timer = null;
    this.#armedAt = at;
    if (at === Infinity) return;
    // Timers hold 32-bit delays: past 2^31-1 ms (24.8 days) they fire at once, every time.
    // A deadline further off is reached in steps; #expire re-arms when nothing is due yet.
    this.#timer = this.#o.clock.setTimer(Math.min(MAX_TIMER_MS, Math.max(0, at - this.#o.clock.now())), () => this.#expire());
  }

  #expire(): void {
    this.#timer = null;
    this.#armedAt = Infinity;
    const now = this.#o.clock.now();
    for (let top = this.#deadlines.peek(); top !== undefined && top.at <= now; top = this.#deadlines.peek()) {
      this.#deadlines.pop();
      const lease = this.#leases.get(top.id);
      if (lease?.state === "ACTIVE" && lease.expires_at === top.at) this.#end(lease, "expired");
    }
    this.#arm();
  }

  #emit(event: LeaseEvent): void {
    for (const l of this.#listeners) l(event);
  }
}

function checkRequest(req: LeaseRequest): void {
  if (typeof req.worker_id !== "string" || !WORKER_ID.test(req.worker_id)) {
    throw new LeaseError("invalid", `worker_id must be ${SAFE_ID_RULE}, got ${JSON.stringify(req.worker_id)}`, "worker_id");
  }
  checkCount(req.mem_mb, "mem_mb", Number.MAX_SAFE_INTEGER);
  checkStreams(req.streams);
  checkTtl(req.ttl_s);
  checkPriority(req.priority);
}
