/**
 * /v1/openapi.json: a valid OpenAPI 3.1 document (checked with an OpenAPI schema validator), with
 * every route the app really serves (read from the Hono app's own route list) and every status
 * each of them answers when probed: no token, a foreign Host, unknown ids, broken, mistyped and
 * oversized bodies, unknown query parameters, and well-formed requests. A --mock bridge with every
 * capability (telemetry, sealed shards on host memory, CDI) serves it, through `app.request()`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import * as v from "valibot";
import { createApp } from "../../src/api/app.ts";
import { JOB_STATUS, LEASE_STATUS, statusesOf, STORAGE_STATUS, VRAM_STATUS } from "../../src/api/errors.ts";
import { openapiPath } from "../../src/api/openapi.ts";
import { ErrorBody } from "../../src/api/schemas.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { memoryLogger, tempDir } from "../helpers.ts";
import { fullDocument } from "../../scripts/api-doc.ts";

const TOKEN = "openapi-token-0123456789";
const tmp = tempDir("gbh-openapi-");
let bridge: Bridge;
let app: ReturnType<typeof createApp>;
// deno-lint-ignore no-explicit-any
let doc: any;

beforeAll(async () => {
  const c = parseCommand(
    ["serve", "--mock", "--no-api", "--state-dir", join(tmp.path, "state"), "--cdi-dir", join(tmp.path, "cdi")],
    {},
  );
  if (c.kind !== "serve") throw new Error("expected serve");
  bridge = await createBridge(c.options, { runtime: bunRuntime(), log: memoryLogger().log, backend: mockBackend() });
  app = createApp({ token: TOKEN, log: memoryLogger().log, bridge, allowedHosts: new Set(["localhost"]) });
  const res = await app.request("http://localhost/v1/openapi.json", { headers: { host: "localhost" } });
  expect(res.status).toBe(200);
  doc = await res.json();
});
afterAll(async () => {
  await bridge.stop();
  tmp.cleanup();
});

/** Requests that succeed, for routes that create something. */
const WELL_FORMED: Record<string, [string, string]> = {
  "POST /v1/leases": ["application/json", JSON.stringify({ gpu_id: "GPU-1", worker_id: "w", mem_mb: 64, streams: 1, ttl_s: 60 })],
  "POST /v1/leases/:id/shards": ["application/octet-stream", "sealed bytes"],
};

/** The app's routes as Hono holds them (what it really answers), not a list kept by hand. */
const served = () => app.routes.map((r) => ({ method: r.method, path: r.path }));
const operation = (method: string, path: string) => doc.paths[openapiPath(path)]?.[method.toLowerCase()];

describe("the OpenAPI document", () => {
  test("is a valid OpenAPI 3.1 document, served without a token", async () => {
    expect(doc.openapi).toBe("3.1.0");
    const result = await new Validator().validate(doc);
    expect(result).toEqual({ valid: true });
    // The validator has teeth: the same document with a response lacking its description is refused.
    const broken = structuredClone(doc);
    delete broken.paths["/v1/gpus"].get.responses["200"].description;
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  test("has an operation for every route the app serves, and none it does not", () => {
    const routes = served();
    expect(routes.length).toBeGreaterThan(25); // shards, telemetry and CDI included
    for (const r of routes) {
      const op = operation(r.method, r.path);
      expect({ route: `${r.method} ${r.path}`, documented: op !== undefined && op.tags === undefined }).toEqual({
        route: `${r.method} ${r.path}`,
        documented: true,
      });
    }
    const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
      // deno-lint-ignore no-explicit-any
      Object.entries(item as Record<string, any>).filter(([, op]) => op.tags === undefined).map(([m]) => `${m.toUpperCase()} ${path}`)
    );
    expect(documented.sort()).toEqual(routes.map((r) => `${r.method} ${openapiPath(r.path)}`).sort());
    // docs/api.md is rendered from the document of a bridge with every capability: this one's.
    expect(fullDocument().paths).toEqual(doc.paths);
  });

  test("the request bodies are the schemas the handlers parse with", () => {
    const lease = operation("POST", "/v1/leases").requestBody.content["application/json"].schema;
    // mem_mb, streams and ttl_s may be left out: the bridge's lease-mem-mb, lease-streams and lease-ttl-s fill them in.
    expect(lease.required.sort()).toEqual(["gpu_id", "worker_id"]);
    expect(lease.additionalProperties).toBe(false);
    const job = operation("POST", "/v1/leases/:id/jobs").requestBody.content["application/json"].schema;
    expect(job.properties.kernel).toEqual({ type: "string", enum: ["vadd", "matmul"] });
    const plan = operation("GET", "/v1/vram/plan").parameters.map((p: { name: string; in: string }) => `${p.in} ${p.name}`);
    expect(plan).toEqual(["query bytes", "query lease_id"]);
  });

  test("lists every status each route answers, probed, with the error body it documents", async () => {
    const lease = bridge.leases.grant({ gpu_id: "GPU-0", worker_id: "openapi", mem_mb: 64, streams: 1, ttl_s: 600, priority: 0 });
    const ids: Record<string, string> = { ":id": lease.id, ":job": "nope" };
    const real = (path: string) => path.replace(/:[a-z]+/g, (p) => (path.startsWith("/v1/gpus") ? "GPU-0" : ids[p] ?? "nope"));
    const unknown = (path: string) => path.replace(/:[a-z]+/g, "nope");
    const auth = { Authorization: `Bearer ${TOKEN}`, host: "localhost" };
    const seen = new Set<number>();
    const missing: string[] = [];
    for (const { method, path } of served()) {
      const probes: [string, RequestInit][] = [
        [unknown(path), { method, headers: auth }],
        [real(path), { method, headers: { host: "localhost" } }],
        [real(path), { method, headers: { host: "evil.example" } }],
        [real(path) + "?zz=1", { method, headers: auth }],
      ];
      if (method === "GET") probes.push([real(path), { method, headers: auth }]);
      else {
        for (const type of ["application/json", "application/octet-stream", "text/plain", "text/x-nope"]) {
          probes.push([real(path), { method, headers: { ...auth, "content-type": type }, body: "{" }]);
          probes.push([real(path), { method, headers: { ...auth, "content-type": type }, body: "{}" }]);
        }
        probes.push([real(path), { method, headers: { ...auth, "content-type": "application/json" }, body: "x".repeat(24 << 20) }]);
        const good = WELL_FORMED[`${method} ${path}`];
        if (good !== undefined) probes.push([real(path), { method, headers: { ...auth, "content-type": good[0] }, body: good[1] }]);
      }
      for (const [url, init] of probes) {
        const res = await app.request(`http://localhost${url}`, init);
        seen.add(res.status);
        if (operation(method, path)?.responses[res.status] === undefined) missing.push(`${method} ${url} answered ${res.status}`);
        if (res.status >= 400) {
          const body = await res.json();
          expect({ url, valid: v.is(ErrorBody, body) }).toEqual({ url, valid: true });
        } else if (res.headers.get("content-type")?.startsWith("text/event-stream")) await res.body?.cancel(); // never ends
        else await res.arrayBuffer();
      }
    }
    expect(missing).toEqual([]);
    // The probes reached what they aim at (so a status dropped from the document is caught).
    for (const s of [200, 201, 400, 401, 403, 404, 411, 413, 415, 422]) expect({ s, seen: seen.has(s) }).toEqual({ s, seen: true });
  }, 60_000);

  test("every status the error tables map a domain error to is documented for some route", () => {
    const documented = new Set(
      // deno-lint-ignore no-explicit-any
      Object.values(doc.paths).flatMap((item) =>
        Object.values(item as Record<string, any>).flatMap((op) => Object.keys(op.responses).map(Number))
      ),
    );
    for (const table of [LEASE_STATUS, JOB_STATUS, VRAM_STATUS, STORAGE_STATUS]) {
      for (const s of statusesOf(table)) expect({ s, documented: documented.has(s) }).toEqual({ s, documented: true });
    }
  });

  test("a path answers its other methods with 405: the document says so for each of them", async () => {
    for (const [path, has] of [["/v1/gpus", "GET, HEAD"], ["/v1/leases/{id}/renew", "POST"]] as const) {
      const put = doc.paths[path].put;
      expect(put.tags).toEqual(["method-not-allowed"]);
      expect(put.responses["405"].headers.Allow.schema.const).toBe(has);
      const res = await app.request(`http://localhost${path.replace("{id}", "x")}`, { method: "PUT", headers: { host: "localhost" } });
      expect([res.status, res.headers.get("allow")]).toEqual([405, has]);
    }
  });
});
