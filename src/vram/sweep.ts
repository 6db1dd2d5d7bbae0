/**
 * The background sweep that complements sampled gating: every `intervalMs` one sealed shard (in
 * turn) is verified in full, so a change in a leaf the samples keep missing is still found
 * within (shards × interval). Runs on an injected Clock; one verification at a time.
 */
import type { Clock } from "../util/clock.ts";
import { errorText } from "../util/error-text.ts";
import type { Logger } from "../util/log.ts";
import { Repeat } from "../util/repeat.ts";
import { type ShardStore, VramError } from "./shards.ts";

export class ShardSweep {
  readonly #store: ShardStore;
  readonly #log: Logger;
  readonly #repeat: Repeat;
  #next = 0;
  /** Full verifications the sweep ran, how many failed, and how many could not run (logged). */
  readonly stats = { runs: 0, failures: 0, errors: 0 };

  /** `log` is told of a verification that failed to run (a driver fault, a bug), with its cause. */
  constructor(store: ShardStore, clock: Clock, intervalMs: number, log: Logger) {
    this.#repeat = new Repeat(clock, intervalMs, "sweep", () => this.tick());
    this.#store = store;
    this.#log = log;
  }

  start(): void {
    this.#repeat.start();
  }

  stop(): void {
    this.#repeat.stop();
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
    } catch (error) {
      // Released between the listing and the verification: nothing to check. Anything else is
      // a sweep that did not happen, which must not pass unnoticed.
      if (error instanceof VramError && error.code === "not_sealed") return shard.shard_id;
      this.stats.errors++;
      this.#log.error(`The VRAM sweep could not verify shard ${shard.shard_id}: ${errorText(error)}`);
    }
    return shard.shard_id;
  }
}
