import { describe, expect, test } from "bun:test";
import { delay, systemClock } from "../../src/util/clock.ts";
import { FakeClock } from "../helpers.ts";

describe("delay()", () => {
  test("resolves after exactly ms on the given clock", async () => {
    const clock = new FakeClock();
    let done = false;
    void delay(1000, undefined, clock).then(() => (done = true));
    await clock.run(999);
    expect(done).toBe(false);
    await clock.run(1);
    expect(done).toBe(true);
  });

  test("an abort rejects with the signal's reason at once and clears the timer", async () => {
    const clock = new FakeClock();
    const stop = new AbortController();
    const waiting = delay(60_000, stop.signal, clock);
    expect(clock.pending).toBe(1);
    stop.abort(new Error("stopping"));
    await expect(waiting).rejects.toThrow("stopping");
    expect(clock.pending).toBe(0);
  });

  test("an already aborted signal rejects without arming a timer", async () => {
    const clock = new FakeClock();
    await expect(delay(10, AbortSignal.abort(new Error("gone")), clock)).rejects.toThrow("gone");
    expect(clock.pending).toBe(0);
  });

  test("the system clock is the default and really waits", async () => {
    const t0 = systemClock.now();
    await delay(5);
    expect(systemClock.now() - t0).toBeGreaterThanOrEqual(4);
  });
});
