/**
 * The background sweep that complements sampled gating: every `intervalMs` one sealed shard (in
 * turn) is verified in full, so a change in a leaf the samples keep missing is still found
 * within (shards × interval). Runs on an injected Clock; one verification at a time.
 */
import type { Clock } from "../util/clock.ts";
import type { ShardStore } from "./shards.ts";

export class ShardSweep {
  readonly #store: ShardStore;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  #timer: unknown = null;
  #next = 0;
  #stopped = false;
  /** Full verifications the sweep ran, and how many failed. */
  readonly stats = { runs: 0, failures: 0 };

  constructor(store: ShardStore, clock: Clock, intervalMs: number) {
    if (!Number.isFinite(intervalMs) || intervalMs < 1) {
      throw new RangeError(`The sweep interval must be a positive number of ms, got ${intervalMs}`);
    }
    this.#store = store;
    this.#clock = clock;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.#stopped = false;
    this.#arm();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) this.#clock.clearTimer(this.#timer);
    this.#timer = null;
  }

  /** Verifies the next sealed shard in full; resolves with its id, or null when none is sealed. */
  async tick(): Promise<string | null> {
    const sealed = this.#store.list().filter((s) => s.state === "SEALED");
    if (sealed.length === 0) return null;
    const shard = sealed[this.#next++ % sealed.length]!;
    try {
      const r = await this.#store.verify(shard.shard_id, "full");
      this.stats.runs++;
      if (!r.ok) this.stats.failures++;
    } catch {
      // released between the listing and the verification: nothing to check
    }
    return shard.shard_id;
  }

  #arm(): void {
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimer(this.#intervalMs, () => {
      this.#timer = null;
      void this.tick().finally(() => this.#arm());
    });
  }
}
