/**
 * Live stats shared for a short while: a burst of scrapes or API calls polls the hardware once
 * (the DCGM exporter collects on an interval for the same reason). Concurrent callers share
 * the one poll in flight.
 */
import type { GpuStats } from "./stats.ts";
import { type Clock, systemClock } from "../util/clock.ts";

/** `poll`, answered from its last result for `maxAgeMs` of `clock` time. */
export function cachedStats(
  poll: () => Promise<GpuStats[]>,
  maxAgeMs = 500,
  clock: Pick<Clock, "now"> = systemClock,
): () => Promise<GpuStats[]> {
  const now = () => clock.now();
  let value: { at: number; stats: GpuStats[] } | null = null;
  let inFlight: Promise<GpuStats[]> | null = null;
  return () => {
    if (value !== null && now() - value.at < maxAgeMs) return Promise.resolve(value.stats);
    inFlight ??= poll()
      .then((stats) => {
        value = { at: now(), stats };
        return stats;
      })
      .finally(() => {
        inFlight = null;
      });
    return inFlight;
  };
}
