/** The background sweep on a fake clock: one full verification per interval, shards in turn. */
import { afterAll, expect, test } from "bun:test";
import type { Lease } from "../../src/lease/types.ts";
import { type ShardStore, unknownShard, type VramError } from "../../src/vram/shards.ts";
import { ShardSweep } from "../../src/vram/sweep.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { activeLease, FakeClock, memoryLogger, until } from "../helpers.ts";
import { pattern, source } from "./vectors.ts";
import { hostStore } from "./host-store.ts";

const pool = TreePool.create(0);
afterAll(() => pool.close());

test("ShardSweep verifies one shard per interval in turn, and finds a change sampling missed", async () => {
  const lease: Lease = activeLease({ id: "L", gpu_id: "G" });
  const store = hostStore(pool, lease, { random: () => 0 });
  await store.seal("L", source(pattern(300_000)), { shard_id: "a" });
  await store.seal("L", source(pattern(200_000)), { shard_id: "b" });
  store.corrupt("b", 70_000, 0x55); // leaf 1 of 4: sampling leaf 0 and the last misses it
  expect(await store.verify("b", "sampled", 2)).toMatchObject({ ok: true, leaves_checked: 2 });
  const clock = new FakeClock();
  const sweep = new ShardSweep(store, clock, 1000, memoryLogger().log);
  sweep.start();
  clock.advance(999);
  expect(sweep.stats.runs).toBe(0);
  clock.advance(1);
  await until(() => sweep.stats.runs === 1, 5000, "the first sweep");
  expect(store.get("a")!.verifications).toBe(1);
  clock.advance(1000);
  await until(() => sweep.stats.runs === 2, 5000, "the second sweep");
  expect(sweep.stats.failures).toBe(1);
  expect(store.get("b")!.state).toBe("FAILED");
  sweep.stop();
  expect(clock.pending).toBe(0);
});

test("ShardSweep: a shard released meanwhile is skipped quietly; a verification that throws otherwise is logged with its cause", async () => {
  const shard = { shard_id: "s", state: "SEALED" };
  // What the store's verify throws for a shard released meanwhile (the real store agrees).
  let thrown: unknown = unknownShard("s");
  const real = hostStore(pool, activeLease({ id: "L", gpu_id: "G" }));
  const refused = await real.verify("s", "full").catch((e) => e);
  expect(refused).toMatchObject({ code: (thrown as VramError).code, message: (thrown as VramError).message });
  const store = {
    list: () => [shard],
    verify: () => Promise.reject(thrown),
  } as unknown as ShardStore;
  const { log, lines } = memoryLogger();
  const sweep = new ShardSweep(store, new FakeClock(), 1000, log);
  expect(await sweep.tick()).toBe("s");
  expect(sweep.stats).toEqual({ runs: 0, failures: 0, errors: 0 });
  expect(lines).toEqual([]);
  thrown = new Error("cuModuleGetFunction failed", { cause: new Error("CUDA_ERROR_NOT_FOUND") });
  expect(await sweep.tick()).toBe("s");
  expect(sweep.stats).toEqual({ runs: 0, failures: 0, errors: 1 });
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain("ERROR");
  expect(lines[0]).toContain("could not verify shard s: cuModuleGetFunction failed (cause: CUDA_ERROR_NOT_FOUND)");
});

test("ShardSweep: a verification still running holds the next one back (no overlap, no pile-up)", async () => {
  let calls = 0;
  let finish = () => {};
  const store = {
    list: () => [{ shard_id: "s", state: "SEALED" }],
    verify: () => {
      calls++;
      return new Promise((resolve) => finish = () => resolve({ ok: true }));
    },
  } as unknown as ShardStore;
  const clock = new FakeClock();
  const sweep = new ShardSweep(store, clock, 1000, memoryLogger().log);
  sweep.start();
  clock.advance(1000);
  expect(calls).toBe(1);
  clock.advance(10_000); // the first is still running: nothing more starts
  expect(calls).toBe(1);
  expect(clock.pending).toBe(0);
  finish();
  await until(() => clock.pending === 1, 5000, "the next sweep armed once the first ended");
  clock.advance(1000);
  expect(calls).toBe(2);
  sweep.stop();
});
