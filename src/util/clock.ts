/**
 * Time as a dependency. Loops, timers, backoff and TTLs take a `Clock` and wait with
 * `delay(ms, signal, clock)`, so their tests run on a fake clock, with no sleeps.
 */
import { AsyncResource } from "node:async_hooks";

/** Wall-clock time and one-shot timers. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fire` once, `delayMs` from now; returns a handle for `clearTimer`. */
  setTimer(delayMs: number, fire: () => void): unknown;
  /** Cancels a timer that has not fired (a handle that did, or undefined, is ignored). */
  clearTimer(handle: unknown): void;
}

/**
 * Timers are armed from here, outside any async context: a timer set while serving a request (a
 * lease's TTL) must not fire as that request (src/changes/record.ts would name it as the cause).
 */
const root = new AsyncResource("gpu-bridge-host.clock");

/** The real clock: `Date.now` and `setTimeout`. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (ms, fire) => root.runInAsyncScope(() => setTimeout(fire, ms)),
  clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Resolves after `ms` on `clock`; rejects with `signal.reason` as soon as `signal` aborts (at
 * once if it already has), and the timer is cleared.
 */
export function delay(ms: number, signal?: AbortSignal, clock: Clock = systemClock): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clock.clearTimer(timer);
      reject(signal!.reason);
    };
    const timer = clock.setTimer(ms, () => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
