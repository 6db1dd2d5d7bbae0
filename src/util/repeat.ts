/**
 * A task run every `intervalMs` on a Clock, one run at a time: the next wait starts when a run
 * ends (when the promise it returns settles), so slow runs never overlap or pile up. Once stopped
 * it arms nothing more, even when stopped from inside a run.
 */
import type { Clock } from "./clock.ts";

export class Repeat {
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #run: () => unknown;
  #timer: unknown = null;
  #stopped = true;

  /** `what` names the task in the error for a bad interval ("The <what> interval must be …"). */
  constructor(clock: Clock, intervalMs: number, what: string, run: () => unknown) {
    if (!Number.isFinite(intervalMs) || intervalMs < 1) {
      throw new RangeError(`The ${what} interval must be a positive number of ms, got ${intervalMs}`);
    }
    this.#clock = clock;
    this.#intervalMs = intervalMs;
    this.#run = run;
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

  #arm(): void {
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimer(this.#intervalMs, () => {
      this.#timer = null;
      const running = this.#run();
      if (running instanceof Promise) void running.finally(() => this.#arm());
      else this.#arm();
    });
  }
}
