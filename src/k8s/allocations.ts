/**
 * Allocations as leases: each container of an Allocate becomes one bridge lease per GPU it asks
 * for (worker `k8s.<first device>`, memory the whole GPU or its shares), and each lease is
 * released once no pod holds its devices any more, as PodResources tells, after a grace period.
 * A pure core over a lease port and a clock: no sockets, no gRPC.
 */
import { DEFAULTS } from "../config/defaults.ts";
import type { Lease, LeaseRequest } from "../lease/types.ts";
import type { Clock } from "../util/clock.ts";
import { deviceIdOfWorker, HEALTHY, type PluginDevice, workerIdOf } from "./devices.ts";

/** A refused Allocate; `code` becomes the gRPC status (grpc-server.ts). */
export class AllocateError extends Error {
  override name = "AllocateError";
  readonly code: "unknown" | "unhealthy" | "taken" | "invalid" | "refused";
  constructor(code: AllocateError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** What the allocations need of the lease manager. */
export interface LeasePort {
  grant(req: LeaseRequest): Lease;
  release(id: string, reason: string): unknown;
  renew(id: string, ttlS: number): unknown;
  live(): readonly Lease[];
}

export interface AllocationsOptions {
  readonly leases: LeasePort;
  readonly clock: Clock;
  /** Devices per GPU (`--k8s-share`; 1: whole GPUs). */
  readonly share: number;
  /** How long a lease's devices may be missing from PodResources before it is released. */
  readonly graceMs: number;
  /** The whole GPU's memory, by bridge GPU id. */
  readonly memoryOf: (gpuId: string) => number | undefined;
  /** The TTL k8s leases are granted and renewed with (default one hour). */
  readonly ttlS?: number;
}

/** One lease made for the kubelet. */
export interface Allocation {
  readonly leaseId: string;
  readonly gpuId: string;
  readonly devices: Set<string>;
  /** When a pod last held one of its devices (or it was made). */
  lastHeld: number;
}

/** What one container gets: its leases, one per GPU. */
export interface ContainerGrant {
  readonly leases: readonly Lease[];
}

/** Why a release happened, as the lease's reason. */
export const POD_GONE = "k8s-pod-gone";

export class Allocations {
  readonly #o: AllocationsOptions;
  readonly #byLease = new Map<string, Allocation>();
  readonly #byDevice = new Map<string, Allocation>();

  constructor(o: AllocationsOptions) {
    this.#o = o;
  }

  get ttlS(): number {
    return this.#o.ttlS ?? DEFAULTS.k8sLeaseTtlS;
  }

  /** Every allocation (for tests and the API's view). */
  list(): Allocation[] {
    return [...this.#byLease.values()];
  }

  /** The allocation holding `deviceId`, if any. */
  holder(deviceId: string): Allocation | undefined {
    return this.#byDevice.get(deviceId);
  }

  /**
   * Picks up the live k8s leases (after a restart, from the journal): each holds the device its
   * worker id names until PodResources says which others go with it, or that none is held.
   */
  adoptLive(): number {
    let n = 0;
    for (const lease of this.#o.leases.live()) {
      const device = deviceIdOfWorker(lease.worker_id);
      if (device === null || this.#byLease.has(lease.id) || this.#byDevice.has(device)) continue;
      this.#add(lease, [device]);
      n++;
    }
    return n;
  }

  /** Forgets a lease that ended elsewhere (API release, TTL): its devices are free again. */
  forget(leaseId: string): void {
    const a = this.#byLease.get(leaseId);
    if (a === undefined) return;
    this.#byLease.delete(leaseId);
    for (const d of a.devices) this.#byDevice.delete(d); // a device is in one allocation at a time
  }

  /**
   * One Allocate: every container's devices checked against `devices` (known, healthy, free,
   * not asked twice) before any lease is granted; a grant that fails takes back the ones made
   * before it. Throws AllocateError naming the device.
   */
  allocate(requests: readonly (readonly string[])[], devices: readonly PluginDevice[]): ContainerGrant[] {
    const byId = new Map(devices.map((d) => [d.id, d]));
    const seen = new Set<string>();
    for (const ids of requests) {
      if (ids.length === 0) throw new AllocateError("invalid", "Cannot allocate: a container request names no device");
      for (const id of ids) {
        const d = byId.get(id);
        if (d === undefined) throw new AllocateError("unknown", `Cannot allocate ${JSON.stringify(id)}: no such device on this node`);
        if (d.health !== HEALTHY) throw new AllocateError("unhealthy", `Cannot allocate ${JSON.stringify(id)}: the device is Unhealthy`);
        const holder = this.#byDevice.get(id);
        if (holder !== undefined) {
          throw new AllocateError("taken", `Cannot allocate ${JSON.stringify(id)}: it is held by lease ${holder.leaseId}`);
        }
        if (seen.has(id)) throw new AllocateError("invalid", `Cannot allocate ${JSON.stringify(id)}: asked for twice`);
        seen.add(id);
      }
    }
    const made: Lease[] = [];
    try {
      return requests.map((ids) => {
        const leases: Lease[] = [];
        for (const [gpuId, group] of groupByGpu(ids, byId)) {
          const lease = this.#grant(gpuId, group);
          made.push(lease);
          leases.push(lease);
        }
        return { leases };
      });
    } catch (error) {
      for (const lease of made) {
        this.forget(lease.id);
        this.#o.leases.release(lease.id, "k8s-allocate-failed");
      }
      throw error;
    }
  }

  /**
   * PodResources says which of our devices pods hold now (one list per container). Held
   * devices keep their lease alive (renewed past half its TTL); a lease none of whose devices
   * is held for `graceMs` is released. Held devices no lease covers (the bridge restarted
   * without its journal, or with a lease that named only the first) are taken into the
   * lease of the same container and GPU, or get a new one. Returns what it did.
   */
  reconcile(held: readonly (readonly string[])[], devices: readonly PluginDevice[]): { released: string[]; rebuilt: string[] } {
    const now = this.#o.clock.now();
    const byId = new Map(devices.map((d) => [d.id, d]));
    const rebuilt: string[] = [];
    for (const ids of held) {
      for (const [gpuId, group] of groupByGpu(ids, byId)) {
        // A device is one GPU's, so whoever holds one of the group's devices is on `gpuId`.
        const owner = group.map((id) => this.#byDevice.get(id)).find((a) => a !== undefined);
        if (owner !== undefined) {
          for (const id of group) if (!this.#byDevice.has(id)) this.#take(owner, id); // never one another allocation holds
        } else {
          try {
            rebuilt.push(this.#grant(gpuId, group).id);
          } catch {
            // Refused (the memory is leased to someone else): tried again at the next poll.
          }
        }
      }
    }
    const heldNow = new Set(held.flat());
    const released: string[] = [];
    const liveById = new Map(this.#o.leases.live().map((l) => [l.id, l]));
    for (const a of [...this.#byLease.values()]) {
      const lease = liveById.get(a.leaseId);
      if (lease === undefined) {
        this.forget(a.leaseId);
        continue;
      }
      if ([...a.devices].some((d) => heldNow.has(d))) {
        a.lastHeld = now;
        if (lease.expires_at - now < (this.ttlS * 1000) / 2) this.#o.leases.renew(a.leaseId, this.ttlS);
      } else if (now - a.lastHeld >= this.#o.graceMs) {
        this.forget(a.leaseId);
        this.#o.leases.release(a.leaseId, POD_GONE);
        released.push(a.leaseId);
      }
    }
    return { released, rebuilt };
  }

  /**
   * Releases at once the leases holding any of `wanted` whose devices no pod holds in `held`
   * (PodResources read just now): the kubelet hands a freed device out again without waiting
   * for our grace period. Returns the released lease ids.
   */
  releaseUnheld(held: readonly (readonly string[])[], wanted: readonly string[]): string[] {
    const heldNow = new Set(held.flat());
    const released: string[] = [];
    for (const id of wanted) {
      const a = this.#byDevice.get(id);
      if (a === undefined || [...a.devices].some((d) => heldNow.has(d))) continue;
      this.forget(a.leaseId);
      this.#o.leases.release(a.leaseId, POD_GONE);
      released.push(a.leaseId);
    }
    return released;
  }

  #grant(gpuId: string, ids: readonly string[]): Lease {
    const whole = this.#o.memoryOf(gpuId);
    if (whole === undefined) throw new AllocateError("unknown", `Cannot allocate ${ids[0]}: GPU ${gpuId} is not in the inventory`);
    // A GPU's devices are its N shares (one, the whole GPU, without --k8s-share).
    const mem = Math.floor(whole / this.#o.share) * ids.length;
    let lease: Lease;
    try {
      lease = this.#o.leases.grant({
        gpu_id: gpuId,
        worker_id: workerIdOf(ids[0]!),
        mem_mb: mem,
        streams: 1,
        ttl_s: this.ttlS,
        priority: 0,
      });
    } catch (error) {
      throw new AllocateError(
        "refused",
        `Cannot allocate ${ids.join(", ")}: the lease on ${gpuId} was refused: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    this.#add(lease, ids);
    return lease;
  }

  #add(lease: Lease, ids: readonly string[]): void {
    const a: Allocation = { leaseId: lease.id, gpuId: lease.gpu_id, devices: new Set(), lastHeld: this.#o.clock.now() };
    this.#byLease.set(lease.id, a);
    for (const id of ids) this.#take(a, id);
  }

  #take(a: Allocation, id: string): void {
    a.devices.add(id);
    this.#byDevice.set(id, a);
  }
}

/** `ids` grouped by their GPU, in the order each GPU first appears; unknown ids are left out. */
function groupByGpu(ids: readonly string[], byId: ReadonlyMap<string, PluginDevice>): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const id of ids) {
    const d = byId.get(id);
    if (d === undefined) continue;
    const g = groups.get(d.gpuId);
    if (g === undefined) groups.set(d.gpuId, [id]);
    else g.push(id);
  }
  return groups;
}
