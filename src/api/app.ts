/**
 * The local control API (Hono). `createApp` takes every dependency, so handlers are tested
 * with `app.request()` and no socket; only the runtime adapter serves it. JSON everywhere except
 * the VM's own files, which come back as exactly the text the VM sees.
 */
import { type Context, Hono } from "hono";
import type { Publisher } from "../daemon/publisher.ts";
import type { HostState } from "../host/state.ts";
import { MAX_PAYLOAD_BYTES } from "../job/descriptor.ts";
import type { JobRecord } from "../job/scheduler.ts";
import type { GpuStats } from "../inventory/stats.ts";
import type { GpuInfo } from "../inventory/types.ts";
import type { Lease } from "../lease/types.ts";
import type { ModelCatalog } from "../models/types.ts";
import type { Namespace } from "../namespace/mod.ts";
import type { Snapshot } from "../snapshot/encode.ts";
import type { Logger } from "../log.ts";
import { bearerMatches } from "./auth.ts";
import { readBody, readJson, requireType } from "./body.ts";
import { ApiError, describeError } from "./errors.ts";
import { renderMetrics } from "./metrics.ts";
import { ActiveModelBody, LeaseBody, parseBody, RenewBody } from "./schemas.ts";

/** The model registry as the API needs it. */
export interface ApiModels {
  catalog(): ModelCatalog;
  /** Makes `modelId` active (rewrites `active` atomically and republishes); absent without a registry. */
  setActive?(modelId: string): void;
}

/** Routes added by other capabilities (telemetry), mounted on the same app. */
export type ApiExtension = (app: Hono, guard: { requireAuth(req: Request): void }) => void;

export interface ApiDeps {
  readonly version: string;
  readonly hostname: string;
  readonly token: string;
  readonly log: Logger;
  readonly gpus: () => readonly GpuInfo[];
  readonly stats: () => Promise<GpuStats[]>;
  readonly host: HostState;
  readonly namespace: () => Promise<Namespace>;
  readonly snapshot: () => Promise<Snapshot>;
  readonly publisher: Publisher | null;
  readonly console?: { readonly host: string; readonly port: number };
  readonly models: ApiModels;
  readonly extensions?: readonly ApiExtension[];
  readonly telemetryMetrics?: () => { spooledRecords: number; spooledBytes: number; forwarded: number; dropped: number };
}

/** A path parameter the route pattern guarantees. */
const param = (c: Context, name: string): string => c.req.param(name) ?? "";

const JOB_BODY_LIMIT = Math.ceil(MAX_PAYLOAD_BYTES / 3) * 4 + 64 * 1024;
const iso = (ms: number) => new Date(ms).toISOString();

/** A lease as the API shows it. */
export function leaseView(l: Lease) {
  return {
    id: l.id,
    gpu_id: l.gpu_id,
    worker_id: l.worker_id,
    mem_mb: l.mem_mb,
    streams: l.streams,
    ttl_s: l.ttl_s,
    priority: l.priority,
    state: l.state,
    granted_at: iso(l.granted_at),
    expires_at: iso(l.expires_at),
    ...(l.released_reason !== undefined && { released_reason: l.released_reason }),
  };
}

/** A job as the API shows it. */
export function jobView(j: JobRecord) {
  return {
    job: j.job,
    state: j.state,
    detail: j.detail,
    lease_id: j.lease_id,
    gpu_id: j.gpu_id,
    worker_id: j.worker_id,
    kernel: j.kernel,
    submitted_at: iso(j.submitted_at),
    started_at: j.started_at === null ? null : iso(j.started_at),
    finished_at: j.finished_at === null ? null : iso(j.finished_at),
    result: j.result,
    ...(j.output_bytes !== null && {
      output: { bytes: j.output_bytes, sha256: j.output_sha256, href: `/v1/jobs/${j.job}/result`, available: j.output !== null },
    }),
    message: j.message,
  };
}

/** Builds the API. */
export function createApp(deps: ApiDeps): Hono {
  const app = new Hono();
  const routes = new Map<string, Set<string>>();
  const route = (method: "GET" | "POST" | "PUT" | "DELETE", path: string, handler: (c: Context) => Response | Promise<Response>) => {
    let methods = routes.get(path);
    if (methods === undefined) routes.set(path, (methods = new Set()));
    methods.add(method);
    if (method === "GET") methods.add("HEAD");
    app.on(method, path, handler);
  };
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
    return c.json({ error: { code: d.code, message: d.message, ...(d.field && { field: d.field }) } }, d.status as 400, d.headers ?? {});
  });
  app.notFound((c) => c.json({ error: { code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` } }, 404));
  // Every request that could change anything needs the token, whatever its path: a rule keyed on
  // matched routes is one refactor away from an unauthenticated mutation.
  app.use("*", async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD") requireAuth(c.req.raw);
    await next();
  });

  const gpu = (id: string): GpuInfo => {
    const g = deps.gpus().find((x) => x.id === id);
    if (g === undefined) throw new ApiError(404, "not_found", `Unknown GPU ${JSON.stringify(id)}`, "id");
    return g;
  };
  const gpuView = (g: GpuInfo, stats: readonly GpuStats[]) => {
    const live = deps.host.leases.live(g.id);
    return {
      ...g,
      leases: { active: live.length, mem_mb: live.reduce((n, l) => n + l.mem_mb, 0), streams: live.reduce((n, l) => n + l.streams, 0) },
      stats: stats.find((s) => s.id === g.id) ?? null,
    };
  };
  const lease = (id: string): Lease => {
    const l = deps.host.leases.get(id);
    if (l === undefined) throw new ApiError(404, "not_found", `Unknown lease ${JSON.stringify(id)}`, "id");
    return l;
  };

  route("GET", "/healthz", (c) =>
    c.json({ status: "ok", version: deps.version, gpus: deps.gpus().length, console: deps.publisher?.stats.state ?? "disabled" }));

  route("GET", "/v1/gpus", async (c) => {
    const stats = await deps.stats();
    return c.json(deps.gpus().map((g) => gpuView(g, stats)));
  });
  route("GET", "/v1/gpus/:id", async (c) => c.json(gpuView(gpu(param(c, "id")), await deps.stats())));
  for (const file of ["info", "ctl", "lease", "status"] as const) {
    route("GET", `/v1/gpus/:id/${file}`, async (c) => {
      const id = gpu(param(c, "id")).id;
      const node = (await deps.namespace()).nodes.find((n) => n.id === id);
      if (node === undefined) throw new ApiError(404, "not_found", `GPU ${id} is not in the current snapshot`, "id");
      return c.text(node[file], 200, { "content-type": "text/plain; charset=utf-8" });
    });
  }
  route("POST", "/v1/gpus/:id/ctl", async (c) => {
    const id = gpu(param(c, "id")).id;
    requireType(c.req.raw, "text/plain");
    const line = new TextDecoder().decode(await readBody(c.req.raw, 4096)).replace(/\r?\n$/, "");
    const result = deps.host.control(id, line);
    return c.json({ ok: true, message: result.message, ...(result.lease && { lease: leaseView(result.lease) }) });
  });

  route("GET", "/v1/leases", (c) => {
    const state = c.req.query("state");
    return c.json(deps.host.leases.list().filter((l) => state === undefined || l.state === state.toUpperCase()).map(leaseView));
  });
  route("POST", "/v1/leases", async (c) => {
    const body = parseBody(LeaseBody, await readJson(c.req.raw));
    const l = deps.host.grant(body);
    return c.json(leaseView(l), 201, { Location: `/v1/leases/${l.id}` });
  });
  route("GET", "/v1/leases/:id", (c) => c.json(leaseView(lease(param(c, "id")))));
  route("POST", "/v1/leases/:id/renew", async (c) => {
    const l = lease(param(c, "id"));
    const hasBody = (c.req.header("content-length") ?? "0") !== "0" || c.req.header("content-type") !== undefined;
    const body = hasBody ? parseBody(RenewBody, await readJson(c.req.raw)) : {};
    return c.json(leaseView(deps.host.leases.renew(l.id, body.ttl_s)));
  });
  route("DELETE", "/v1/leases/:id", (c) => {
    const l = lease(param(c, "id"));
    return c.json(leaseView(deps.host.leases.release(l.id, c.req.query("reason") ?? "released")));
  });
  route("POST", "/v1/leases/:id/jobs", async (c) => {
    const l = lease(param(c, "id"));
    const job = deps.host.submitJob(l.id, await readJson(c.req.raw, JOB_BODY_LIMIT));
    return c.json(jobView(job), 202, { Location: `/v1/jobs/${job.job}` });
  });
  route("GET", "/v1/jobs/:job", (c) => {
    const j = deps.host.jobs.get(param(c, "job"));
    if (j === undefined) throw new ApiError(404, "not_found", `Unknown job ${JSON.stringify(param(c, "job"))}`, "job");
    return c.json(jobView(j));
  });
  // The result as the VM expects it at the job's output path: raw little-endian f32.
  route("GET", "/v1/jobs/:job/result", (c) => {
    const j = deps.host.jobs.get(param(c, "job"));
    if (j === undefined) throw new ApiError(404, "not_found", `Unknown job ${JSON.stringify(param(c, "job"))}`, "job");
    if (j.output === null) {
      const why = j.output_bytes !== null ? "its result was evicted (results are kept up to 256 MiB in all)" : `it is ${j.state}, with no result`;
      throw new ApiError(404, "not_found", `Job ${j.job} has no result to serve: ${why}`, "job");
    }
    return new Response(j.output as Uint8Array<ArrayBuffer>, { headers: { "content-type": "application/octet-stream", "content-length": String(j.output.length) } });
  });

  route("GET", "/v1/models", (c) => {
    const cat = deps.models.catalog();
    return c.json({ active: cat.active, source: cat.source, available: cat.models.map((m) => ({ model_id: m.model_id, manifest_toml: m.manifest_toml })) });
  });
  route("PUT", "/v1/models/active", async (c) => {
    const { model_id } = parseBody(ActiveModelBody, await readJson(c.req.raw));
    if (deps.models.setActive === undefined) {
      throw new ApiError(409, "no_registry", "The bridge serves its built-in catalog; start it with --registry DIR to switch models");
    }
    if (!deps.models.catalog().models.some((m) => m.model_id === model_id)) {
      throw new ApiError(422, "invalid", `Unknown model ${JSON.stringify(model_id)}: it is not in the registry`, "model_id");
    }
    deps.models.setActive(model_id);
    return c.json({ active: deps.models.catalog().active });
  });

  route("GET", "/v1/bridge", async (c) => {
    const p = deps.publisher?.stats ?? null;
    const snap = await deps.snapshot();
    return c.json({
      console: deps.console ?? null,
      state: p?.state ?? "disabled",
      publishes: p?.publishes ?? 0,
      failures: p?.failures ?? 0,
      reconnects: p?.reconnects ?? 0,
      skipped_unchanged: p?.skippedUnchanged ?? 0,
      last_publish: p?.lastPublish ?? null,
      last_error: p?.lastError ?? null,
      snapshot: { bytes: snap.bytes.length, sha256: snap.sha256 },
    });
  });
  route("GET", "/v1/snapshot", async (c) => c.text((await deps.snapshot()).text, 200, { "content-type": "text/plain; charset=utf-8" }));
  route("GET", "/metrics", async (c) =>
    c.text(
      renderMetrics({
        hostname: deps.hostname,
        version: deps.version,
        stats: await deps.stats(),
        publisher: deps.publisher?.stats ?? null,
        leases: deps.host.leases.live(),
        jobs: deps.host.jobs.counts(),
        ...(deps.telemetryMetrics !== undefined && { telemetry: deps.telemetryMetrics() }),
      }),
      200,
      { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    ));

  for (const ext of deps.extensions ?? []) ext(app, { requireAuth });

  // A known path with another method is a 405 with Allow, not a 404.
  for (const [path, methods] of routes) {
    app.all(path, () => {
      throw new ApiError(405, "method_not_allowed", `Method not allowed here; use ${[...methods].join(", ")}`, undefined, {
        Allow: [...methods].join(", "),
      });
    });
  }
  return app;
}
