/**
 * Sealing bytes a shard already holds (the README's contract): the same bytes under the same id,
 * or under no id, are a retry and get the existing shard without a second allocation; the same
 * bytes under another id, other bytes under a taken id, or a taken id of another lease are a
 * conflict naming what holds them. Every audit record names the lease's worker, not the host.
 */
import { afterAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Lease } from "../../src/lease/types.ts";
import { VramAudit } from "../../src/vram/audit.ts";
import { HostMemoryVram } from "../../src/vram/host-backend.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { ShardStore, VramError } from "../../src/vram/shards.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { activeLease, memoryLogger, tempDir } from "../helpers.ts";
import { pattern, source } from "./vectors.ts";

const pool = TreePool.create(1);
afterAll(() => pool.close());

const lease = (id: string, worker: string): Lease => activeLease({ id, worker_id: worker });

function setup() {
  const dir = tempDir("vram-reseal-");
  const { log } = memoryLogger();
  const leases = new Map([["L1", lease("L1", "worker-a")], ["L2", lease("L2", "worker-b")]]);
  const backend = new HostMemoryVram(() => 1 << 30, pool);
  const store = new ShardStore({
    backend,
    audit: new VramAudit(join(dir.path, "vram-audit.jsonl"), log),
    key: deriveKey("secret", "test"),
    lease: (id) => leases.get(id),
    ordinalOf: (g) => (g === "GPU-0" ? 0 : undefined),
    pool,
  });
  const audit = (): Record<string, unknown>[] =>
    readFileSync(join(dir.path, "vram-audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const allocations = () => audit().filter((e) => e.event === "VramAllocated").length;
  return { store, audit, allocations, free: () => backend.memInfo(0).free, dir };
}

const data = pattern(200_000);
const other = pattern(200_001).subarray(1);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

test("the same bytes under the same id again: the existing shard (200), hashed on the host, never allocated", async () => {
  const { store, allocations, free, dir } = setup();
  const first = await store.seal("L1", source(data), { shard_id: "llama-0" });
  const free1 = free();
  // without expected_digest: the body is read and hashed, not copied into VRAM
  expect(await store.seal("L1", source(data), { shard_id: "llama-0" })).toEqual({ shard: first.shard, created: false });
  // with it, as the README's example sends it: nothing is read
  const again = await store.seal("L1", source(data), { shard_id: "llama-0", expected_digest: sha(data) });
  expect(again).toEqual({ shard: first.shard, created: false });
  expect(allocations()).toBe(1);
  expect(free()).toBe(free1);
  expect(store.list("L1").map((s) => s.shard_id)).toEqual(["llama-0"]);
  dir.cleanup();
});

test("a taken id with other bytes is a conflict naming both digests, and allocates nothing", async () => {
  const { store, allocations, dir } = setup();
  await store.seal("L1", source(data), { shard_id: "llama-0" });
  const err = await store.seal("L1", source(other), { shard_id: "llama-0" }).catch((e) => e);
  expect(err).toBeInstanceOf(VramError);
  expect(err).toMatchObject({ code: "conflict", field: "shard_id", extra: { existing_shard_id: "llama-0" } });
  expect(err.message).toBe(
    `Cannot seal shard "llama-0": that id holds other bytes (SHA-256 ${sha(data)}, these are ${
      sha(other)
    }); delete it first or pick another id`,
  );
  // a wrong expected_digest under a taken id says the same, without reading the body
  const claimed = await store.seal("L1", source(data), { shard_id: "llama-0", expected_digest: "a".repeat(64) }).catch((e) => e);
  expect(claimed.code).toBe("conflict");
  // a body shorter than declared is still refused as such
  const short = await store.seal("L1", source(data, 100_000, data.length + 1), { shard_id: "llama-0" }).catch((e) => e);
  expect(short).toMatchObject({ code: "invalid", field: "length" });
  expect(allocations()).toBe(1);
  dir.cleanup();
});

test("the same bytes under another id: a conflict naming the shard that holds them, with or without expected_digest", async () => {
  const { store, allocations, free, dir } = setup();
  await store.seal("L1", source(data), { shard_id: "llama-0" });
  const free1 = free();
  for (const opts of [{ shard_id: "llama-1", expected_digest: sha(data) }, { shard_id: "llama-1" }]) {
    const err = await store.seal("L1", source(data), opts).catch((e) => e);
    expect(err).toBeInstanceOf(VramError);
    expect(err).toMatchObject({ code: "conflict", field: "shard_id", extra: { existing_shard_id: "llama-0" } });
    expect(err.message).toContain(`Cannot seal shard "llama-1": lease L1 already holds these bytes as shard "llama-0"`);
  }
  // the streamed copy of the second attempt was freed; the first allocated nothing
  expect(allocations()).toBe(2);
  expect(free()).toBe(free1);
  expect(store.list().map((s) => s.shard_id)).toEqual(["llama-0"]);
  // no id asked for: a retry, the existing shard
  expect((await store.seal("L1", source(data), {})).shard.shard_id).toBe("llama-0");
  dir.cleanup();
});

test("an id another lease holds is a conflict naming that lease, even for the same bytes", async () => {
  const { store, dir } = setup();
  await store.seal("L1", source(data), { shard_id: "llama-0" });
  const err = await store.seal("L2", source(data), { shard_id: "llama-0" }).catch((e) => e);
  expect(err).toMatchObject({ code: "conflict", message: `Cannot seal shard "llama-0": that id belongs to a shard of lease L1` });
  // under its own id, L2 gets its own shard: dedup is per lease
  expect((await store.seal("L2", source(data), { shard_id: "llama-0-b" })).created).toBe(true);
  dir.cleanup();
});

test("every audit record of a shard names its lease and the lease's worker, never the host", async () => {
  const { store, audit, dir } = setup();
  await store.seal("L1", source(data), { shard_id: "a" });
  await store.seal("L2", source(other), { shard_id: "b" });
  await store.seal("L2", source(other), {}); // the duplicate's copy is freed
  await store.verify("a");
  await store.verify("b", "sampled");
  store.corrupt("b", 0, 0xff);
  await store.verify("b");
  await store.seal("L1", source(pattern(65 * 1048576)), {}).catch(() => {}); // refused: past the lease's 64 MiB
  store.release("a");
  store.close();
  const records = audit();
  expect(new Set(records.map((e) => e.event))).toEqual(
    new Set(["VramAllocated", "VramSealed", "VramDeallocated", "SealVerified", "SealVerificationFailed", "VramAllocationFailed"]),
  );
  const expected = { L1: "worker-a", L2: "worker-b" } as Record<string, string>;
  expect(records.filter((e) => e.worker_id !== expected[e.lease_id as string])).toEqual([]);
  expect(records.filter((e) => e.lease_id === "L2").length).toBeGreaterThan(4);
  dir.cleanup();
});
