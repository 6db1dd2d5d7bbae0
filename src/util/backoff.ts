/**
 * Reconnect backoff as a pure `attempt -> delay` function: exponential from `baseMs`, capped
 * at `capMs`, with "equal jitter" (half fixed, half random) so a fleet of bridges that lost
 * the same console do not reconnect in lockstep, yet none retries much sooner than planned.
 */

export interface BackoffPolicy {
  readonly baseMs: number;
  readonly capMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 250, capMs: 30_000 };

/** The delay before reconnect attempt `attempt` (0 for the first retry); `random` in [0, 1). */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random = Math.random()): number {
  const exp = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(exp / 2 + (exp / 2) * random);
}
