/**
 * A read is a read: GET /v1/gpus, /v1/gpus/{id}, /v1/bridge and /metrics serve the stats as last
 * sampled, and only the sampler's period on the bridge's clock polls the hardware.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { createBridge } from "../../src/app/bridge.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { mockBackend, mockStats } from "../../src/inventory/mock.ts";
import type { InventoryBackend } from "../../src/inventory/types.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-stats-")));
afterEach(() => dir.cleanup());

test("GETs and scrapes never poll the GPUs; the sampler does, once per period of the bridge's clock", async () => {
  let polls = 0;
  let power = 100;
  const backend: InventoryBackend = {
    ...mockBackend(),
    stats: () => (polls++, Promise.resolve(mockStats().map((s) => ({ ...s, power_w: power })))),
  };
  const c = parseCommand(["serve", "--mock", "--no-api", "--state-dir", join(dir.path, "state")], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const clock = new FakeClock();
  const { log } = memoryLogger();
  const bridge = await createBridge(c.options, { runtime: bunRuntime(), log, backend }, { noJournal: true, clock });
  const app = createApp({ token: "t", log, bridge });
  const gpu0 = async () => ((await (await app.request("/v1/gpus/GPU-0")).json()) as { stats: { power_w: number } }).stats.power_w;
  try {
    expect(polls).toBe(1); // the first sample, taken at start
    for (let i = 0; i < 5; i++) {
      for (const path of ["/v1/gpus", "/v1/gpus/GPU-0", "/v1/bridge", "/metrics"]) expect((await app.request(path)).status).toBe(200);
    }
    expect(polls).toBe(1);
    expect(await gpu0()).toBe(100);
    power = 200;
    clock.advance(DEFAULTS.statsSampleMs - 1);
    expect(await gpu0()).toBe(100);
    await clock.run(1);
    expect(polls).toBe(2);
    expect(await gpu0()).toBe(200);
    expect(await (await app.request("/metrics")).text()).toContain('DCGM_FI_DEV_POWER_USAGE{gpu="0"');
    expect(polls).toBe(2);
  } finally {
    await bridge.stop();
  }
});
