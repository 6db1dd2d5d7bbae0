/**
 * The local control API (Hono): one sub-app per resource (gpus, leases, jobs, models, status,
 * telemetry, sealed VRAM shards, cdi), mounted with `app.route`, each calling the bridge's façade. `createApp` takes
 * every dependency, so handlers are tested with `app.request()` and no socket; only the runtime
 * adapter serves it. JSON everywhere except the VM's own files, which come back as exactly the
 * text the VM sees.
 */
import { Hono } from "hono";
import type { Logger } from "../util/log.ts";
import { bearerMatches } from "./auth.ts";
import { hostAllowed } from "./host-check.ts";
import { cdiRoutes } from "./cdi.ts";
import { ApiError, describeError } from "./errors.ts";
import { DiskWriteError } from "../util/files.ts";
import type { BridgeFacade } from "./facade.ts";
import { gpuRoutes } from "./gpus.ts";
import { jobRoutes, leaseRoutes } from "./leases.ts";
import { modelRoutes } from "./models.ts";
import type { SubApp } from "./router.ts";
import { statusRoutes } from "./status.ts";
import { telemetryRoutes } from "./telemetry.ts";
import { vramRoutes } from "./vram.ts";

export type { ApiCdi, ApiModels, BridgeFacade } from "./facade.ts";
export { jobView, leaseView } from "./views.ts";

export interface ApiDeps {
  /** The bearer token every request that could change anything must carry. */
  readonly token: string;
  readonly log: Logger;
  readonly bridge: BridgeFacade;
  /** Host header names the API answers (DNS rebinding); absent: any. */
  readonly allowedHosts?: ReadonlySet<string> | null;
}

/** Builds the API. */
export function createApp(deps: ApiDeps): Hono {
  const app = new Hono();
  const requireAuth = (req: Request) => {
    if (!bearerMatches(req.headers.get("authorization") ?? undefined, deps.token)) {
      throw new ApiError(401, "unauthorized", "This route needs 'Authorization: Bearer <token>' with the bridge's API token", undefined, {
        "WWW-Authenticate": 'Bearer realm="gpu-bridge-host"',
      });
    }
  };

  app.onError((error, c) => {
    const d = describeError(error);
    if (d.status === 500) deps.log.error(`${c.req.method} ${c.req.path}: ${error instanceof Error ? error.stack : String(error)}`);
    else if (error instanceof DiskWriteError) deps.log.warn(`${c.req.method} ${c.req.path}: answered ${d.status}: ${error.message}`);
    return c.json({ error: { code: d.code, message: d.message, ...(d.field && { field: d.field }) } }, d.status as 400, d.headers ?? {});
  });
  app.notFound((c) => c.json({ error: { code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` } }, 404));
  // Every request that could change anything needs the token, whatever its path: a rule keyed on
  // matched routes is one refactor away from an unauthenticated mutation.
  app.use("*", async (c, next) => {
    if (deps.allowedHosts != null && !hostAllowed(c.req.header("host") ?? null, deps.allowedHosts)) {
      throw new ApiError(
        403,
        "forbidden_host",
        `Host ${JSON.stringify(c.req.header("host") ?? "")} is not this bridge: use localhost or the listen address`,
        "host",
      );
    }
    if (c.req.method !== "GET" && c.req.method !== "HEAD") requireAuth(c.req.raw);
    await next();
  });

  const mounted: [string, SubApp][] = [
    ["/", statusRoutes(deps.bridge)],
    ["/v1/gpus", gpuRoutes(deps.bridge)],
    ["/v1/leases", leaseRoutes(deps.bridge)],
    ["/v1/jobs", jobRoutes(deps.bridge)],
    ["/v1/models", modelRoutes(deps.bridge)],
    ["/v1/telemetry", telemetryRoutes(deps.bridge)],
    // Shard routes span /v1/leases/:id/shards, /v1/shards, /v1/gpus/:id/vram and /v1/vram.
    ["/", vramRoutes(deps.bridge)],
    ["/v1/cdi", cdiRoutes(deps.bridge)],
  ];
  for (const [prefix, sub] of mounted) app.route(prefix, sub.app);

  // A known path with another method is a 405 with Allow, not a 404.
  for (const [prefix, sub] of mounted) {
    for (const [path, methods] of sub.methods) {
      const full = path === "/" ? prefix : `${prefix === "/" ? "" : prefix}${path}`;
      const allow = [...methods].join(", ");
      app.all(full, () => {
        throw new ApiError(405, "method_not_allowed", `Method not allowed here; use ${allow}`, undefined, { Allow: allow });
      });
    }
  }
  return app;
}
