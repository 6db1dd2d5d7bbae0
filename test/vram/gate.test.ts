/**
 * The pre-job gate and the seal signature, on host memory: every shard of the lease is
 * verified before a job (not only the first), only that lease's shards, and a shard whose
 * recorded fields were changed together with its bytes is caught by the signature, since its
 * tree digest then matches.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { Lease } from "../../src/lease/types.ts";
import { VramAudit } from "../../src/vram/audit.ts";
import { HostMemoryVram } from "../../src/vram/host-backend.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { type Shard, ShardStore } from "../../src/vram/shards.ts";
import { hex, LEAF_BYTES, treeDigest } from "../../src/vram/tree.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { memoryLogger } from "../helpers.ts";
import { pattern, source } from "./vectors.ts";

const pool = TreePool.create(1);
afterAll(() => pool.close());

const lease = (id: string): Lease => ({
  id,
  gpu_id: "GPU-0",
  worker_id: `w-${id}`,
  mem_mb: 64,
  streams: 1,
  ttl_s: 60,
  priority: 0,
  state: "ACTIVE",
  granted_at: 0,
  expires_at: 1e15,
});

function setup(extra: { gateMode?: "full" | "sampled"; sampleLeaves?: number } = {}) {
  const leases = new Map([["L1", lease("L1")], ["L2", lease("L2")]]);
  const failed: string[] = [];
  const store = new ShardStore({
    backend: new HostMemoryVram(() => 1 << 30, pool),
    audit: new VramAudit(null, memoryLogger().log),
    key: deriveKey("secret", "test"),
    workerId: "bridge-test",
    lease: (id) => leases.get(id),
    ordinalOf: (g) => (g === "GPU-0" ? 0 : undefined),
    onFailure: (s) => failed.push(s.shard_id),
    ...extra,
  });
  return { store, failed };
}

describe("the pre-job gate", () => {
  test("verifies every shard of the lease: a corrupted third shard refuses the job, naming it", async () => {
    const { store, failed } = setup();
    const data = pattern(3 * LEAF_BYTES + 7);
    for (const [i, id] of ["a", "b", "c"].entries()) await store.seal("L1", source(data.map((x) => x ^ i)), { shard_id: id });
    expect(await store.gate("L1")).toBeNull();
    expect(store.list("L1").map((s) => s.verifications)).toEqual([1, 1, 1]);
    store.corrupt("c", 2 * LEAF_BYTES + 1, 0x5a);
    expect(await store.gate("L1")).toEqual({
      detail: "SEAL-VERIFICATION-FAILED",
      message: "shard c: the tree digest recomputed from VRAM differs from the sealed one",
    });
    expect(failed).toEqual(["c"]);
    expect(store.get("c")!.state).toBe("FAILED");
  });

  test("only the lease's own shards: another lease's failed shard does not refuse its jobs", async () => {
    const { store } = setup();
    await store.seal("L1", source(pattern(LEAF_BYTES)), { shard_id: "mine" });
    await store.seal("L2", source(pattern(LEAF_BYTES + 1)), { shard_id: "theirs" });
    store.corrupt("theirs", 0, 0xff);
    expect(await store.gate("L1")).toBeNull();
    expect((await store.gate("L2"))?.message).toStartWith("shard theirs: ");
    expect(store.get("theirs")!.verifications).toBe(0);
    expect(store.get("mine")!.verifications).toBe(1);
  });

  test("a lease without shards passes at once", async () => {
    const { store } = setup();
    expect(await store.gate("L1")).toBeNull();
  });

  test("sampled gate mode checks k leaves per shard, the last leaf always", async () => {
    const { store } = setup({ gateMode: "sampled", sampleLeaves: 1 });
    const data = pattern(4 * LEAF_BYTES);
    await store.seal("L1", source(data), { shard_id: "s1" });
    await store.seal("L1", source(data.map((x) => x ^ 1)), { shard_id: "s2" });
    expect(await store.gate("L1")).toBeNull();
    store.corrupt("s2", 4 * LEAF_BYTES - 1, 0x00);
    expect(await store.gate("L1")).toEqual({
      detail: "SEAL-VERIFICATION-FAILED",
      message: "shard s2: leaf 3 read back from VRAM differs from the sealed one",
    });
  });
});

describe("the seal signature", () => {
  test("bytes changed in VRAM with the recorded tree digest changed to match: the signature catches it", async () => {
    const { store, failed } = setup();
    const data = pattern(2 * LEAF_BYTES + 3);
    const { shard } = await store.seal("L1", source(data), { shard_id: "sig" });
    const forged = data.slice();
    forged[5] = forged[5]! ^ 0x01;
    store.corrupt("sig", 5, forged[5]!);
    (shard as { -readonly [K in keyof Shard]: Shard[K] }).tree_digest = hex(treeDigest(forged));
    expect(await store.verify("sig")).toMatchObject({ ok: false, reason: "the seal signature does not match the shard's fields" });
    expect(failed).toEqual(["sig"]);
    expect(await store.gate("L1")).toMatchObject({ detail: "SEAL-VERIFICATION-FAILED" });
  });

  test("any signed field changed (here the lease) fails verification, in sampled mode too", async () => {
    const { store } = setup();
    const { shard } = await store.seal("L1", source(pattern(LEAF_BYTES)), { shard_id: "moved" });
    (shard as { -readonly [K in keyof Shard]: Shard[K] }).lease_id = "L2";
    expect(await store.verify("moved", "sampled", 1)).toMatchObject({
      ok: false,
      mode: "sampled",
      reason: "the seal signature does not match the shard's fields",
    });
  });
});
