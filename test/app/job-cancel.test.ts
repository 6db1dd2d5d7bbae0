/**
 * The daemon survives every way a job with megabytes of operands can end early (its timeout,
 * a DELETE of its lease, RESET in ctl, its lease's TTL) at every stage (queued, operands being
 * written, running), over the HTTP API against the real `run-kernel` children; and SIGTERM
 * with jobs running and queued exits 0 with no child left alive and none started after it.
 * (`make bench-cancel` runs 1,000 random cancellations under load.)
 */
import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../../src/util/sha256.ts";
import { tempDir, until } from "../helpers.ts";
import { alive, kernelChildren, LISTENING, spawnBridge } from "../spawn.ts";

const state = tempDir("gbh-cancel-");
afterAll(() => state.cleanup());

/** A vadd job on `mib` MiB of operands, or a matmul (slow enough to be running when ended). */
function descriptor(id: string, o: { kernel?: "vadd" | "matmul"; mib?: number; timeout_ms?: number } = {}): string {
  const kernel = o.kernel ?? "vadd";
  const bytes = kernel === "vadd" ? new Uint8Array((o.mib ?? 4) * 1048576) : new Uint8Array(8 * 640 * 640);
  return JSON.stringify({
    job: id,
    kernel,
    grid: [1, 1, 1],
    block: [1, 1, 1],
    bytes_hash: `sha256:${sha256Hex(bytes)}`,
    inputs: [],
    outputs: [],
    timeout_ms: o.timeout_ms ?? 120_000,
    payload_b64: Buffer.from(bytes).toString("base64"),
  });
}

test("jobs ended by timeout, release, RESET and TTL at every stage end alone; SIGTERM leaves no child behind", async () => {
  const bridge = spawnBridge(["serve", "--mock", "--listen", "127.0.0.1:0", "--state-dir", state.path]);
  const seen = new Set<number>();
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      for (const pid of kernelChildren(bridge.proc.pid)) seen.add(pid);
      await Bun.sleep(5);
    }
  })();
  try {
    const base = `http://127.0.0.1:${(await bridge.waitFor(LISTENING, 15_000))[1]}`;
    const token = readFileSync(join(state.path, "api-token"), "utf8").trim();
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const lease = async (gpu: string, worker: string, ttl = 600, streams = 4): Promise<string> => {
      const res = await fetch(`${base}/v1/leases`, {
        method: "POST",
        headers,
        body: JSON.stringify({ gpu_id: gpu, worker_id: worker, mem_mb: 2048, streams, ttl_s: ttl, priority: 1 }),
      });
      expect(res.status).toBe(201);
      return ((await res.json()) as { id: string }).id;
    };
    const submit = async (leaseId: string, body: string) => {
      const res = await fetch(`${base}/v1/leases/${leaseId}/jobs`, { method: "POST", headers, body });
      expect(res.status).toBe(202);
      await res.text();
    };
    const ended = async (job: string) => {
      let j = { state: "", detail: "" };
      await until(
        () => (void fetch(`${base}/v1/jobs/${job}`).then((r) => r.json()).then((v) => (j = v as typeof j)),
          ["OK", "ERR"].includes(j.state)),
        30_000,
        `job ${job} to end`,
      );
      return j;
    };
    const ids: string[] = [];

    // Timeouts of a few ms: while queued, while the operands are written, while running.
    const t = await lease("GPU-0", "timeouts");
    for (const [i, ms] of [1, 2, 5, 20, 80].entries()) {
      await submit(t, descriptor(`timeout-${i}`, { mib: i === 0 ? 16 : 2, timeout_ms: ms }));
      ids.push(`timeout-${i}`);
    }
    // DELETE of the lease right after submitting, and a little later.
    for (const [i, ms] of [0, 2, 10, 60].entries()) {
      const l = await lease("GPU-0", `release-${i}`);
      await submit(l, descriptor(`release-${i}`, { mib: 2 }));
      await Bun.sleep(ms);
      expect((await fetch(`${base}/v1/leases/${l}`, { method: "DELETE", headers })).status).toBe(200);
      ids.push(`release-${i}`);
    }
    // RESET in ctl, with two jobs (one running or being fed, one queued behind it).
    for (const [i, ms] of [0, 30].entries()) {
      const l = await lease("GPU-1", `reset-${i}`, 600, 1);
      await submit(l, descriptor(`reset-${i}a`, { mib: 2 }));
      await submit(l, descriptor(`reset-${i}b`, { mib: 1 }));
      await Bun.sleep(ms);
      const res = await fetch(`${base}/v1/gpus/GPU-1/ctl`, {
        method: "POST",
        headers: { ...headers, "content-type": "text/plain" },
        body: "RESET",
      });
      expect(res.status).toBe(200);
      ids.push(`reset-${i}a`, `reset-${i}b`);
    }
    // The lease's TTL (1 s) runs out under a matmul.
    const e = await lease("GPU-1", "expiry", 1);
    await submit(e, descriptor("expiry", { kernel: "matmul" }));
    ids.push("expiry");

    for (const id of ids) {
      const j = await ended(id);
      // Each ends as its own outcome; one that beat its end finished OK.
      expect(`${id}: ${j.state === "OK" ? "OK" : j.detail}`).toMatch(/: (OK|TIMEOUT|LEASE-ENDED)$/);
    }
    expect((await fetch(`${base}/healthz`)).status).toBe(200);

    // SIGTERM with one job running and two queued: exit 0, no child alive, none started after.
    const s = await lease("GPU-0", "shutdown", 600, 1);
    for (const k of [0, 1, 2]) await submit(s, descriptor(`shutdown-${k}`, { kernel: "matmul" }));
    await until(() => kernelChildren(bridge.proc.pid).length === 1, 15_000, "the running job's child");
    const before = new Set(seen);
    bridge.proc.kill("SIGTERM");
    expect(await bridge.proc.exited).toBe(0);
    watching = false;
    await watcher;
    const left = [...seen].filter(alive);
    expect(left).toEqual([]);
    expect([...seen].filter((p) => !before.has(p))).toEqual([]);
    expect(bridge.log()).not.toContain("EPIPE");
  } finally {
    watching = false;
    bridge.proc.kill("SIGKILL");
  }
}, 90_000);
