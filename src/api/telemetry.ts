/** `/v1/telemetry`: ingest (POST) and the spool's and forwarder's state (GET). */
import { BODY_LIMIT, readBody, requireType } from "./body.ts";
import { ApiError } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { type SubApp, subApp } from "./router.ts";
import { ingest, parseTelemetryBody, TelemetryError } from "../telemetry/ingest.ts";

/** The telemetry routes, to mount at `/v1/telemetry`; none without the bridge's telemetry. */
export function telemetryRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  const t = bridge.telemetry;
  if (t === undefined) return r;
  r.on("POST", "/", async (c) => {
    const type = requireType(c.req.raw, "application/json", "application/x-ndjson", "application/cbor");
    const body = await readBody(c.req.raw, BODY_LIMIT);
    try {
      const records = ingest(parseTelemetryBody(type, body), bridge.models.catalog(), t.spool);
      t.spooled();
      return c.json({ accepted: records.length, spooled: t.spool.stats().records }, 202);
    } catch (error) {
      if (error instanceof TelemetryError) {
        throw new ApiError(error.field === "(body)" || error.field.startsWith("line ") ? 400 : 422, "invalid", error.message, error.field);
      }
      throw error;
    }
  });
  r.on("GET", "/", (c) => {
    const s = t.spool.stats();
    return c.json({
      device_id: t.deviceId,
      spooled_records: s.records,
      spooled_bytes: s.bytes,
      segments: s.segments,
      dropped: t.spool.dropped,
      forwarded: t.forwarder?.forwarded ?? 0,
      oldest_unforwarded_age_s: Math.floor((t.spool.oldestWaitingMs() ?? 0) / 1000),
      forward_stalls: t.forwarder?.stalls ?? 0,
      forwarding: t.forwarder === null
        ? "disabled (no --publish)"
        : t.forwarder.pausedFor() > 0
        ? "paused"
        : t.forwarder.stalled
        ? "stalled"
        : "active",
      queen_segment: t.spool.progress.queenSeg,
    });
  });
  return r;
}
