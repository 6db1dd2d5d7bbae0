/**
 * The node's GPUs as the plugin advertises them: every GPU seen since the start (a GPU that
 * drops out of the inventory stays listed, Unhealthy, so the kubelet stops placing pods on it
 * rather than forgetting it), with its UUID, NUMA node and health. A probe on the clock asks
 * the backend which GPUs answer, so a lost GPU turns Unhealthy within one period.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { GpuInfo } from "../contract/info.ts";
import type { GpuStats } from "../inventory/stats.ts";
import { normalizePciBusId } from "../inventory/pci.ts";
import { sampleJetsonGpu } from "../inventory/sysfs.ts";
import type { Clock } from "../util/clock.ts";
import { errorText } from "../util/error-text.ts";
import type { Logger } from "../util/log.ts";
import type { PluginGpu } from "./devices.ts";
import { type HealthBook, type HealthChange } from "./health.ts";

export interface NodeGpusOptions {
  /** The GPUs that answer now (the backend's list; it leaves out a GPU that does not answer). */
  readonly probe: () => Promise<readonly GpuInfo[]>;
  /** The latest stats sample (UUIDs and PCI bus ids). */
  readonly stats: () => readonly GpuStats[];
  readonly health: HealthBook;
  readonly clock: Clock;
  readonly log: Logger;
  /** Where /sys is read (NUMA nodes). */
  readonly sysRoot: string;
  /** Probe period (default 1000 ms: a lost GPU is Unhealthy within two seconds). */
  readonly probeMs?: number;
  /** Told of each health change, after it is applied. */
  readonly onHealth?: (change: HealthChange) => void;
  /** Told after each probe. */
  readonly onProbed?: () => void;
}

/** The NUMA node of a PCI device from sysfs; null where unknown (no file, or -1). */
export function numaNode(sysRoot: string, pciBusId: string | null): number | null {
  const bus = pciBusId === null ? null : normalizePciBusId(pciBusId);
  if (bus === null) return null;
  try {
    const n = Number(readFileSync(join(sysRoot, "sys/bus/pci/devices", bus, "numa_node"), "utf8").trim());
    return Number.isInteger(n) && n >= 0 ? n : null;
  } catch {
    return null;
  }
}

/**
 * A Jetson's GPU answers while its sysfs says so: the GPU's devfreq node is there and reports a
 * clock and a load (nvgpu removes or stops updating them when the GPU is gone or hung). There is
 * no NVML on a Jetson, so no XID events: this is its health.
 */
export function jetsonGpuAnswers(sysRoot: string): boolean {
  const s = sampleJetsonGpu(sysRoot);
  return s.curHz !== null && s.loadPct !== null;
}

/** The probe of a Jetson: the backend's list, empty while the GPU's sysfs does not answer. */
export function jetsonProbe(list: () => Promise<readonly GpuInfo[]>, sysRoot: string): () => Promise<readonly GpuInfo[]> {
  return async () => (jetsonGpuAnswers(sysRoot) ? await list() : []);
}

export class NodeGpus {
  readonly #o: NodeGpusOptions;
  /** Every GPU seen, by bridge id, in the order first seen. */
  readonly #known = new Map<string, { info: GpuInfo; uuid: string; numa: number | null }>();
  #timer: unknown = null;
  #stopped = false;
  #failing = false;

  constructor(o: NodeGpusOptions) {
    this.#o = o;
  }

  /** Probes once now, then every period. */
  async start(): Promise<void> {
    await this.probe();
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    this.#o.clock.clearTimer(this.#timer);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = this.#o.clock.setTimer(this.#o.probeMs ?? 1000, () => void this.probe().finally(() => this.#schedule()));
  }

  /** Asks the backend which GPUs answer and applies the health that follows. */
  async probe(): Promise<void> {
    let answering: readonly GpuInfo[];
    try {
      answering = await this.#o.probe();
      if (this.#failing) this.#o.log.info("the GPU backend answers again");
      this.#failing = false;
    } catch (error) {
      if (!this.#failing) this.#o.log.warn(`Cannot probe the GPUs: ${errorText(error)}; all are Unhealthy until they answer`);
      this.#failing = true;
      answering = [];
    }
    const stats = new Map(this.#o.stats().map((s) => [s.id, s]));
    for (const info of answering) {
      const s = stats.get(info.id);
      const prev = this.#known.get(info.id);
      this.#known.set(info.id, {
        info,
        uuid: s?.uuid ?? prev?.uuid ?? info.id,
        numa: prev?.numa ?? numaNode(this.#o.sysRoot, s?.pci_bus_id ?? null),
      });
    }
    this.#o.health.answered([...this.#known.keys()], new Set(answering.map((g) => g.id)));
    this.applyHealth();
    this.#o.onProbed?.();
  }

  /** Every GPU seen, as the inventory last described it. */
  infos(): GpuInfo[] {
    return [...this.#known.values()].map((g) => g.info);
  }

  /**
   * A critical event (an NVML XID or ECC error) on the GPU with `uuid`; null: NVML did not
   * say which GPU, so every GPU is suspect (as NVIDIA's plugin does).
   */
  critical(uuid: string | null, what: string): void {
    const id = uuid === null ? undefined : this.idOfUuid(uuid);
    for (const gpuId of id !== undefined ? [id] : [...this.#known.keys()]) this.#o.health.critical(gpuId, what);
    this.applyHealth();
  }

  /** Applies what the probe and the events reported: logs each change and tells onHealth. */
  applyHealth(): void {
    for (const change of this.#o.health.evaluate()) {
      const g = this.#known.get(change.gpuId);
      const what = `${change.gpuId}${g !== undefined ? ` (${g.uuid})` : ""}`;
      if (change.healthy) this.#o.log.info(`GPU ${what} is Healthy again: ${change.reason}`);
      else this.#o.log.warn(`GPU ${what} is Unhealthy: ${change.reason}`);
      this.#o.onHealth?.(change);
    }
  }

  /** The whole memory of a GPU seen, by bridge id. */
  memoryOf(gpuId: string): number | undefined {
    return this.#known.get(gpuId)?.info.memory_mb;
  }

  /** The bridge id of the GPU with this UUID (for NVML events), if seen. */
  idOfUuid(uuid: string): string | undefined {
    for (const [id, g] of this.#known) if (g.uuid === uuid) return id;
    return undefined;
  }

  /** The GPUs as the plugin advertises them. */
  list(): PluginGpu[] {
    return [...this.#known.entries()].map(([gpuId, g]) => ({
      gpuId,
      uuid: g.uuid,
      memoryMb: g.info.memory_mb,
      numa: g.numa,
      healthy: this.#o.health.healthy(gpuId),
    }));
  }
}
