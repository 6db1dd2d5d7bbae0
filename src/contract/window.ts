/**
 * How many console lines the bridge may keep in flight before their acks. The console queues 8
 * lines per session and drops the oldest when full (docs/protocol.md#8-the-console), so
 * more than 8 unacknowledged lines lose data silently; one slot stays free. The default is
 * DEFAULTS.window (src/config/defaults.ts).
 */
import { LIMITS } from "./limits.ts";

/** The console's queue less one slot. */
export const MAX_WINDOW = LIMITS.consoleQueueLines - 1;

/** Throws RangeError unless `window` is an integer in 1..MAX_WINDOW. */
export function checkWindow(window: number): number {
  if (!Number.isInteger(window) || window < 1 || window > MAX_WINDOW) {
    throw new RangeError(`Cannot use a console window of ${window}: it must be an integer from 1 to ${MAX_WINDOW}`);
  }
  return window;
}
