/** Shared set-up of the VM tests. */
import { type BridgeOptions, parseCommand } from "../../src/cli/options.ts";
import type { FakeClock } from "../helpers.ts";

/** `serve --mock --publish` against the mock console on `port` (token "tok"), plus `extra` flags. */
export function publishingServe(port: number, ...extra: string[]): BridgeOptions {
  const c = parseCommand(["serve", "--mock", "--publish", "--tcp-port", String(port), "--auth-token", "tok", ...extra], {});
  if (c.kind !== "serve") throw new Error(`Expected serve, parsed ${c.kind}`);
  return c.options;
}

/**
 * Like until(), for a bridge on a fake clock: the clock moves 10 ms per poll, so the publisher's
 * debounce and the idle read-back come round while the link runs in real time.
 */
export async function ticking(clock: FakeClock, predicate: () => boolean, ms = 3000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await clock.run(10);
    await Bun.sleep(2);
  }
}

/** Lets `ms` of real time pass with the fake clock ticking along (several read-back periods). */
export async function idle(clock: FakeClock, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await clock.run(10);
    await Bun.sleep(2);
  }
}
