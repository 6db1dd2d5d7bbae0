/** Every route through `app.request()`: no socket, real HostState and mock inventory. */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { MOCK_GPUS, mockStats } from "../../src/inventory/mock.ts";
import { type ApiModels, createApp } from "../../src/api/app.ts";
import { bridgeFacade } from "../../src/app/bridge.ts";
import { HostState } from "../../src/host/state.ts";
import type { Runner, RunOutcome } from "../../src/job/runner.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import type { ModelCatalog } from "../../src/contract/models.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { memoryLogger, until } from "../helpers.ts";
import { computeOnCpu, decodeOperands, f32Bytes } from "../../src/job/cohesix.ts";

const TOKEN = "test-token-0123456789";
/** Computes in process, as the CPU runner's child would. */
const ok: Runner = {
  run: (req) => {
    const ops = decodeOperands(req.spec.kernel, req.operands!);
    if ("error" in ops) throw new Error(ops.error);
    const output = f32Bytes(computeOnCpu(req.spec.kernel, ops));
    return Promise.resolve<RunOutcome>({
      ok: true,
      output,
      summary: { kernel: req.spec.kernel, size: ops.n, checksum: 0, max_abs_error: 0, verified: 1, duration_ms: 1 },
    });
  },
};
let host: HostState;
let app: ReturnType<typeof createApp>;
let catalog: ModelCatalog;
let changes = 0;

function build(models: ApiModels) {
  host = new HostState({ gpus: () => MOCK_GPUS, runner: ok, runnerKind: "cpu", log: memoryLogger().log, onChange: () => changes++ });
  app = createApp({
    token: TOKEN,
    log: memoryLogger().log,
    bridge: bridgeFacade({
      version: "9.9.9",
      hostname: "edge-01",
      gpus: () => MOCK_GPUS,
      stats: () => Promise.resolve(mockStats()),
      host,
      models,
    }),
  });
}

beforeEach(() => {
  catalog = builtinCatalog();
  build({ catalog: () => catalog, setActive: (id) => void (catalog = { ...catalog, active: id }) });
});
afterEach(() => host.close());

const auth = { Authorization: `Bearer ${TOKEN}` };
const json = (body: unknown, headers: Record<string, string> = auth) => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: typeof body === "string" ? body : JSON.stringify(body),
});
const lease = { gpu_id: "GPU-0", worker_id: "w1", mem_mb: 4096, streams: 2, ttl_s: 60, priority: 5 };
const error = async (res: Response) => ((await res.json()) as { error: { code: string; message: string; field?: string } }).error;
const operands = Buffer.from(new Float32Array([1, 2, 10, 20]).buffer);
const job = (id: string) => ({
  job: id,
  kernel: "vadd",
  grid: [1, 1, 1],
  block: [32, 1, 1],
  bytes_hash: `sha256:${sha256Hex(operands)}`,
  inputs: [],
  outputs: [],
  timeout_ms: 1000,
  payload_b64: operands.toString("base64"),
});

describe("reads", () => {
  test("GET /healthz", async () => {
    const res = await app.request("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok", version: "9.9.9", gpus: 2, console: "disabled" });
  });

  test("GET /v1/gpus and /v1/gpus/{id}: info plus live stats and lease totals", async () => {
    const all = (await (await app.request("/v1/gpus")).json()) as { id: string; stats: { uuid: string } }[];
    expect(all.map((g) => g.id)).toEqual(["GPU-0", "GPU-1"]);
    const one = await (await app.request("/v1/gpus/GPU-1")).json();
    expect(one).toMatchObject({
      id: "GPU-1",
      name: "Mock 4060",
      memory_mb: 8192,
      leases: { active: 0 },
      stats: { utilization_gpu_pct: 30 },
    });
    const res = await app.request("/v1/gpus/GPU-9");
    expect(res.status).toBe(404);
    expect(await error(res)).toEqual({ code: "not_found", message: 'Unknown GPU "GPU-9"', field: "id" });
  });

  test("GET /v1/gpus/{id}/info|ctl|lease|status return exactly what the VM sees, as text", async () => {
    const res = await app.request("/v1/gpus/GPU-0/info");
    expect(res.headers.get("content-type")).toStartWith("text/plain");
    expect(await res.text()).toBe((await buildNamespace(MOCK_GPUS, catalog)).nodes[0]!.info);
    expect(await (await app.request("/v1/gpus/GPU-0/ctl")).text()).toBe("LEASE GPU-0\n");
    expect(await (await app.request("/v1/gpus/GPU-0/lease")).text()).toBe("");
  });

  test("GET /v1/snapshot, /v1/bridge and /v1/models", async () => {
    const snap = await (await app.request("/v1/snapshot")).text();
    expect(snap.startsWith("schema gpu-bridge-snapshot/v1\n")).toBe(true);
    expect(await (await app.request("/v1/bridge")).json()).toMatchObject({ state: "disabled", snapshot: { bytes: 1477 } });
    expect(await (await app.request("/v1/models")).json()).toMatchObject({ active: "vision-lora-edge", source: "builtin" });
  });

  test("GET /metrics speaks Prometheus with DCGM names and labels", async () => {
    host.grant(lease);
    const res = await app.request("/metrics");
    expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    const text = await res.text();
    expect(text).toContain("# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n");
    expect(text).toContain(
      'DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-00000000-0000-4000-8000-000000000000",pci_bus_id="00000000:01:00.0",device="nvidia0",modelName="Mock 4090",Hostname="edge-01"} 6144\n',
    );
    expect(text).toContain('gpu_bridge_leases_active{gpu_id="GPU-0"} 1\n');
    expect(text).toContain('gpu_bridge_leased_memory_mib{gpu_id="GPU-0"} 4096\n');
    expect(text).toContain('gpu_bridge_jobs{state="RUNNING"} 0\n');
    expect(text).toMatch(/^DCGM_FI_DEV_POWER_USAGE\{gpu="1",[^}]*\} 60\.5$/m);
    expect(text).not.toMatch(/ (null|NaN|undefined)$/m); // every sample is a number
  });
});

describe("auth", () => {
  /** Any use of it fails the request with a 500: a handler that ran instead of the 401. */
  const untouchable = new Proxy({}, {
    get: (_t, key) => {
      throw new Error(`a handler ran without the token (read ${String(key)})`);
    },
  });

  test("every mutating request needs the bearer token, on every route and with every method it has: 401, nothing changed", async () => {
    // With shard and telemetry routes too (their handlers must never be reached).
    const full = createApp({
      token: TOKEN,
      log: memoryLogger().log,
      bridge: {
        ...bridgeFacade({
          version: "9.9.9",
          hostname: "edge-01",
          gpus: () => MOCK_GPUS,
          stats: () => Promise.resolve(mockStats()),
          host,
          models: { catalog: () => catalog, setActive: (id) => void (catalog = { ...catalog, active: id }) },
        }),
        telemetry: untouchable as never,
        vram: untouchable as never,
      },
    });
    const granted = host.grant(lease);
    const ids: Record<string, string> = { ":id": granted.id };
    const concrete = (path: string) => path.replace(/:[a-z]+/g, (p) => ids[p] ?? "x");
    const mutating = full.routes.filter((r) => !["GET", "HEAD", "ALL"].includes(r.method)).map((r) => `${r.method} ${r.path}`);
    // The whole list: a route added later lands here and is covered by the loops below.
    expect(mutating.sort()).toEqual([
      "DELETE /v1/leases/:id",
      "DELETE /v1/shards/:id",
      "POST /v1/gpus/:id/ctl",
      "POST /v1/leases",
      "POST /v1/leases/:id/jobs",
      "POST /v1/leases/:id/renew",
      "POST /v1/leases/:id/shards",
      "POST /v1/shards/:id/execute-check",
      "POST /v1/shards/:id/verify",
      "POST /v1/telemetry",
      "POST /v1/vram/sets/:id/execute-check",
      "PUT /v1/models/:id/approval",
      "PUT /v1/models/active",
    ]);
    const paths = new Set([...full.routes.map((r) => r.path).filter((p) => p !== "/*"), "/v1/no-such-route"]);
    const requests: [string, string, Record<string, string>][] = [];
    for (const path of paths) {
      for (const method of ["POST", "PUT", "DELETE", "PATCH"]) requests.push([method, concrete(path), {}]);
    }
    for (const bad of ["Bearer wrong", TOKEN, `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
      for (const m of mutating) requests.push([m.split(" ")[0]!, concrete(m.split(" ")[1]!), { Authorization: bad }]);
    }
    // A method the path does not have is a 405 whoever asks (test/api/method-not-allowed.test.ts);
    // every other one needs the token.
    const has = (method: string, path: string) =>
      full.routes.some((r) => r.method === method && concrete(r.path) === path) || !full.routes.some((r) => concrete(r.path) === path);
    let refused = 0;
    for (const [method, path, headers] of requests) {
      const res = await full.request(path, { method, headers: { "content-type": "application/json", ...headers }, body: "{}" });
      const status = has(method, path) ? 401 : 405;
      expect({ method, path, status: res.status }).toEqual({ method, path, status });
      if (status === 401) refused++, expect(res.headers.get("www-authenticate")).toBe('Bearer realm="gpu-bridge-host"');
    }
    expect(refused).toBeGreaterThan(mutating.length * 4); // the token's refusals, not only 405s
    expect(host.leases.list().map((l) => [l.id, l.state, l.expires_at])).toEqual([[granted.id, "ACTIVE", granted.expires_at]]);
    expect(catalog.active).toBe(builtinCatalog().active);
    // The same requests with the token reach their handlers (the 401 above was the token's doing).
    const deleted = await full.request(`/v1/leases/${granted.id}`, { method: "DELETE", headers: auth });
    expect(deleted.status).toBe(200);
  });
});

describe("leases and jobs", () => {
  test("POST /v1/leases -> 201 with id, expiry and Location; GET, renew, DELETE", async () => {
    const res = await app.request("/v1/leases", json(lease));
    expect(res.status).toBe(201);
    const l = (await res.json()) as { id: string; expires_at: string };
    expect(res.headers.get("location")).toBe(`/v1/leases/${l.id}`);
    expect(l).toMatchObject({ gpu_id: "GPU-0", worker_id: "w1", state: "ACTIVE", priority: 5 });
    expect(Date.parse(l.expires_at)).toBeGreaterThan(Date.now() + 50_000);
    expect((await app.request(`/v1/leases/${l.id}`)).status).toBe(200);
    const renewed = await app.request(`/v1/leases/${l.id}/renew`, json({ ttl_s: 600 }));
    expect(Date.parse(((await renewed.json()) as { expires_at: string }).expires_at)).toBeGreaterThan(Date.now() + 500_000);
    const gone = await app.request(`/v1/leases/${l.id}?reason=finished`, { method: "DELETE", headers: auth });
    expect(await gone.json()).toMatchObject({ state: "RELEASED", released_reason: "finished" });
    expect((await (await app.request("/v1/leases?state=active")).json()) as unknown[]).toEqual([]);
  });

  test("409 for memory the GPU does not have, with the numbers", async () => {
    await app.request("/v1/leases", json({ ...lease, mem_mb: 20000 }));
    const res = await app.request("/v1/leases", json({ ...lease, worker_id: "w2", mem_mb: 8192 }));
    expect(res.status).toBe(409);
    expect(await error(res)).toEqual({
      code: "insufficient",
      message: "insufficient memory on GPU-0: requested 8192 MiB, 4576 MiB unleased",
      field: "mem_mb",
    });
  });

  test("422 names the field: ranges, unknown fields, missing fields", async () => {
    const cases: [unknown, string, string][] = [
      [{ ...lease, priority: 300 }, "priority", "priority must be an integer from 0 to 255, got 300"],
      [{ ...lease, mem_mb: 1.5 }, "mem_mb", `mem_mb must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}, got 1.5`],
      [{ ...lease, mem_mb: "4096" }, "mem_mb", "mem_mb must be a number"],
      [{ ...lease, memory: 5 }, "memory", 'unknown field "memory"'],
      [{ gpu_id: "GPU-0" }, "worker_id", "worker_id is required"],
    ];
    for (const [body, field, message] of cases) {
      const res = await app.request("/v1/leases", json(body));
      expect(res.status).toBe(422);
      expect(await error(res)).toMatchObject({ field, message });
    }
  });

  test("400 bad JSON, 415 wrong content type, 413 too large", async () => {
    expect((await app.request("/v1/leases", json("{not json"))).status).toBe(400);
    const wrongType = await app.request("/v1/leases", { method: "POST", headers: { ...auth, "content-type": "text/plain" }, body: "{}" });
    expect(wrongType.status).toBe(415);
    expect((await error(wrongType)).message).toBe('Content-Type must be application/json, got "text/plain"');
    const big = await app.request("/v1/leases", json({ ...lease, pad: "x".repeat(1024 * 1024) }));
    expect(big.status).toBe(413);
  });

  test("405 with Allow for a known path and another method", async () => {
    const res = await app.request("/v1/leases", { method: "PATCH", headers: auth });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD, POST");
  });

  test("POST /v1/leases/{id}/jobs -> 202, then GET /v1/jobs/{job}; 403 once the lease ended", async () => {
    const l = (await (await app.request("/v1/leases", json(lease))).json()) as { id: string };
    const res = await app.request(`/v1/leases/${l.id}/jobs`, json(job("j1")));
    expect(res.status).toBe(202);
    expect(res.headers.get("location")).toBe("/v1/jobs/j1");
    await until(() => host.jobs.get("j1")?.state === "OK");
    const RESULT = new Uint8Array([0, 0, 48, 65, 0, 0, 176, 65]); // what the fake runner computed
    expect(await (await app.request("/v1/jobs/j1")).json()).toMatchObject({
      job: "j1",
      state: "OK",
      detail: "completed",
      output: { bytes: 8, sha256: sha256Hex(RESULT), href: "/v1/jobs/j1/result", available: true },
    });
    const raw = await app.request("/v1/jobs/j1/result");
    expect(raw.headers.get("content-type")).toBe("application/octet-stream");
    expect(new Uint8Array(await raw.arrayBuffer())).toEqual(RESULT);
    expect((await app.request(`/v1/leases/${l.id}/jobs`, json(job("j1")))).status).toBe(409);
    const bad = await app.request(`/v1/leases/${l.id}/jobs`, json({ ...job("j2"), bytes_hash: "md5:1" }));
    expect(bad.status).toBe(422);
    expect(await error(bad)).toMatchObject({
      field: "bytes_hash",
      message: "Invalid job descriptor: bytes_hash: bytes_hash must use sha256:<hex> format",
    });
    await app.request(`/v1/leases/${l.id}`, { method: "DELETE", headers: auth });
    const late = await app.request(`/v1/leases/${l.id}/jobs`, json(job("j3")));
    expect(late.status).toBe(403);
    expect((await app.request("/v1/jobs/nope")).status).toBe(404);
  });

  test("POST /v1/gpus/{id}/ctl takes one text line", async () => {
    const post = (body: string, type = "text/plain") =>
      app.request("/v1/gpus/GPU-1/ctl", { method: "POST", headers: { ...auth, "content-type": type }, body });
    const res = await post("LEASE w9 mem=1024 streams=1 priority=2\n");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, lease: { worker_id: "w9", gpu_id: "GPU-1" } });
    expect(await (await app.request("/v1/gpus/GPU-1/ctl")).text()).toBe("LEASE GPU-1\nLEASE w9 mem=1024 streams=1 priority=2\n");
    expect((await post("FROBNICATE")).status).toBe(422);
    expect((await post("RESET", "application/json")).status).toBe(415);
    expect(await (await post("RESET")).json()).toEqual({ ok: true, message: "reset GPU-1: 1 lease(s) released" });
  });
});

describe("models", () => {
  test("PUT /v1/models/active switches the active model", async () => {
    const put = (body: unknown) => app.request("/v1/models/active", { ...json(body), method: "PUT" });
    expect(await (await put({ model_id: "vision-base-v1" })).json()).toEqual({ active: "vision-base-v1" });
    const unknown = await put({ model_id: "ghost" });
    expect(unknown.status).toBe(422);
    expect(await error(unknown)).toMatchObject({ field: "model_id" });
  });

  test("without a registry it is a 409 that says what to do", async () => {
    host.close();
    build({ catalog: () => catalog });
    const res = await app.request("/v1/models/active", { ...json({ model_id: "vision-base-v1" }), method: "PUT" });
    expect(res.status).toBe(409);
    expect((await error(res)).message).toContain("--registry DIR");
  });
});

describe("cdi", () => {
  const spec = { cdiVersion: "0.5.0", kind: "cohesix/gpu", devices: [{ name: "0", containerEdits: { env: ["A=1"] } }] };
  function withCdi(current: typeof spec | null) {
    host = new HostState({ gpus: () => MOCK_GPUS, runner: ok, runnerKind: "cpu", log: memoryLogger().log, onChange: () => changes++ });
    const cdi = { path: "/run/cdi/gpu-bridge-host.json", current: () => current, deviceFor: (id: string) => `cohesix/gpu=${id}` };
    const bridge = bridgeFacade({
      gpus: () => MOCK_GPUS,
      stats: () => Promise.resolve(mockStats()),
      host,
      models: { catalog: () => catalog },
      cdi,
    });
    app = createApp({ token: TOKEN, log: memoryLogger().log, bridge });
  }

  test("GET /v1/cdi without --cdi-dir is a 404 that says how to turn it on", async () => {
    const res = await app.request("/v1/cdi");
    expect(res.status).toBe(404);
    expect((await error(res)).message).toContain("serve --cdi-dir DIR");
    expect((await app.request("/v1/cdi", { method: "DELETE", headers: auth })).status).toBe(405);
  });

  test("GET /v1/cdi serves the spec as written, 503 naming the file while there is none", async () => {
    host.close();
    withCdi(spec);
    expect(await (await app.request("/v1/cdi")).json()).toEqual(spec);
    host.close();
    withCdi(null);
    const res = await app.request("/v1/cdi");
    expect(res.status).toBe(503);
    expect((await error(res)).message).toContain("/run/cdi/gpu-bridge-host.json is absent");
  });

  test("a live lease's view names its CDI device; a released one's does not", async () => {
    host.close();
    withCdi(spec);
    const granted = (await (await app.request("/v1/leases", json(lease))).json()) as { id: string; cdi_device?: string };
    expect(granted.cdi_device).toBe(`cohesix/gpu=${granted.id}`);
    expect(((await (await app.request(`/v1/leases/${granted.id}`)).json()) as { cdi_device?: string }).cdi_device).toBe(
      `cohesix/gpu=${granted.id}`,
    );
    const released = (await (await app.request(`/v1/leases/${granted.id}`, { method: "DELETE", headers: auth })).json()) as Record<
      string,
      unknown
    >;
    expect(released.state).toBe("RELEASED");
    expect(released.cdi_device).toBeUndefined();
  });
});
