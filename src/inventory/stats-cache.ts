/**
 * Live stats, sampled on a period of the bridge's clock and read from the last sample: a read
 * (an API GET, a `/metrics` scrape) never touches the hardware, however often it comes, and a
 * slow or failing poll never holds one up. The DCGM exporter collects on an interval for the
 * same reason.
 */
import type { GpuStats } from "./stats.ts";
import type { Clock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";

export interface StatsSamplerOptions {
  /** Reads the hardware (the inventory backend's `stats()`). */
  readonly poll: () => Promise<GpuStats[]>;
  readonly clock: Clock;
  /** Time between the end of one poll and the start of the next. */
  readonly periodMs: number;
  /** Told when a poll fails (once until one succeeds again); the last good sample stays. */
  readonly log?: Logger;
}

export class StatsSampler {
  readonly #o: StatsSamplerOptions;
  #latest: readonly GpuStats[] = [];
  #at: number | null = null;
  #inFlight: Promise<void> | null = null;
  #timer: unknown = null;
  #stopped = false;
  #failing = false;
  /** Polls made, for tests and the benchmark. */
  polls = 0;

  constructor(options: StatsSamplerOptions) {
    this.#o = options;
  }

  /** The last sample (empty before the first poll ends); never polls. */
  latest(): readonly GpuStats[] {
    return this.#latest;
  }

  /** When the last sample was taken (clock time), or null before the first. */
  get sampledAt(): number | null {
    return this.#at;
  }

  /** Polls now (a poll already in flight is shared) and keeps the result; never rejects. */
  sample(): Promise<void> {
    this.#inFlight ??= this.#poll().finally(() => {
      this.#inFlight = null;
    });
    return this.#inFlight;
  }

  /** Samples now, then every `periodMs` until stop(); resolves when the first sample is in. */
  async start(): Promise<void> {
    await this.sample();
    this.#arm();
  }

  stop(): void {
    this.#stopped = true;
    this.#o.clock.clearTimer(this.#timer);
    this.#timer = null;
  }

  async #poll(): Promise<void> {
    this.polls++;
    try {
      const stats = await this.#o.poll();
      this.#latest = stats;
      this.#at = this.#o.clock.now();
      this.#failing = false;
    } catch (error) {
      if (!this.#failing) this.#o.log?.warn(`Cannot read GPU stats (serving the last sample): ${(error as Error).message}`);
      this.#failing = true;
    }
  }

  #arm(): void {
    if (this.#stopped) return;
    this.#timer = this.#o.clock.setTimer(this.#o.periodMs, () => void this.sample().then(() => this.#arm()));
  }
}
