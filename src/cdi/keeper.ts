/**
 * The daemon's CDI spec (`serve --cdi-dir DIR`): one file in DIR kept current. Its devices are
 * the host's GPUs (regenerated on a timer and rewritten only when the GPU set or the driver
 * changed, so library paths never go stale) plus one device per live lease, named after the
 * lease, exposing exactly its GPU with the lease id in the container's env. A lease that ends
 * takes its device with it. Every write is atomic; a host that can no longer be described has
 * its file removed rather than left stale.
 */
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { DEFAULTS } from "../config/defaults.ts";
import type { Lease, LeaseEvent } from "../lease/types.ts";
import type { Clock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";
import { encodeSpec } from "./codec.ts";
import { replaceFileDurably } from "../util/files.ts";
import { DiskWriteError } from "../util/files.ts";
import { finish, type Generated, unionEdits } from "./generate.ts";
import { mergeEdits } from "./lease-edits.ts";
import { deviceNameProblem, qualify } from "./names.ts";
import { type LeaseShareMount, withShareMount } from "./share-mount.ts";
import type { CdiContainerEdits, CdiDevice, CdiSpec } from "./schema.ts";
import { formatProblem, validateSpec } from "./validate.ts";

export const BRIDGE_SPEC_FILE = "gpu-bridge-host.json";
/** The env a lease's container gets. */
export const LEASE_ENV = "GPU_BRIDGE_LEASE_ID";

export interface CdiKeeperOptions {
  readonly dir: string;
  readonly kind?: string;
  /** Describes the host now (the base devices and global edits). */
  readonly generate: () => Promise<Generated>;
  readonly leases: { live(): readonly Lease[]; on(listener: (e: LeaseEvent) => void): () => void };
  readonly log: Logger;
  readonly clock: Clock;
  /** How often the host is described again (default DEFAULTS.cdiRefreshMs). */
  readonly refreshMs?: number;
  /** A lease's share socket and token to mount in its container (share-mount.ts); null: none. */
  readonly leaseShare?: (leaseId: string) => LeaseShareMount | null;
  /** More edits for a lease's device (merged after its own), or why it gets no device (`serve --mps`). */
  readonly leaseEdits?: (lease: Lease) => CdiContainerEdits | string;
}

/** The bridge's GPU id `GPU-<n>` as the spec's device index, or null. */
const indexOf = (gpuId: string) => /^GPU-(\d+)$/.exec(gpuId)?.[1] ?? null;

export class CdiKeeper {
  readonly path: string;
  readonly kind: string;
  readonly #o: CdiKeeperOptions;
  #base: Generated["spec"] | null = null;
  #spec: CdiSpec | null = null;
  #text: string | null = null;
  #timer: unknown = null;
  #unsubscribe: (() => void) | null = null;
  #stopped = false;
  #lastProblem: string | null = null;
  /** Inside batch(): lease changes wait, and the spec is written once at its end. */
  #batching = 0;
  #deferred: string | null = null;

  constructor(o: CdiKeeperOptions) {
    this.#o = o;
    this.kind = o.kind ?? DEFAULTS.cdiBridgeKind;
    this.path = join(o.dir, BRIDGE_SPEC_FILE);
  }

  /** Describes the host, writes the file (replacing what a previous run left), follows leases. */
  async start(): Promise<void> {
    try {
      mkdirSync(this.#o.dir, { recursive: true }); // /var/run/cdi is not there until someone makes it
    } catch (error) {
      this.#problem(`Cannot create the CDI folder ${this.#o.dir}: ${(error as Error).message}`);
    }
    this.#unsubscribe = this.#o.leases.on((e) => {
      // Amended terms change what a lease's device carries (its cap, under --mps).
      if (e.type !== "granted" && e.type !== "released" && e.type !== "amended") return;
      if (this.#batching > 0) this.#deferred = `lease ${e.lease.id} ${e.type}`;
      else this.#write(`lease ${e.lease.id} ${e.type}`);
    });
    await this.refresh();
    this.#schedule();
  }

  /**
   * Stops following the host and the leases, and removes the spec this keeper wrote: a lease's
   * device must not outlive the bridge that enforces the lease (a container started from it
   * later would get the GPU with nobody arbitrating it). A file that no longer holds what this
   * keeper wrote (another writer's) is left alone. After a crash the next start rewrites the
   * file from the leases it restores, so a stale lease device lasts only until then.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unsubscribe?.();
    if (this.#timer !== null) this.#o.clock.clearTimer(this.#timer);
    if (this.#text === null) return;
    let onDisk: string | null;
    try {
      onDisk = readFileSync(this.path, "utf8");
    } catch {
      onDisk = null; // already gone (or unreadable: then not provably ours)
    }
    if (onDisk !== this.#text) return;
    try {
      rmSync(this.path, { force: true });
      this.#o.log.info(`CDI spec ${this.path} removed: the bridge stopped`);
    } catch (error) {
      this.#o.log.warn(`Cannot remove the CDI spec ${this.path} as the bridge stops: ${(error as Error).message}`);
    }
    this.#spec = null;
    this.#text = null;
  }

  /**
   * Runs `fn` (which grants or releases several leases at once: one Allocate of many devices)
   * and writes the spec once at its end, rather than once per lease; the spec is on disk when
   * this returns, whether `fn` returned or threw.
   */
  batch<T>(fn: () => T): T {
    this.#batching++;
    try {
      return fn();
    } finally {
      if (--this.#batching === 0 && this.#deferred !== null) {
        const why = this.#deferred;
        this.#deferred = null;
        this.#write(why);
      }
    }
  }

  /** The spec as written now; null when the host could not be described. */
  current(): CdiSpec | null {
    return this.#spec;
  }

  /** The qualified device of a live lease, ready for `podman run --device`; null if it has none. */
  deviceFor(leaseId: string): string | null {
    return this.#spec?.devices.some((d) => d.name === leaseId) ? qualify(this.kind, leaseId) : null;
  }

  /** Describes the host again; rewrites the file only when something changed. */
  async refresh(): Promise<void> {
    let generated: Generated;
    try {
      generated = await this.#o.generate();
    } catch (error) {
      this.#problem(`Cannot describe the GPUs for CDI: ${(error as Error).message}; ${this.path} removed until they can be`);
      this.#base = null;
      this.#spec = null;
      this.#text = null;
      rmSync(this.path, { force: true });
      return;
    }
    this.#lastProblem = null;
    const before = this.#base === null ? null : JSON.stringify(this.#base);
    this.#base = generated.spec;
    this.#write(before === null ? "start" : before === JSON.stringify(generated.spec) ? "unchanged" : "the GPU set or the driver changed");
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = this.#o.clock.setTimer(this.#o.refreshMs ?? DEFAULTS.cdiRefreshMs, () => {
      void this.refresh().finally(() => this.#schedule());
    });
  }

  #problem(message: string): void {
    if (message !== this.#lastProblem) this.#o.log.warn(message);
    this.#lastProblem = message;
  }

  /** The edits of the bridge GPU `gpuId`: its whole-GPU device, or all its MIG devices. */
  #gpuEdits(base: CdiSpec, gpuId: string): CdiContainerEdits | null {
    const index = indexOf(gpuId);
    if (index === null) return null;
    const whole = base.devices.find((d) => d.name === index);
    if (whole !== undefined) return whole.containerEdits;
    const migs = base.devices.filter((d) => d.name.startsWith(`${index}:`));
    return migs.length === 0 ? null : unionEdits(migs.map((d) => d.containerEdits));
  }

  #write(why: string): void {
    const base = this.#base;
    if (base === null || this.#stopped) return;
    const leaseDevices: CdiDevice[] = [];
    for (const lease of this.#o.leases.live()) {
      // A lease of a MIG device gets that device's nodes, the spec's `MIG-<uuid>` device.
      const edits = lease.mig_uuid === undefined
        ? this.#gpuEdits(base, lease.gpu_id)
        : base.devices.find((d) => d.name === lease.mig_uuid)?.containerEdits ?? null;
      const bad = deviceNameProblem(lease.id);
      if (edits === null || bad !== null) {
        this.#o.log.warn(`Lease ${lease.id} has no CDI device: ${bad ?? `no CDI device for ${lease.mig_uuid ?? lease.gpu_id}`}`);
        continue;
      }
      const extra = this.#o.leaseEdits?.(lease) ?? {};
      if (typeof extra === "string") {
        this.#o.log.warn(`Lease ${lease.id} has no CDI device: ${extra}`);
        continue;
      }
      const share = this.#o.leaseShare?.(lease.id) ?? null;
      leaseDevices.push({
        name: lease.id,
        containerEdits: mergeEdits(withShareMount({ env: [`${LEASE_ENV}=${lease.id}`], ...edits }, share), extra),
      });
    }
    const spec = finish(this.kind, [...base.devices, ...leaseDevices], base.containerEdits ?? {});
    const errors = validateSpec(spec, { file: this.path }).problems.filter((p) => p.severity === "error");
    if (errors.length > 0) {
      this.#problem(`Cannot write the CDI spec: ${errors.map(formatProblem).join("; ")}`);
      return;
    }
    const text = encodeSpec(spec, "json");
    this.#spec = spec;
    if (text === this.#text) return;
    try {
      replaceFileDurably(this.path, text, 0o644); // specs are world-readable, as nvidia-ctk writes them
    } catch (error) {
      // The old spec stays whole (a short write is never renamed into place); retried next refresh.
      this.#problem(
        error instanceof DiskWriteError ? error.message : `Cannot write the CDI spec ${this.path}: ${(error as Error).message}`,
      );
      return;
    }
    this.#text = text;
    this.#o.log.info(`CDI spec ${this.path} written (${why}): ${spec.devices.length} devices, ${leaseDevices.length} for leases`);
  }
}
