/**
 * Telemetry as the API sees it: records in (validated, spooled durably, the forwarder woken)
 * and a snapshot of the spool's and forwarder's state out. The spool and the forwarder stay
 * behind it: a route can neither advance, drop nor re-read what was spooled.
 */
import type { ModelCatalog } from "../contract/models.ts";
import type { TelemetryForwarder } from "./forward.ts";
import { ingest } from "./ingest.ts";
import type { Spool } from "./spool.ts";

/** What GET /v1/telemetry, /v1/bridge and /metrics show. */
export interface TelemetryState {
  readonly deviceId: string;
  readonly spooledRecords: number;
  readonly spooledBytes: number;
  readonly segments: number;
  /** Records lost to the spool's cap or to damage found at start-up. */
  readonly dropped: number;
  /** Records the Queen acknowledged. */
  readonly forwarded: number;
  /** How long the oldest record not yet forwarded has waited (0: none waits). */
  readonly oldestWaitingMs: number;
  readonly stalls: number;
  readonly forwarding: "disabled (no --publish)" | "paused" | "stalled" | "active";
  /** The Queen segment being appended to, or null. */
  readonly queenSegment: string | null;
}

export interface TelemetryView {
  /**
   * Validates `raw` against `catalog` and spools every record, or none (TelemetryError names
   * the first bad field); then wakes the forwarder. The records accepted and now spooled.
   */
  accept(raw: readonly unknown[], catalog: ModelCatalog): { accepted: number; spooled: number };
  state(): TelemetryState;
}

/** The view over a bridge's spool and (when publishing) forwarder; `spooled` wakes the forwarder. */
export function telemetryView(spool: Spool, forwarder: TelemetryForwarder | null, deviceId: string, spooled: () => void): TelemetryView {
  return {
    accept(raw, catalog) {
      const records = ingest(raw, catalog, spool);
      spooled();
      return { accepted: records.length, spooled: spool.stats().records };
    },
    state() {
      const s = spool.stats();
      return {
        deviceId,
        spooledRecords: s.records,
        spooledBytes: s.bytes,
        segments: s.segments,
        dropped: spool.dropped,
        forwarded: forwarder?.forwarded ?? 0,
        oldestWaitingMs: spool.oldestWaitingMs() ?? 0,
        stalls: forwarder?.stalls ?? 0,
        forwarding: forwarder === null
          ? "disabled (no --publish)"
          : forwarder.pausedFor() > 0
          ? "paused"
          : forwarder.stalled
          ? "stalled"
          : "active",
        queenSegment: spool.progress.queenSeg,
      };
    },
  };
}
