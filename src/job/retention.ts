/**
 * How long finished jobs and their results stay in memory for the API. A finished job's record
 * (state, detail, summary, the result's size and SHA-256) is kept for a count and an age; its
 * result bytes for a shorter age and a byte budget over all jobs. Whatever leaves first is
 * freed at once: a job dropped from the table takes its result with it, so no byte is held for
 * a result nobody can reach. Age is enforced by one timer (on the injected clock) for the
 * oldest entry, so an idle bridge frees too.
 */
import type { Clock } from "../util/clock.ts";

/** The limits (src/config/defaults.ts has the defaults; `serve --job-results-mb/-age-s` set two). */
export interface RetentionPolicy {
  /** Finished jobs kept for lookups; the oldest leave the table past it. */
  readonly finishedJobs: number;
  /** A finished job leaves the table this long after it finished. */
  readonly finishedAgeMs: number;
  /** Result bytes kept, all jobs together; the oldest results are freed past it (the newest always stays). */
  readonly resultBytes: number;
  /** A result is freed this long after it was kept. */
  readonly resultAgeMs: number;
}

/** What retention needs of a finished job. */
export interface Retained {
  readonly job: string;
  output: Uint8Array | null;
}

export class JobRetention<R extends Retained> {
  readonly #policy: RetentionPolicy;
  readonly #clock: Clock;
  /** Called when a finished job leaves the table. */
  readonly #drop: (job: string) => void;
  /** Finished jobs, oldest first (Map keeps insertion order), with when they finished. */
  readonly #finished = new Map<string, { record: R; at: number }>();
  /** Jobs holding result bytes, oldest first, with when they were kept. */
  readonly #results = new Map<R, number>();
  #bytes = 0;
  #timer: unknown = undefined;
  #timerAt = Infinity;
  #closed = false;

  constructor(policy: RetentionPolicy, clock: Clock, drop: (job: string) => void) {
    this.#policy = policy;
    this.#clock = clock;
    this.#drop = drop;
  }

  /** Result bytes held, and how many results. */
  get resultBytes(): number {
    return this.#bytes;
  }
  get resultCount(): number {
    return this.#results.size;
  }
  /** Finished jobs in the table. */
  get finishedCount(): number {
    return this.#finished.size;
  }

  /** Keeps `output` as `record`'s result (before or after it finishes). */
  keepResult(record: R, output: Uint8Array): void {
    this.#free(record);
    record.output = output;
    this.#results.set(record, this.#clock.now());
    this.#bytes += output.length;
    this.sweep();
  }

  /** Records that `record` finished; it leaves the table by count or age. */
  finished(record: R): void {
    this.#finished.delete(record.job);
    this.#finished.set(record.job, { record, at: this.#clock.now() });
    this.sweep();
  }

  /** Applies the policy now; arms the timer for the next entry to age out. */
  sweep(): void {
    const now = this.#clock.now();
    const p = this.#policy;
    for (const [job, { record, at }] of this.#finished) {
      if (this.#finished.size <= p.finishedJobs && now - at < p.finishedAgeMs) break;
      this.#finished.delete(job);
      this.#free(record);
      this.#drop(job);
    }
    for (const [record, at] of this.#results) {
      const over = this.#bytes > p.resultBytes && this.#results.size > 1;
      if (!over && now - at < p.resultAgeMs) break;
      this.#free(record);
    }
    this.#arm(now);
  }

  /** Frees every result and forgets every finished job (the bridge stops); clears the timer. */
  close(): void {
    this.#closed = true;
    this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    for (const record of [...this.#results.keys()]) this.#free(record);
  }

  #free(record: R): void {
    if (!this.#results.delete(record)) return;
    this.#bytes -= record.output?.length ?? 0;
    record.output = null;
  }

  #arm(now: number): void {
    if (this.#closed) return;
    const oldestJob = this.#finished.values().next();
    const oldestResult = this.#results.values().next();
    const next = Math.min(
      oldestJob.done ? Infinity : oldestJob.value.at + this.#policy.finishedAgeMs,
      oldestResult.done ? Infinity : oldestResult.value + this.#policy.resultAgeMs,
    );
    if (next === this.#timerAt) return;
    this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#timerAt = next;
    if (next === Infinity) return;
    this.#timer = this.#clock.setTimer(Math.max(0, next - now), () => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.sweep();
    });
  }
}
