/**
 * The compiled binary end to end, as an operator runs it: `serve --mock --publish` against the
 * mock console, driven with real HTTP requests; its job runs in the binary's own `run-kernel`.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { LISTENING, spawnBridge } from "../spawn.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { REPO, tempDir, until } from "../helpers.ts";

const BIN = join(REPO, "dist", "gpu-bridge-host");
/**
 * Deadlines of this test's own, far above what any step takes: each step waits for its event
 * (a log line, a job state, a file in the VM), so a loaded machine makes it slower, never wrong.
 */
const STEP_MS = 60_000;
const TEST_MS = 4 * STEP_MS;

/** Polls `read` until `done` says its value is final; throws naming `what` after `ms`. */
async function eventually<T>(read: () => Promise<T>, done: (v: T) => boolean, what: string, ms = STEP_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}; last: ${JSON.stringify(v)}`);
    await Bun.sleep(50);
  }
}
let mock: MockConsole;
let state: { path: string; cleanup: () => void };
beforeAll(async () => {
  mock = await startMockConsole(bunRuntime(), { token: "console-token" });
  state = tempDir("gbh-e2e-");
});
afterAll(async () => {
  await mock.close();
  state.cleanup();
});

test.skipIf(!existsSync(BIN))("the compiled binary serves the API, runs a job and mirrors it into the VM (needs make build)", async () => {
  const bridge = spawnBridge(
    [
      "serve",
      "--mock",
      "--publish",
      "--interval-ms",
      "60000",
      "--tcp-port",
      String(mock.port),
      "--auth-token",
      "console-token",
      "--listen",
      "127.0.0.1:0",
      "--state-dir",
      state.path,
    ],
    [BIN],
  );
  const proc = bridge.proc;
  try {
    const base = `http://127.0.0.1:${(await bridge.waitFor(LISTENING, STEP_MS))[1]}`;
    const token = readFileSync(join(state.path, "api-token"), "utf8").trim();
    const auth = { Authorization: `Bearer ${token}`, "content-type": "application/json" };

    expect(await (await fetch(`${base}/healthz`)).json()).toMatchObject({ status: "ok", gpus: 2 });
    const unauthorised = await fetch(`${base}/v1/leases`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(unauthorised.status).toBe(401);

    const leaseRes = await fetch(`${base}/v1/leases`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ gpu_id: "GPU-0", worker_id: "e2e", mem_mb: 2048, streams: 1, ttl_s: 120, priority: 7 }),
    });
    expect(leaseRes.status).toBe(201);
    const lease = (await leaseRes.json()) as { id: string };

    // As Cohesix's worker-gpu sends it: the operands (2 x 2 matrices a then b, little-endian f32), one thread.
    const operands = Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]).buffer);
    const jobRes = await fetch(`${base}/v1/leases/${lease.id}/jobs`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        job: "e2e-matmul",
        kernel: "matmul",
        grid: [1, 1, 1],
        block: [1, 1, 1],
        bytes_hash: `sha256:${sha256Hex(operands)}`,
        inputs: ["/bundles/matmul.ptx"],
        outputs: ["/worker/e2e/result"],
        timeout_ms: 20_000,
        payload_b64: operands.toString("base64"),
      }),
    });
    expect(jobRes.status).toBe(202);
    const job = await eventually(
      async () => (await (await fetch(`${base}/v1/jobs/e2e-matmul`)).json()) as { state: string; result: { size: number } | null },
      (j) => j.state === "OK" || j.state === "ERR",
      "the job to finish",
    );
    expect(job).toMatchObject({ state: "OK", result: { size: 2 } });
    const result = new Float32Array(await (await fetch(`${base}/v1/jobs/e2e-matmul/result`)).arrayBuffer());
    expect([...result]).toEqual([19, 22, 43, 50]);

    await until(
      () => mock.state.read("/gpu/GPU-0/status")?.includes('"job":"e2e-matmul","state":"OK"') === true,
      STEP_MS,
      "the status in the VM",
    );
    expect(mock.state.read("/gpu/GPU-0/ctl")).toBe("LEASE GPU-0\nLEASE e2e mem=2048 streams=1 priority=7\n");
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('gpu_bridge_jobs{state="OK"} 1');
    expect(metrics).toMatch(/gpu_bridge_publishes_total [1-9]/);
    expect(bridge.log()).not.toContain(token);
  } finally {
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }
}, TEST_MS);
