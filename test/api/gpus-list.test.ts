/**
 * GET /v1/gpus keeps its text between requests and makes it again only when what it shows
 * changed: a lease taken or released, a new stats sample, a new inventory. Each answer is checked
 * against GET /v1/gpus/{id}, which builds its view afresh every time.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";
import { bridgeFacade } from "../../src/app/bridge.ts";
import type { GpuInfo } from "../../src/contract/info.ts";
import { HostState } from "../../src/host/state.ts";
import type { GpuStats } from "../../src/inventory/stats.ts";
import { MOCK_GPUS, mockStats } from "../../src/inventory/mock.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { memoryLogger } from "../helpers.ts";

const TOKEN = "list-token-0123456789";
const auth = { Authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
let gpus: readonly GpuInfo[];
let stats: readonly GpuStats[];
let host: HostState;
let app: ReturnType<typeof createApp>;

function build(asPromise: boolean) {
  host = new HostState({
    gpus: () => gpus,
    runner: { run: () => Promise.reject(new Error("no job runs here")) },
    runnerKind: "cpu",
    log: memoryLogger().log,
    onChange: () => {},
  });
  const bridge = bridgeFacade({
    version: "9.9.9",
    hostname: "edge-01",
    gpus: () => gpus,
    // The bridge's sampler hands the same array until its next sample.
    stats: () => (asPromise ? Promise.resolve(stats) : stats),
    host,
    models: { catalog: () => builtinCatalog() },
  });
  app = createApp({ token: TOKEN, log: memoryLogger().log, bridge });
}

beforeEach(() => {
  gpus = MOCK_GPUS;
  stats = mockStats();
});
afterEach(() => host.close());

type View = { id: string; leases: { active: number; mem_mb: number; streams: number }; stats: { power_w: number } | null };
/** The list, checked item by item against the single-GPU route. */
async function list(): Promise<View[]> {
  const res = await app.request("/v1/gpus");
  expect(res.headers.get("content-type")).toBe("application/json");
  const views = (await res.json()) as View[];
  for (const v of views) expect(v).toEqual(await (await app.request(`/v1/gpus/${v.id}`)).json() as View);
  return views;
}

for (const asPromise of [false, true]) {
  describe(`GET /v1/gpus, stats handed ${asPromise ? "as a promise" : "as the sample itself"}`, () => {
    beforeEach(() => build(asPromise));

    test("answers the same bytes while nothing changes", async () => {
      const a = await (await app.request("/v1/gpus")).text();
      const b = await (await app.request("/v1/gpus")).text();
      expect(b).toBe(a);
      expect((JSON.parse(a) as View[]).map((v) => v.id)).toEqual(MOCK_GPUS.map((g) => g.id));
    });

    test("shows a lease as soon as it is taken, and its end as soon as it is released", async () => {
      expect((await list())[0]!.leases).toEqual({ active: 0, mem_mb: 0, streams: 0 });
      const body = JSON.stringify({ gpu_id: MOCK_GPUS[0]!.id, worker_id: "w", mem_mb: 512, streams: 2, ttl_s: 60 });
      const granted = (await (await app.request("/v1/leases", { method: "POST", headers: auth, body })).json()) as { id: string };
      expect((await list())[0]!.leases).toEqual({ active: 1, mem_mb: 512, streams: 2 });
      // Same count, other memory: still a change.
      host.leases.release(granted.id, "test");
      host.grant({ gpu_id: MOCK_GPUS[0]!.id, worker_id: "w2", mem_mb: 256, streams: 2, ttl_s: 60, priority: 0 });
      expect((await list())[0]!.leases).toEqual({ active: 1, mem_mb: 256, streams: 2 });
    });

    test("shows a new stats sample and a new inventory", async () => {
      await list();
      stats = stats.map((s) => ({ ...s, power_w: 123.5 }));
      expect((await list()).map((v) => v.stats?.power_w)).toEqual(MOCK_GPUS.map(() => 123.5));
      gpus = MOCK_GPUS.slice(1);
      expect((await list()).map((v) => v.id)).toEqual(MOCK_GPUS.slice(1).map((g) => g.id));
    });
  });
}
