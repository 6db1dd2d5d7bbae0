/**
 * `--verify-mode` and `--verify-sweep-ms` drive what $GPU_BRIDGE_VRAM_GATE and
 * $GPU_BRIDGE_VRAM_SWEEP_MS drove (the variables still do when the flags are absent; the flags
 * win): the mode an execute-check runs in, and the background sweep, on a --mock bridge.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { LEAF_BYTES } from "../../src/vram/tree.ts";
import { memoryLogger, tempDir, until } from "../helpers.ts";
import { apiCall } from "./api-call.ts";
import { pattern } from "./vectors.ts";

let stop: (() => Promise<void>) | null = null;
afterEach(async () => {
  await stop?.();
  stop = null;
});

/** A --mock bridge with `flags` and the environment `env`, its API, and a lease holding one sealed shard of 8 leaves. */
async function sealedBridge(flags: string[], env: Record<string, string>) {
  const tmp = tempDir("gbh-verify-mode-");
  const c = parseCommand(["serve", "--mock", "--state-dir", join(tmp.path, "state"), "--listen", "127.0.0.1:0", ...flags], env);
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log } = memoryLogger();
  const daemon: Bridge = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() });
  const api = await startApi(c.options, daemon, { runtime: bunRuntime(), log });
  stop = async () => {
    await api.close();
    await daemon.stop();
    tmp.cleanup();
  };
  const call = apiCall(() => api);
  const terms = JSON.stringify({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 16, streams: 1, ttl_s: 600 });
  const lease = (await call("POST", "/v1/leases", terms, "application/json")).body;
  const sealed = await call("POST", `/v1/leases/${lease.id}/shards?shard_id=s-0`, pattern(8 * LEAF_BYTES), "application/octet-stream");
  expect(sealed.status).toBe(201);
  return { call, options: c.options };
}

describe("the verification mode", () => {
  test.each(
    [
      [[], {}, "full"],
      [["--verify-mode", "sampled"], {}, "sampled"],
      [[], { GPU_BRIDGE_VRAM_GATE: "sampled" }, "sampled"],
      [["--verify-mode", "full"], { GPU_BRIDGE_VRAM_GATE: "sampled" }, "full"],
    ] as const,
  )("flags %j with %j: execute-check runs %s", async (flags, env, mode) => {
    const { call } = await sealedBridge([...flags], { ...env });
    const check = await call("POST", "/v1/shards/s-0/execute-check");
    expect(check.body).toMatchObject({ ok: true, mode });
    // Sampled rehashes a few leaves now; full, just sealed, needs no verification yet.
    expect(check.body.verified_now).toBe(mode === "sampled");
  });

  test("--verify-sweep-ms sweeps whole shards in the background, as $GPU_BRIDGE_VRAM_SWEEP_MS did", async () => {
    for (const [flags, env] of [[["--verify-sweep-ms", "50"], {}], [[], { GPU_BRIDGE_VRAM_SWEEP_MS: "50" }]] as const) {
      const { call } = await sealedBridge([...flags], { ...env });
      // Only the sweep verifies here: nothing else asks.
      const verifiedAt = async () => (await call("GET", "/v1/shards/s-0")).body.verifications as number;
      const first = await verifiedAt();
      expect(typeof first).toBe("number");
      let now = first;
      const poll = setInterval(() => void verifiedAt().then((at) => (now = at)), 20);
      try {
        await until(() => now !== first, 5000, `a sweep (${JSON.stringify(flags)}, ${JSON.stringify(env)})`);
      } finally {
        clearInterval(poll);
      }
      await stop!();
      stop = null;
    }
  });
});
