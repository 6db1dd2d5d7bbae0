/**
 * A running job's `run-kernel` child dies with the bridge, however the bridge dies. The
 * child runs a CPU matmul that takes many seconds; the bridge is SIGKILLed mid-job.
 */
import { afterEach, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../../src/util/sha256.ts";
import { REPO, tempDir, until } from "../helpers.ts";
import { alive, kernelChildren, LISTENING, spawnBridge } from "../spawn.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

for (const signal of ["SIGKILL", "SIGTERM"] as const) {
  test(`a job's child process dies when the bridge gets ${signal} mid-job`, async () => {
    const state = tempDir("gbh-f4-");
    cleanups.push(state.cleanup);
    // The seed's form: the shipped matmul staged as a bundle, its operands generated from the grid.
    const ptx = readFileSync(join(REPO, "src/job/ptx/generated/matmul.ptx"));
    writeFileSync(join(state.path, "matmul.ptx"), ptx);
    const bridge = spawnBridge(["serve", "--mock", "--listen", "127.0.0.1:0", "--state-dir", state.path, "--bundle-dir", state.path]);
    cleanups.push(() => bridge.proc.kill("SIGKILL"));
    const port = Number((await bridge.waitFor(LISTENING, 15_000))[1]);
    const token = readFileSync(join(state.path, "api-token"), "utf8").trim();
    const base = `http://127.0.0.1:${port}`;
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const lease = await fetch(`${base}/v1/leases`, {
      method: "POST",
      headers,
      body: JSON.stringify({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 256, streams: 1, ttl_s: 300, priority: 1 }),
    }).then((r) => r.json()) as { id: string };
    const res = await fetch(`${base}/v1/leases/${lease.id}/jobs`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        job: "slow",
        kernel: "matmul",
        grid: [12, 1, 1],
        block: [256, 1, 1],
        bytes_hash: `sha256:${sha256Hex(ptx)}`,
        inputs: ["/bundles/matmul.ptx"],
        outputs: [],
        timeout_ms: 600_000,
      }),
    });
    expect(res.status).toBe(202);
    let children: number[] = [];
    await until(() => (children = kernelChildren(bridge.proc.pid, true)).length === 1, 15_000, "the run-kernel child");
    const child = children[0]!;
    cleanups.push(() => {
      try {
        process.kill(child, "SIGKILL");
      } catch { /* gone, as it should be */ }
    });
    // Let the child get past its start-up and into the kernel.
    await Bun.sleep(1500);
    expect(alive(child)).toBe(true);
    bridge.proc.kill(signal);
    await bridge.proc.exited;
    await until(() => !alive(child), 5000, `run-kernel child ${child} to die with the bridge`);
  }, 40_000);
}
