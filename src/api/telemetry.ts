/** `/v1/telemetry`: ingest (POST) and the spool's and forwarder's state (GET). */
import { BODY_LIMIT, readBody, requireType } from "./body.ts";
import { ApiError } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { type SubApp, subApp } from "./router.ts";
import { parseTelemetryBody, TelemetryError } from "../telemetry/ingest.ts";

/** The telemetry routes, to mount at `/v1/telemetry`; none without the bridge's telemetry. */
export function telemetryRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  const t = bridge.telemetry;
  if (t === undefined) return r;
  r.on("POST", "/", async (c) => {
    const type = requireType(c.req.raw, "application/json", "application/x-ndjson", "application/cbor");
    const body = await readBody(c.req.raw, BODY_LIMIT);
    try {
      return c.json(t.accept(parseTelemetryBody(type, body), bridge.models.catalog()), 202);
    } catch (error) {
      if (error instanceof TelemetryError) {
        throw new ApiError(error.field === "(body)" || error.field.startsWith("line ") ? 400 : 422, "invalid", error.message, error.field);
      }
      throw error;
    }
  });
  r.on("GET", "/", (c) => {
    const s = t.state();
    return c.json({
      device_id: s.deviceId,
      spooled_records: s.spooledRecords,
      spooled_bytes: s.spooledBytes,
      segments: s.segments,
      dropped: s.dropped,
      forwarded: s.forwarded,
      oldest_unforwarded_age_s: Math.floor(s.oldestWaitingMs / 1000),
      forward_stalls: s.stalls,
      forwarding: s.forwarding,
      queen_segment: s.queenSegment,
    });
  });
  return r;
}
