/**
 * What the API keeps of each request: its id (`X-Request-Id`, the client's when it is printable
 * and at most 128 characters, else one made here), returned on every answer, in the log line and
 * in the record; and for each request that could change anything, one `api.request` change (who,
 * which route, which id, the status), recorded whatever the answer, so the audit trail shows
 * refused attempts as well as what they changed.
 */
import { randomUUID } from "node:crypto";
import type { Context } from "hono";
import { type ChangeRecord, within } from "../changes/record.ts";
import type { Logger } from "../util/log.ts";
import { ApiError } from "./errors.ts";
import type { Handler } from "./router.ts";

/** The header, on requests and on every answer. */
export const REQUEST_ID_HEADER = "X-Request-Id";
/** A client's id: printable ASCII without spaces, 1 to 128 characters. */
export const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** The request's id: the client's if it is valid, else a new one; a bad one is refused (400). */
export function requestIdOf(req: Request): string {
  const given = req.headers.get(REQUEST_ID_HEADER);
  if (given === null) return randomUUID();
  if (!REQUEST_ID.test(given)) {
    const shown = given.length > 40 ? `${given.slice(0, 40)}… (${given.length} characters)` : given;
    throw new ApiError(
      400,
      "invalid_request_id",
      `${REQUEST_ID_HEADER} ${JSON.stringify(shown)} is not 1-128 printable ASCII characters without spaces; send another or none`,
      REQUEST_ID_HEADER,
    );
  }
  return given;
}

/** `res` answering `req`, with its id (the client's when valid, else a new one). */
export function withRequestId(req: Request, res: Response): Response {
  let id: string;
  try {
    id = requestIdOf(req);
  } catch {
    id = randomUUID();
  }
  return stamped(res, id);
}

/** `res` with the request id set (a copy where its headers cannot be changed). */
function stamped(res: Response, id: string): Response {
  try {
    res.headers.set(REQUEST_ID_HEADER, id);
    return res;
  } catch {
    const copy = new Response(res.body, res);
    copy.headers.set(REQUEST_ID_HEADER, id);
    return copy;
  }
}

export interface TrackOptions {
  /** `METHOD /path` of the route. */
  readonly route: string;
  readonly log: Logger;
  /** Where `api.request` is recorded (absent: logged only). */
  readonly changes?: ChangeRecord | null;
  /** Turns any error into the API's error answer. */
  readonly answer: (error: unknown, c: Context) => Response;
}

/**
 * A route that could change something: the request id, then `authenticate` (the Host check and
 * the token; it names the principal), then `handler` inside the change context naming the route,
 * the principal and the request id; then one `api.request` change and one log line.
 */
export function trackChanging(o: TrackOptions, authenticate: (req: Request) => string, handler: Handler): Handler {
  return async (c) => {
    let id = "";
    let principal: string | undefined;
    let res: Response;
    try {
      id = requestIdOf(c.req.raw);
      principal = authenticate(c.req.raw);
      const actor = { route: o.route, request_id: id, principal };
      res = await within({ source: "api", actor }, () => handler(c));
    } catch (error) {
      res = o.answer(error, c);
    }
    if (id === "") id = randomUUID();
    const outcome = res.status < 400 ? "ok" : res.status === 401 || res.status === 403 ? "denied" : "refused";
    o.changes?.append({
      type: "api.request",
      source: "api",
      actor: { route: o.route, request_id: id, ...(principal !== undefined && { principal }) },
      outcome,
      ...(res.status >= 500 && { severity: "warning" as const }),
      data: { status: res.status, path: c.req.path },
    });
    o.log.info(`${o.route} ${c.req.path} -> ${res.status} (request ${id}${principal !== undefined ? `, ${principal}` : ""})`);
    // Answered once the request's records are in the audit trail's file (on its worker, in batch mode).
    await o.changes?.written();
    return stamped(res, id);
  };
}

/** A read: the request id on its answer (and its errors answered here, so they carry it too). */
export function trackReading(o: TrackOptions, handler: Handler): Handler {
  return (c) => {
    let id: string;
    try {
      id = requestIdOf(c.req.raw);
    } catch (error) {
      return stamped(o.answer(error, c), randomUUID());
    }
    const failed = (error: unknown) => stamped(o.answer(error, c), id);
    try {
      const r = handler(c);
      return r instanceof Promise ? r.then((res) => stamped(res, id), failed) : stamped(r, id);
    } catch (error) {
      return failed(error);
    }
  };
}
