/**
 * A path answers a method it does not have with 405 and `Allow`, token or not: the method is
 * wrong whoever asks, so a client without the token learns that, not that it needs a token.
 * Checked for every path the app serves (read from the app's own route list) and every method.
 */
import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";
import { bridgeFacade } from "../../src/app/bridge.ts";
import { HostState } from "../../src/host/state.ts";
import { MOCK_GPUS, mockStats } from "../../src/inventory/mock.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { memoryLogger } from "../helpers.ts";

const TOKEN = "allow-token-0123456789";
/** Any use of it fails the request with a 500: a handler that ran instead of the 405. */
const untouchable = new Proxy({}, {
  get: (_t, key) => {
    throw new Error(`a handler ran for a method its path does not have (read ${String(key)})`);
  },
});

function withApp(allowedHosts: ReadonlySet<string> | null, fn: (app: ReturnType<typeof createApp>) => Promise<void>): Promise<void> {
  const host = new HostState({
    gpus: () => MOCK_GPUS,
    runner: { run: () => Promise.reject(new Error("no job runs here")) },
    runnerKind: "cpu",
    log: memoryLogger().log,
    onChange: () => {},
  });
  const facade = bridgeFacade({
    version: "9.9.9",
    hostname: "edge-01",
    gpus: () => MOCK_GPUS,
    stats: () => Promise.resolve(mockStats()),
    host,
    models: { catalog: () => builtinCatalog() },
  });
  // Every capability present (its routes mounted), none of it reachable.
  const bridge = { ...facade, telemetry: untouchable as never, vram: untouchable as never, cdi: untouchable as never };
  const app = createApp({ token: TOKEN, log: memoryLogger().log, bridge, allowedHosts });
  return fn(app).finally(() => host.close());
}

// Every method a Request can carry (fetch refuses TRACE and CONNECT outright).
const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"];
const concrete = (path: string) => path.replace(/:[a-z_]+/g, "x1");

describe("methods a path does not have", () => {
  test("PUT /v1/gpus without a token is 405 with Allow: GET, HEAD, not 401", () =>
    withApp(null, async (app) => {
      const res = await app.request("/v1/gpus", { method: "PUT", body: "{}", headers: { "content-type": "application/json" } });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("GET, HEAD");
      expect(res.headers.get("www-authenticate")).toBeNull();
      expect(await res.json()).toEqual({ error: { code: "method_not_allowed", message: "Method not allowed here; use GET, HEAD" } });
    }));

  test("every path answers every method it does not have with 405 and the methods it has, with or without the token", () =>
    withApp(null, async (app) => {
      const byPath = new Map<string, Set<string>>();
      for (const r of app.routes) {
        const m = byPath.get(r.path) ?? new Set<string>();
        byPath.set(r.path, m.add(r.method));
        if (r.method === "GET") m.add("HEAD");
      }
      expect(byPath.size).toBeGreaterThan(20); // the shard, telemetry and CDI routes are there too
      let checked = 0;
      for (const [path, has] of byPath) {
        for (const method of METHODS.filter((m) => !has.has(m))) {
          for (const headers of [{}, { Authorization: `Bearer ${TOKEN}` }] as Record<string, string>[]) {
            const res = await app.request(concrete(path), { method, headers });
            expect({ method, path, status: res.status }).toEqual({ method, path, status: 405 });
            expect(new Set(res.headers.get("allow")!.split(", "))).toEqual(has);
            if (method !== "HEAD") expect(((await res.json()) as { error: { code: string } }).error.code).toBe("method_not_allowed");
            checked++;
          }
        }
      }
      expect(checked).toBeGreaterThan(byPath.size * 2 * 4);
    }));

  test("a path no route has is still a 404, and needs the token first for a method that could change anything", () =>
    withApp(null, async (app) => {
      expect((await app.request("/v1/gpus/GPU-0/nothing")).status).toBe(404);
      expect((await app.request("/v1/gpus/", { method: "PUT" })).status).toBe(401);
      const res = await app.request("/v1/gpus/", { method: "PUT", headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { message: string } }).error.message).toBe("No route for PUT /v1/gpus/");
    }));

  test("the Host check comes first: a wrong Host is 403 even for a method the path does not have", () =>
    withApp(new Set(["localhost"]), async (app) => {
      const evil = await app.request("http://evil.example/v1/gpus", { method: "PUT", headers: { host: "evil.example" } });
      expect(evil.status).toBe(403);
      const ours = await app.request("http://localhost/v1/gpus", { method: "PUT", headers: { host: "localhost" } });
      expect(ours.status).toBe(405);
    }));
});
