/**
 * The compiled binary's worker threads: the tree workers and the audit trail's worker must be
 * built into it (make build passes them as extra entry points), or the CPU path and the trail
 * silently fall back to the bridge's one thread.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { verifyTrail } from "../../src/audit/verify.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { LISTENING, spawnBridge } from "../spawn.ts";
import { REPO, tempDir } from "../helpers.ts";
import { pattern } from "../vram/vectors.ts";

const BIN = join(REPO, "dist", "gpu-bridge-host");
const state = tempDir("gbh-e2e-vram-");
afterAll(() => state.cleanup());

test.skipIf(!existsSync(BIN))(
  "the compiled binary seals and verifies a shard with its tree workers, its trail on its worker (needs make build)",
  async () => {
    const bridge = spawnBridge(["serve", "--mock", "--listen", "127.0.0.1:0", "--state-dir", state.path, "--log-level", "debug"], [BIN]);
    try {
      const base = `http://127.0.0.1:${(await bridge.waitFor(LISTENING))[1]}`;
      const workers = Number((await bridge.waitFor(/CPU tree path runs on (\d+) worker thread/))[1]);
      expect(workers).toBeGreaterThan(0);
      await bridge.waitFor(/audit: the trail in \S+ is written on a worker thread/);
      const token = readFileSync(join(state.path, "api-token"), "utf8").trim();
      const auth = { Authorization: `Bearer ${token}` };
      const lease = await (await fetch(`${base}/v1/leases`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ gpu_id: "GPU-1", worker_id: "e2e-vram", mem_mb: 64, streams: 1, ttl_s: 120, priority: 1 }),
      })).json() as { id: string };
      const data = pattern(5_000_000);
      const sealed = await fetch(`${base}/v1/leases/${lease.id}/shards?shard_id=e2e-0`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/octet-stream" },
        body: data,
      });
      expect(sealed.status).toBe(201);
      expect(await sealed.json()).toMatchObject({ shard_id: "e2e-0", gpu_id: "GPU-1", digest: sha256Hex(data), backend: "host-memory" });
      const verified = await (await fetch(`${base}/v1/shards/e2e-0/verify`, { method: "POST", headers: auth })).json();
      expect(verified).toMatchObject({ ok: true, leaves_checked: 77 });
    } finally {
      bridge.proc.kill("SIGTERM");
      expect(await bridge.proc.exited).toBe(0);
    }
    expect(bridge.log()).not.toContain("did not start");
    const trail = verifyTrail(join(state.path, "audit"));
    expect(trail).toMatchObject({ ok: true });
    const types = readFileSync(join(state.path, "audit", "audit-00000001.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).type);
    expect(types).toEqual(expect.arrayContaining(["lease.granted", "shard.sealed"]));
  },
);
