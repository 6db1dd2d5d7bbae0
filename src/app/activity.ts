/**
 * The periodic INFO summary of what the daemon did: under load a publish, an append or a lease's
 * end happens many times a second, so each of those is logged at DEBUG and this one line, once a
 * period on the Clock, says how many there were (nothing is logged for a period without any).
 */
import type { Logger } from "../util/log.ts";
import type { Clock } from "../util/clock.ts";

/** Running totals since start; the summary logs the growth of each over the period. */
export interface Activity {
  readonly publishes: number;
  readonly publishedBytes: number;
  readonly appends: number;
  readonly readbacks: number;
  readonly compactions: number;
  readonly vmLines: number;
  readonly leasesEnded: number;
}

export interface ActivitySummaryOptions {
  readonly clock: Clock;
  readonly log: Logger;
  readonly periodMs: number;
  /** The totals now. */
  readonly read: () => Activity;
}

/** Logs a summary line every period. */
export class ActivitySummary {
  readonly #o: ActivitySummaryOptions;
  #last: Activity;
  #timer: unknown;
  #stopped = false;

  constructor(options: ActivitySummaryOptions) {
    this.#o = options;
    this.#last = options.read();
    this.#arm();
  }

  /** Stops the timer (the daemon's stop); nothing is logged after. */
  stop(): void {
    this.#stopped = true;
    this.#o.clock.clearTimer(this.#timer);
  }

  /** The summary of the growth since the last one, or null when nothing happened. */
  static describe(d: Activity, periodMs: number): string | null {
    if (Object.values(d).every((n) => n === 0)) return null;
    const s = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
    return `last ${Math.round(periodMs / 1000)} s: ${s(d.publishes, "publish", "publishes")} (${d.publishedBytes} bytes), ` +
      `${s(d.appends, "append")}, ${s(d.readbacks, "read-back")}, ${s(d.compactions, "compaction")}, ` +
      `${s(d.vmLines, "VM line")} read, ${s(d.leasesEnded, "lease")} ended`;
  }

  #arm(): void {
    this.#timer = this.#o.clock.setTimer(this.#o.periodMs, () => {
      if (this.#stopped) return;
      const now = this.#o.read();
      const was = this.#last;
      this.#last = now;
      const d = Object.fromEntries(
        Object.entries(now).map(([k, v]) => [k, v - was[k as keyof Activity]]),
      ) as unknown as Activity;
      const line = ActivitySummary.describe(d, this.#o.periodMs);
      if (line !== null) this.#o.log.info(line);
      this.#arm();
    });
  }
}
