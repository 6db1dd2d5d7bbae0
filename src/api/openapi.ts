/**
 * The OpenAPI 3.1 document of the API, made from the route table (router.ts): every route, its
 * parameters, its request body and answers, with the JSON Schemas converted from the very valibot
 * schemas the handlers parse with (`@valibot/to-json-schema`). Nothing here is written twice: a
 * route added, a field added to a body schema or a status added to an error table shows up in
 * the document by itself.
 *
 * Besides a route's own refusals (`RouteDoc.errors`), each operation lists what every request
 * can meet on its way: 403 for a Host that is not this bridge, 401 without the token for all but
 * GET, 400/413/415/422 for a body, 422 for a query, 500. A path answers every method it does not
 * have with 405 and `Allow`, before the token is looked at: those methods appear as operations
 * that answer only that (tagged `method-not-allowed`), so the document covers every method.
 */
import { toJsonSchema } from "@valibot/to-json-schema";
import type * as v from "valibot";
import type { Route } from "./router.ts";
import { ErrorBody } from "./schemas.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** What each refusal status means on this API (the code in the body says which case it is). */
export const STATUS_MEANING: Readonly<Record<number, string>> = {
  400: "The body is not valid JSON, NDJSON or CBOR, or is refused as input (bad_json, invalid).",
  401: "No valid token: send 'Authorization: Bearer <token>' (unauthorized); with a tokens file, every route but /healthz needs one.",
  403:
    "The Host header does not name this bridge (forbidden_host), the lease, job or shard refuses (permission), or the principal lacks the route's role or the worker's pattern (forbidden).",
  404: "No such GPU, lease, job, shard, result or resource (not_found), or no such sealed shard (not_sealed).",
  405: "This path does not answer this method; Allow lists those it does (method_not_allowed).",
  409:
    "The request conflicts with the state: not enough room, a lease or shard already ended, no registry (conflict, insufficient, insufficient_vram, policy, no_registry).",
  411: "The body's length must be given up front (length_required).",
  413: "The body is over this route's size limit (too_large).",
  415: "The body's Content-Type is not one this route takes (unsupported_media_type).",
  422:
    "A field or query parameter is missing, unknown or out of range; `field` names it (invalid, mismatch), or bytes that are not the ones expected (integrity_violation).",
  429: "Too many jobs are waiting; retry later (busy), or a principal's quota is reached (quota_exceeded, `field` names it).",
  500:
    "An internal error; the bridge's log has the details (internal, cuda, cuda_allocation_failed, cuda_deallocation_failed, seal_verification_failed).",
  503: "The write could not be stored, or the capability is unavailable on this host now (storage_unavailable, unavailable).",
  507: "The disk is full: nothing was stored; free space and retry (insufficient_storage).",
};

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;
const ERROR_REF = { $ref: "#/components/schemas/Error" };

/** A valibot schema as JSON Schema 2020-12; checks with no JSON Schema form are left to `description`. */
export function jsonSchema(schema: v.GenericSchema): Json {
  const { $schema: _, ...rest } = toJsonSchema(schema, { target: "draft-2020-12", errorMode: "ignore" }) as Json;
  return rest;
}

/** `/v1/leases/:id` as OpenAPI writes it: `/v1/leases/{id}`. */
export const openapiPath = (path: string) => path.replace(/:([A-Za-z_]+)/g, "{$1}");

const operationId = (method: string, path: string) =>
  method.toLowerCase() +
  path.split(/[/.]/).filter(Boolean).map((s) => s.replace(/^:/, "by_")).map((s) =>
    s[0]!.toUpperCase() + s.slice(1).replace(/_(\w)/g, (_m, c: string) => c.toUpperCase())
  ).join("");

/** The statuses `route` can answer, its success first, then its refusals in order. */
export function routeStatuses(route: Route): number[] {
  const d = route.doc;
  const out = new Set<number>([403, 500, ...(d.errors ?? [])]);
  // Every route but /healthz needs a token with a tokens file (docs/tenancy.md); without one, only changes do.
  if (route.path !== "/healthz") out.add(401);
  // A strict query schema refuses unknown (and repeated) parameters; a plain one only describes them.
  if (d.query !== undefined && d.query.type === "strict_object") out.add(422);
  if (d.body !== undefined) {
    out.add(413).add(415);
    if (Object.entries(d.body.content).some(([type, s]) => type === "application/json" && s !== null)) out.add(400).add(422);
  }
  return [d.ok.status, ...(d.ok.also === undefined ? [] : [d.ok.also.status]), ...[...out].sort((a, b) => a - b)];
}

function operation(route: Route): Json {
  const d = route.doc;
  const parameters: Json[] = [...route.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({
    name: m[1],
    in: "path",
    required: true,
    schema: { type: "string" },
  }));
  if (d.query !== undefined) {
    const q = jsonSchema(d.query);
    for (const [name, schema] of Object.entries(q.properties ?? {}) as [string, Json][]) {
      const { description, ...rest } = schema;
      parameters.push({
        name,
        in: "query",
        required: (q.required ?? []).includes(name),
        ...(description !== undefined && { description }),
        schema: rest,
      });
    }
  }
  const responses: Json = {};
  for (const status of routeStatuses(route)) {
    if (status === d.ok.status || status === d.ok.also?.status) {
      const headers = Object.fromEntries(
        Object.entries(d.ok.headers ?? {}).map(([h, description]) => [h, { description, schema: { type: "string" } }]),
      );
      responses[status] = {
        description: status === d.ok.status ? d.ok.description : d.ok.also!.description,
        ...(Object.keys(headers).length > 0 && { headers }),
        content: { [d.ok.type ?? "application/json"]: d.ok.schema === undefined ? {} : { schema: jsonSchema(d.ok.schema) } },
      };
    } else {
      responses[status] = {
        description: STATUS_MEANING[status] ?? `Refused (${status}).`,
        ...(status === 401 &&
          { headers: { "WWW-Authenticate": { description: 'Bearer realm="gpu-bridge-host"', schema: { type: "string" } } } }),
        content: { "application/json": { schema: ERROR_REF } },
      };
    }
  }
  return {
    operationId: operationId(route.method, route.path),
    summary: d.summary,
    ...(d.description !== undefined && { description: d.description }),
    ...(parameters.length > 0 && { parameters }),
    ...(d.body !== undefined && {
      requestBody: {
        required: d.body.required,
        content: Object.fromEntries(
          Object.entries(d.body.content).map((
            [type, s],
          ) => [type, s === null ? (type.startsWith("text/") ? { schema: { type: "string" } } : {}) : { schema: jsonSchema(s) }]),
        ),
      },
    }),
    responses,
    // Reads need no token; everything else does.
    security: route.method === "GET" ? [] : [{ token: [] }],
  };
}

/** The OpenAPI 3.1 document of `routes`, for a bridge of `version`. */
export function openapiDocument(routes: readonly Route[], version: string): Json {
  const paths: Json = {};
  const allowed = new Map<string, string[]>();
  for (const r of routes) {
    const path = openapiPath(r.path);
    (paths[path] ??= {})[r.method.toLowerCase()] = operation(r);
    const a = allowed.get(path) ?? [];
    allowed.set(path, [...a, r.method, ...(r.method === "GET" ? ["HEAD"] : [])]);
  }
  for (const [path, allow] of allowed) {
    for (const m of METHODS) {
      if (allow.includes(m.toUpperCase())) continue;
      paths[path][m] = {
        operationId: operationId(`${m}NotAllowed`, path.replace(/\{(\w+)\}/g, ":$1")),
        summary: `Not allowed: answers 405, Allow: ${allow.join(", ")}`,
        tags: ["method-not-allowed"],
        ...(path.includes("{") && {
          parameters: [...path.matchAll(/\{(\w+)\}/g)].map((p) => ({ name: p[1], in: "path", required: true, schema: { type: "string" } })),
        }),
        responses: {
          403: { description: STATUS_MEANING[403], content: { "application/json": { schema: ERROR_REF } } },
          405: {
            description: STATUS_MEANING[405],
            headers: { Allow: { description: allow.join(", "), schema: { type: "string", const: allow.join(", ") } } },
            content: { "application/json": { schema: ERROR_REF } },
          },
        },
        security: [],
      };
    }
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "gpu-bridge-host local API",
      version,
      description: "The bridge's local control API: GPUs, leases, jobs, models, telemetry, sealed VRAM shards and CDI. " +
        "Reads (GET, HEAD) need no token; every other method needs 'Authorization: Bearer <token>' (the token is in " +
        "<state-dir>/api-token unless given). With a tokens file (serve --tokens) every route but /healthz needs a " +
        "principal's token, and each route a role: reader, operator or admin (docs/tenancy.md). " +
        'Every refusal has the body {"error":{"code","message","field"?}}. ' +
        "A path not listed here answers 404 (401 first, for a method other than GET or HEAD without the token, or any " +
        "method with a tokens file).",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    tags: [{ name: "method-not-allowed", description: "Methods a path does not have: each answers 405 with Allow, token or not." }],
    paths,
    components: {
      schemas: { Error: jsonSchema(ErrorBody) },
      securitySchemes: { token: { type: "http", scheme: "bearer", description: "The bridge's API token." } },
    },
  };
}
