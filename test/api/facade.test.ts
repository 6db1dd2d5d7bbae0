/**
 * The façade is narrow: the routes get telemetry's two operations (accept, state) and the
 * shard store's routes' operations, never the spool, the forwarder or the whole store. The
 * type assertions fail `make typecheck` (tsc over test/) the day the façade hands one out; the
 * test shows the telemetry routes need nothing more.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";
import type { ApiShardStore, ApiTelemetry, BridgeFacade } from "../../src/api/facade.ts";
import { bridgeFacade } from "../../src/app/bridge.ts";
import { HostState } from "../../src/host/state.ts";
import { MOCK_GPUS, mockStats } from "../../src/inventory/mock.ts";
import type { Runner } from "../../src/job/runner.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { Spool } from "../../src/telemetry/spool.ts";
import { telemetryView } from "../../src/telemetry/view.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";
import { record } from "../telemetry/helpers.ts";

// Compile-time: what the façade does not hand out.
type Has<T, K extends string> = K extends keyof T ? true : false;
const noSpool: Has<ApiTelemetry, "spool"> = false;
const noForwarder: Has<ApiTelemetry, "forwarder"> = false;
const noClose: Has<ApiShardStore, "close"> = false;
const noCorrupt: Has<ApiShardStore, "corrupt"> = false;
const noGate: Has<ApiShardStore, "gate"> = false;
const noBackendAlloc: Has<ApiShardStore["backend"], "alloc"> = false;
const noHost: Has<BridgeFacade, "host"> = false;

let dir: { path: string; cleanup: () => void };
let spool: Spool;
let host: HostState;
beforeEach(() => {
  dir = tempDir("gbh-facade-");
  spool = Spool.open({ dir: dir.path, log: memoryLogger().log, clock: new FakeClock() });
});
afterEach(() => {
  host.close();
  spool.close();
  dir.cleanup();
});

test("the telemetry routes and /metrics work on a façade that holds only accept() and state()", async () => {
  expect([noSpool, noForwarder, noClose, noCorrupt, noGate, noBackendAlloc, noHost].every((has) => has === false)).toBe(true);
  const idle: Runner = { run: () => new Promise(() => {}) };
  const { log } = memoryLogger();
  host = new HostState({ gpus: () => MOCK_GPUS, runner: idle, runnerKind: "cpu", log, onChange: () => {} });
  let woken = 0;
  const view = telemetryView(spool, null, "edge-7", () => woken++);
  const telemetry: ApiTelemetry = { accept: view.accept, state: view.state }; // nothing else
  const app = createApp({
    token: "t",
    log,
    bridge: bridgeFacade({
      gpus: () => MOCK_GPUS,
      stats: () => Promise.resolve(mockStats()),
      host,
      models: { catalog: builtinCatalog },
      telemetry,
    }),
  });
  const res = await app.request("/v1/telemetry", {
    method: "POST",
    headers: { Authorization: "Bearer t", "content-type": "application/json" },
    body: JSON.stringify([record(1), record(2)]),
  });
  expect(res.status).toBe(202);
  expect(await res.json()).toEqual({ accepted: 2, spooled: 2 });
  expect(woken).toBe(1);
  const got = (await (await app.request("/v1/telemetry")).json()) as Record<string, unknown>;
  expect(got).toMatchObject({ device_id: "edge-7", spooled_records: 2, forwarding: "disabled (no --publish)", queen_segment: null });
  expect(await (await app.request("/metrics")).text()).toContain("\ngpu_bridge_telemetry_spooled_records 2\n");
});
