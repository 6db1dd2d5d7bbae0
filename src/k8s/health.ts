/**
 * Device health that recovers. A GPU is Unhealthy while it does not answer, or within
 * `recoverMs` of its last critical event (an XID outside the ignored set, an ECC error); it is
 * Healthy again once it answers and that time has passed, with no restart. A pure book over a
 * clock: the plugin feeds it what the probe and the NVML events say, and reads it.
 */
import type { Clock } from "../util/clock.ts";

interface GpuHealth {
  answering: boolean;
  /** When the last critical event came (-Infinity: never). */
  lastCritical: number;
  criticalWhat: string;
  healthy: boolean;
}

/** One GPU's health changing, and why. */
export interface HealthChange {
  readonly gpuId: string;
  readonly healthy: boolean;
  readonly reason: string;
}

export class HealthBook {
  readonly #clock: Clock;
  readonly #recoverMs: number;
  readonly #gpus = new Map<string, GpuHealth>();

  constructor(clock: Clock, recoverMs: number) {
    this.#clock = clock;
    this.#recoverMs = recoverMs;
  }

  #of(gpuId: string): GpuHealth {
    let h = this.#gpus.get(gpuId);
    if (h === undefined) this.#gpus.set(gpuId, h = { answering: true, lastCritical: -Infinity, criticalWhat: "", healthy: true });
    return h;
  }

  /** Whether `gpuId` is Healthy now (a GPU never reported on is). */
  healthy(gpuId: string): boolean {
    return this.#gpus.get(gpuId)?.healthy ?? true;
  }

  /** The probe's answer: which of `known` answered. */
  answered(known: readonly string[], answering: ReadonlySet<string>): void {
    for (const id of known) this.#of(id).answering = answering.has(id);
  }

  /** A critical event on `gpuId` (`what`: "XID 79", "ECC double-bit"). */
  critical(gpuId: string, what: string): void {
    const h = this.#of(gpuId);
    h.lastCritical = this.#clock.now();
    h.criticalWhat = what;
  }

  /** Applies what was reported; returns the GPUs whose health changed. */
  evaluate(): HealthChange[] {
    const now = this.#clock.now();
    const changes: HealthChange[] = [];
    for (const [gpuId, h] of this.#gpus) {
      const recent = now - h.lastCritical < this.#recoverMs;
      const healthy = h.answering && !recent;
      if (healthy === h.healthy) continue;
      h.healthy = healthy;
      const reason = healthy
        ? `answers again${h.criticalWhat !== "" ? ` and no critical event for ${this.#recoverMs} ms since ${h.criticalWhat}` : ""}`
        : !h.answering
        ? "does not answer"
        : h.criticalWhat;
      changes.push({ gpuId, healthy, reason });
    }
    return changes;
  }
}
