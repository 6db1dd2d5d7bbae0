/**
 * The local control API (Hono): one sub-app per resource (gpus, leases, jobs, models, status,
 * telemetry, sealed VRAM shards, cdi), each calling the bridge's façade, mounted from one route
 * table (`apiRoutes`) that also makes the OpenAPI document at /v1/openapi.json. `createApp` takes
 * every dependency, so handlers are tested with `app.request()` and no socket; only the runtime
 * adapter serves it. JSON everywhere except the VM's own files, which come back as exactly the
 * text the VM sees.
 *
 * What every request goes through is kept to what it needs, because it is paid on every GET: the
 * Host check (when the listen address calls for one), then for a request that could change
 * anything the token. There is no middleware chain: each route's handler is wrapped once, at
 * start, so a GET is one router match and one handler call.
 */
import { type Context, Hono } from "hono";
import type { Logger } from "../util/log.ts";
import { bearerMatches, unauthorized } from "./auth.ts";
import type { ChangeRecord } from "../changes/record.ts";
import { trackChanging, trackReading, withRequestId } from "./requests.ts";
import { hostAllowed } from "./host-check.ts";
import { cdiRoutes } from "./cdi.ts";
import { configRoutes } from "./config-route.ts";
import { eventRoutes } from "./events.ts";
import { ApiError, describeError } from "./errors.ts";
import { DiskWriteError } from "../util/files.ts";
import type { BridgeFacade } from "./facade.ts";
import { gpuRoutes } from "./gpus.ts";
import { jobRoutes, leaseRoutes } from "./leases.ts";
import { modelRoutes } from "./models.ts";
import { openapiRoutes } from "./openapi-route.ts";
import { principalRoutes } from "./principal-routes.ts";
import { admit, type PrincipalGuard, ruleOf, runAs } from "./principals.ts";
import { scopedFacade } from "./scope.ts";
import { type Principal, SINGLE_TOKEN_PRINCIPAL } from "./tokens-file.ts";
import { type Handler, joinPath, type Route, type SubApp } from "./router.ts";
import { statusRoutes } from "./status.ts";
import { telemetryRoutes } from "./telemetry.ts";
import { vramRoutes } from "./vram.ts";

export type { ApiCdi, ApiModels, BridgeFacade } from "./facade.ts";
export { jobView, leaseView } from "./views.ts";

export interface ApiDeps {
  /** The bearer token every request that could change anything must carry (unused with `principals`). */
  readonly token: string;
  /**
   * The principals of a tokens file (principals.ts): every route but /healthz then needs one of
   * their tokens, and each route the role its rule names; absent: the single token above.
   */
  readonly principals?: PrincipalGuard;
  /** The effective settings for `GET /v1/config`, secrets already masked. */
  readonly settings?: Readonly<Record<string, unknown>>;
  readonly log: Logger;
  readonly bridge: BridgeFacade;
  /** Host header names the API answers (DNS rebinding); absent: any. */
  readonly allowedHosts?: ReadonlySet<string> | null;
  /** Where each request that could change something is recorded (`api.request`); absent: logged only. */
  readonly changes?: ChangeRecord | null;
}

/**
 * Every route this bridge serves, with its full path, in registration order: the routes of the
 * capabilities it has (no telemetry or shard routes without them), and /v1/openapi.json, which
 * describes exactly these.
 */
export function apiRoutes(bridge: BridgeFacade): Route[] {
  const mounted: [string, SubApp][] = [
    ["/", statusRoutes(bridge)],
    ["/v1/gpus", gpuRoutes(bridge)],
    ["/v1/leases", leaseRoutes(bridge)],
    ["/v1/jobs", jobRoutes(bridge)],
    ["/v1/models", modelRoutes(bridge)],
    ["/v1/telemetry", telemetryRoutes(bridge)],
    // Shard routes span /v1/leases/:id/shards, /v1/shards, /v1/gpus/:id/vram and /v1/vram.
    ["/", vramRoutes(bridge)],
    ["/v1/cdi", cdiRoutes(bridge)],
    ["/v1/events", eventRoutes(bridge)],
    ["/v1/principals", principalRoutes(bridge)],
    ["/v1/config", configRoutes(bridge)],
  ];
  const routes = mounted.flatMap(([prefix, sub]) => sub.routes.map((r) => ({ ...r, path: joinPath(prefix, r.path) })));
  routes.push(...openapiRoutes(bridge.version, () => routes).routes);
  return routes;
}

/** The methods each known path answers (HEAD wherever GET is), as patterns over request paths. */
export function allowTable(routes: readonly Route[]): { readonly pattern: RegExp; readonly path: string; readonly allow: string }[] {
  const byPath = new Map<string, Set<string>>();
  for (const r of routes) {
    let m = byPath.get(r.path);
    if (m === undefined) byPath.set(r.path, m = new Set());
    m.add(r.method);
    if (r.method === "GET") m.add("HEAD");
  }
  return [...byPath].map(([path, methods]) => ({
    // Hono's matching for these patterns: a parameter is one non-empty segment; no trailing slash.
    pattern: new RegExp(`^${path.replace(/[.]/g, "\\.").replace(/:[A-Za-z_]+/g, "[^/]+")}$`),
    path,
    allow: [...methods].join(", "),
  }));
}

/** Builds the API. */
export function createApp(deps: ApiDeps): Hono {
  const app = new Hono();
  const principals = deps.principals ?? null;
  const requireAuth = principals === null
    ? (req: Request) => {
      if (!bearerMatches(req.headers.get("authorization") ?? undefined, deps.token)) throw unauthorized();
    }
    : (req: Request) => {
      if (principals.authenticate(req.headers.get("authorization")) === null) throw unauthorized("a token of the bridge's tokens file");
    };
  // The few Host values clients send, judged once each (bounded: a client could send many).
  const hostVerdicts = new Map<string, boolean>();
  const checkHost = deps.allowedHosts == null ? null : (req: Request) => {
    const header = req.headers.get("host");
    let ok = header === null ? undefined : hostVerdicts.get(header);
    if (ok === undefined) {
      ok = hostAllowed(header, deps.allowedHosts!);
      if (header !== null) {
        if (hostVerdicts.size >= 64) hostVerdicts.clear();
        hostVerdicts.set(header, ok);
      }
    }
    if (!ok) {
      throw new ApiError(
        403,
        "forbidden_host",
        `Host ${JSON.stringify(header ?? "")} is not this bridge: use localhost or the listen address`,
        "host",
      );
    }
  };

  const answerError = (error: unknown, c: Context): Response => {
    const d = describeError(error);
    if (d.status === 500) deps.log.error(`${c.req.method} ${c.req.path}: ${error instanceof Error ? error.stack : String(error)}`);
    else if (error instanceof DiskWriteError) deps.log.warn(`${c.req.method} ${c.req.path}: answered ${d.status}: ${error.message}`);
    return c.json(
      { error: { code: d.code, message: d.message, ...(d.field && { field: d.field }), ...d.details } },
      d.status as 400,
      d.headers ?? {},
    );
  };
  app.onError(answerError);

  const base = deps.settings === undefined ? deps.bridge : { ...deps.bridge, settings: () => deps.settings! };
  const routes = apiRoutes(principals === null ? base : scopedFacade(base, principals));
  for (const r of routes) app.on(r.method, r.path, guarded(r.method, r.path, r.handler));

  // No route matched: a known path with another method is a 405 with Allow (decided before the
  // token: the method is wrong whoever asks); any other path is a 404, once the Host and, for a
  // request that could change anything, the token pass.
  const allow = allowTable(routes);
  app.notFound((c) => withRequestId(c.req.raw, notFound(c)));
  return app;

  function notFound(c: Context): Response {
    try {
      checkHost?.(c.req.raw);
      const known = allow.find((a) => a.pattern.test(c.req.path));
      if (known !== undefined) {
        throw new ApiError(405, "method_not_allowed", `Method not allowed here; use ${known.allow}`, undefined, { Allow: known.allow });
      }
      if (principals !== null || (c.req.method !== "GET" && c.req.method !== "HEAD")) requireAuth(c.req.raw);
      return c.json({ error: { code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` } }, 404);
    } catch (error) {
      return answerError(error, c);
    }
  }

  /**
   * `handler` behind the Host check and, for every method but GET (and so HEAD), the token: every
   * route is mounted through here, so no route that could change anything is reached without it.
   */
  function guarded(method: string, path: string, handler: Handler): Handler {
    // The request id, the api.request record and the log line (src/api/requests.ts).
    const track = { route: `${method} ${path}`, log: deps.log, changes: deps.changes ?? null, answer: answerError };
    const rule = principals === null ? null : ruleOf(method, path);
    if (principals !== null && rule !== null && rule !== "public") {
      // With a tokens file: the principal's token and role, then the handler as that principal.
      const route = `${method} ${path}`;
      if (method !== "GET") {
        const admitted = new WeakMap<Request, Principal>();
        return trackChanging(track, (req) => {
          checkHost?.(req);
          const p = admit(principals, rule, route, req);
          admitted.set(req, p);
          return p.name;
        }, (c) => runAs(admitted.get(c.req.raw)!, () => handler(c)));
      }
      return trackReading(track, (c) => {
        checkHost?.(c.req.raw);
        const p = admit(principals, rule, route, c.req.raw);
        return runAs(p, () => handler(c));
      });
    }
    if (method !== "GET") {
      // What the request changes is recorded as the API's doing, naming the route and principal.
      return trackChanging(track, (req) => {
        checkHost?.(req);
        requireAuth(req);
        return SINGLE_TOKEN_PRINCIPAL;
      }, handler);
    }
    // A read only admins may make (GET /v1/config) needs the token even without a tokens file.
    if (principals === null && ruleOf(method, path) === "admin") {
      return trackReading(track, (c) => {
        checkHost?.(c.req.raw);
        requireAuth(c.req.raw);
        return handler(c);
      });
    }
    if (checkHost === null) return trackReading(track, handler);
    const check = checkHost;
    return trackReading(track, (c) => {
      check(c.req.raw);
      return handler(c);
    });
  }
}
