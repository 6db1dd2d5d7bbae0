/** `GET /v1/events`: the record of changes as Server-Sent Events (src/changes/stream.ts). */
import * as v from "valibot";
import { parseTypePatterns } from "../changes/stream.ts";
import { ApiError } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { type SubApp, subApp } from "./router.ts";
import { parseQuery, queryText, queryValue } from "./schemas.ts";

const EVENT_ID = /^[0-9]{1,15}$/;

const EventsQuery = v.strictObject({
  types: queryText("types", "Comma-separated types or patterns (`lease.*`, `model.activated`, `*`); default every type."),
  lease: queryText("lease", "Only the changes of this lease."),
  last_event_id: queryValue("last_event_id", "a change id (digits)", (s) => EVENT_ID.test(s)),
});

/** The event stream, to mount at `/v1/events`; none without the bridge's record of changes. */
export function eventRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  const hub = bridge.events;
  if (hub === undefined) return r;
  r.on("GET", "/", {
    summary: "Server-Sent Events: one event per change (leases, jobs, shards, the active model, GPUs, the console)",
    description: "Each event's `id` is the change's number, `event` its type and `data` the change as one JSON object " +
      "`{id, time, type, source, severity, actor?, lease_id?, gpu_id?, outcome?, data}`. Reconnect with `Last-Event-ID` " +
      "(or `last_event_id`) to get the kept changes after it first; changes no longer kept are announced by a `stream.gap` " +
      "event, and a client that falls too far behind gets a `stream.dropped` event naming where to resume, then the " +
      "stream ends. A comment line is sent when the stream is idle. The types are listed in docs/events.md.",
    query: EventsQuery,
    ok: {
      status: 200,
      type: "text/event-stream",
      description: "An endless stream of `id:`/`event:`/`data:` frames.",
      headers: { "Cache-Control": "Always `no-cache`: every frame is news." },
    },
    errors: [422],
  }, (c) => {
    const q = parseQuery(EventsQuery, c.req.raw);
    const header = c.req.header("last-event-id");
    if (header !== undefined && !EVENT_ID.test(header.trim())) {
      throw new ApiError(422, "invalid", `Last-Event-ID must be a change id (digits), got ${JSON.stringify(header)}`, "Last-Event-ID");
    }
    const after = header !== undefined ? header.trim() : q.last_event_id;
    let types: string[] | null = null;
    if (q.types !== undefined) {
      const parsed = parseTypePatterns(q.types);
      if ("error" in parsed) throw new ApiError(422, "invalid", parsed.error, "types");
      types = parsed.patterns;
    }
    const body = hub.open({ types, lease: q.lease ?? null }, after === undefined ? null : Number(after));
    return new Response(body, {
      status: 200,
      headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no" },
    });
  });
  return r;
}
