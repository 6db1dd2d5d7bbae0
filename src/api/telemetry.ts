/** The telemetry routes: `POST /v1/telemetry` (ingest) and `GET /v1/telemetry` (spool state). */
import type { ApiExtension } from "./app.ts";
import { readBody, requireType } from "./body.ts";
import { ApiError } from "./errors.ts";
import type { ModelCatalog } from "../contract/models.ts";
import type { TelemetryForwarder } from "../telemetry/forward.ts";
import { ingest, parseTelemetryBody, TelemetryError } from "../telemetry/ingest.ts";
import type { Spool } from "../telemetry/spool.ts";

export interface TelemetryDeps {
  readonly spool: Spool;
  readonly forwarder: TelemetryForwarder | null;
  readonly catalog: () => ModelCatalog;
  readonly deviceId: string;
  /** Called after records were spooled (wakes the forwarder). */
  readonly spooled: () => void;
}

export function telemetryRoutes(deps: TelemetryDeps): ApiExtension {
  return (app, guard) => {
    app.post("/v1/telemetry", async (c) => {
      guard.requireAuth(c.req.raw);
      const type = requireType(c.req.raw, "application/json", "application/x-ndjson", "application/cbor");
      const body = await readBody(c.req.raw, 1024 * 1024);
      try {
        const records = ingest(parseTelemetryBody(type, body), deps.catalog(), deps.spool);
        deps.spooled();
        return c.json({ accepted: records.length, spooled: deps.spool.stats().records }, 202);
      } catch (error) {
        if (error instanceof TelemetryError) {
          throw new ApiError(error.field === "(body)" || error.field.startsWith("line ") ? 400 : 422, "invalid", error.message, error.field);
        }
        throw error;
      }
    });
    app.get("/v1/telemetry", (c) => {
      const s = deps.spool.stats();
      return c.json({
        device_id: deps.deviceId,
        spooled_records: s.records,
        spooled_bytes: s.bytes,
        segments: s.segments,
        dropped: deps.spool.dropped,
        forwarded: deps.forwarder?.forwarded ?? 0,
        forwarding: deps.forwarder === null ? "disabled (no --publish)" : deps.forwarder.pausedFor() > 0 ? "paused" : "active",
        queen_segment: deps.spool.progress.queenSeg,
      });
    });
  };
}
