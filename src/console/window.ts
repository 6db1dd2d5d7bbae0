/**
 * How many console lines the bridge keeps in flight before their acks. The console queues 8
 * lines per session and drops the oldest when full (docs: contract section 8), so more than 8
 * unacknowledged lines lose data silently; one slot stays free. Pure, so the command line can
 * check `--window` without loading the session.
 */
import { LIMITS } from "../namespace/limits.ts";

/** Lines in flight by default: a 100 ms round trip costs a quarter of stop-and-wait's time. */
export const DEFAULT_WINDOW = 4;
/** The console's queue less one slot. */
export const MAX_WINDOW = LIMITS.consoleQueueLines - 1;

/** Throws RangeError unless `window` is an integer in 1..MAX_WINDOW. */
export function checkWindow(window: number): number {
  if (!Number.isInteger(window) || window < 1 || window > MAX_WINDOW) {
    throw new RangeError(`Cannot use a console window of ${window}: it must be an integer from 1 to ${MAX_WINDOW}`);
  }
  return window;
}
