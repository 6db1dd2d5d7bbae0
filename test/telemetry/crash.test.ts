/** The daemon killed with SIGKILL mid-forwarding and restarted: every record arrives exactly once. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { LISTENING, spawnBridge } from "../spawn.ts";
import { tempDir, until } from "../helpers.ts";
import { record, tokenCounts } from "./helpers.ts";

let mock: MockConsole;
let state: { path: string; cleanup: () => void };
beforeAll(async () => {
  mock = await startMockConsole(bunRuntime(), { token: "t" });
  state = tempDir("gbh-crash-");
});
afterAll(async () => {
  await mock.close();
  state.cleanup();
});

function daemon() {
  const bridge = spawnBridge([
    "serve",
    "--mock",
    "--publish",
    "--interval-ms",
    "60000",
    "--tcp-port",
    String(mock.port),
    "--auth-token",
    "t",
    "--state-dir",
    state.path,
    "--listen",
    "127.0.0.1:0",
    "--device-id",
    "edge-7",
  ]);
  return { proc: bridge.proc, port: async () => (await bridge.waitFor(LISTENING))[1] };
}

test("SIGKILL mid-stream, restart: nothing lost, nothing duplicated", { timeout: 60_000 }, async () => {
  mock.state.faults.ackDelayMs = 2; // slow enough to kill it mid-stream
  const first = daemon();
  const base = `http://127.0.0.1:${await first.port()}`;
  const token = readFileSync(join(state.path, "api-token"), "utf8").trim();
  const body = Array.from({ length: 60 }, (_, i) => JSON.stringify(record(i))).join("\n");
  const res = await fetch(`${base}/v1/telemetry`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "content-type": "application/x-ndjson" },
    body,
  });
  expect(res.status).toBe(202);
  expect(await res.json()).toMatchObject({ accepted: 60 });
  await until(() => tokenCounts(mock.state.queen.delivered("edge-7")).length >= 10, 15_000, "some records forwarded");
  first.proc.kill("SIGKILL");
  await first.proc.exited;
  const before = tokenCounts(mock.state.queen.delivered("edge-7")).length;
  expect(before).toBeLessThan(60);

  mock.state.faults.ackDelayMs = 0;
  const second = daemon();
  try {
    await until(() => tokenCounts(mock.state.queen.delivered("edge-7")).length >= 60, 20_000, "all 60 records at the Queen");
    await Bun.sleep(100);
    expect(tokenCounts(mock.state.queen.delivered("edge-7"))).toEqual(Array.from({ length: 60 }, (_, i) => 100 + i));
  } finally {
    second.proc.kill("SIGTERM");
    expect(await second.proc.exited).toBe(0);
  }
});
