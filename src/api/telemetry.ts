/** `/v1/telemetry`: ingest (POST) and the spool's and forwarder's state (GET). */
import { BODY_LIMIT, readBody, requireType } from "./body.ts";
import * as v from "valibot";
import { ApiError, statusesOf, STORAGE_STATUS } from "./errors.ts";
import { TelemetryRecordSchema } from "../telemetry/record.ts";
import type { BridgeFacade } from "./facade.ts";
import { type SubApp, subApp } from "./router.ts";
import { parseTelemetryBody, TelemetryError } from "../telemetry/ingest.ts";

/** The telemetry routes, to mount at `/v1/telemetry`; none without the bridge's telemetry. */
export function telemetryRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  const t = bridge.telemetry;
  if (t === undefined) return r;
  r.on("POST", "/", {
    summary: "Ingests telemetry records: spooled with one sync, then forwarded to the Queen",
    description: "A batch is validated whole: one bad record refuses the batch, naming it. JSON takes one record or an array; " +
      "NDJSON one record a line; CBOR one record or an array.",
    body: {
      required: true,
      content: {
        "application/json": v.union([TelemetryRecordSchema, v.array(TelemetryRecordSchema)]),
        "application/x-ndjson": null,
        "application/cbor": null,
      },
    },
    ok: { status: 202, description: "`{accepted, spooled}`: the records accepted and those spooled." },
    errors: [400, 422, ...statusesOf(STORAGE_STATUS)],
  }, async (c) => {
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
  r.on("GET", "/", {
    summary: "The telemetry spool's and forwarder's state",
    ok: {
      status: 200,
      description: "`{device_id, spooled_records, spooled_bytes, segments, dropped, forwarded, oldest_unforwarded_age_s, " +
        "forward_stalls, forwarding, queen_segment}`.",
    },
  }, (c) => {
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
