/**
 * The pre-job gate and the seal signature, on host memory: every shard of the lease is
 * verified before a job (not only the first), only that lease's shards, and a shard whose
 * recorded fields were changed together with its bytes is caught by the signature, since its
 * tree digest then matches.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { Lease } from "../../src/lease/types.ts";
import { VramAudit } from "../../src/vram/audit.ts";
import type { VramBackend } from "../../src/vram/backend.ts";
import { HostMemoryVram } from "../../src/vram/host-backend.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { type Shard, ShardStore } from "../../src/vram/shards.ts";
import { hex, LEAF_BYTES, leafHash, treeDigest } from "../../src/vram/tree.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { activeLease, memoryLogger } from "../helpers.ts";
import { pattern, source } from "./vectors.ts";

const pool = TreePool.create(1);
afterAll(() => pool.close());

const lease = (id: string): Lease => activeLease({ id, worker_id: `w-${id}` });

function setup(
  extra: { gateMode?: "full" | "sampled"; sampleLeaves?: number; random?: (n: number) => number; backend?: VramBackend } = {},
) {
  const leases = new Map([["L1", lease("L1")], ["L2", lease("L2")]]);
  const failed: string[] = [];
  const { log, lines } = memoryLogger();
  const audit = () => lines.filter((l) => l.includes("audit {")).map((l) => JSON.parse(l.slice(l.indexOf("audit {") + 6)));
  const store = new ShardStore({
    backend: extra.backend ?? new HostMemoryVram(() => 1 << 30, pool),
    audit: new VramAudit(null, log),
    key: deriveKey("secret", "test"),
    lease: (id) => leases.get(id),
    ordinalOf: (g) => (g === "GPU-0" ? 0 : undefined),
    onFailure: (s) => failed.push(s.shard_id),
    ...extra,
  });
  return { store, failed, audit };
}

/** Host memory whose tree digest is computed by `tree` (to fail or stall a verification). */
function stalling(tree: (real: VramBackend["treeDigest"]) => VramBackend["treeDigest"]): VramBackend {
  const inner = new HostMemoryVram(() => 1 << 30, pool);
  let sealed = false;
  return new Proxy(inner, {
    get(target, key) {
      const real = Reflect.get(target, key, target);
      if (key === "treeDigest") {
        const bound = (real as VramBackend["treeDigest"]).bind(target);
        // The seal's own tree digest is the real one; verifications after it use `tree`.
        return (...args: Parameters<VramBackend["treeDigest"]>) => (sealed ? tree(bound)(...args) : ((sealed = true), bound(...args)));
      }
      return typeof real === "function" ? real.bind(target) : real;
    },
  });
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

describe("verify()", () => {
  test("full: every leaf, the path, counters and the audit record; timings add up", async () => {
    const { store, audit } = setup();
    await store.seal("L1", source(pattern(3 * LEAF_BYTES + 1)), { shard_id: "v" });
    const before = performance.now();
    const r = await store.verify("v");
    const elapsed = performance.now() - before;
    expect(r).toMatchObject({ ok: true, shard_id: "v", mode: "full", path: "cpu", leaves_checked: 4 });
    if (!r.ok) throw new Error("expected ok");
    for (const ms of [r.tree_ms, r.signature_ms]) {
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(ms).toBeLessThanOrEqual(r.total_ms);
    }
    expect(r.total_ms).toBeLessThanOrEqual(elapsed + 0.001);
    await store.verify("v");
    expect(store.get("v")!.verifications).toBe(2);
    expect(store.counters.verify.get("ok")).toBe(2);
    expect(audit().filter((e) => e.event === "SealVerified")[0]).toEqual({
      ts: expect.any(String),
      event: "SealVerified",
      shard_id: "v",
      mode: "full",
      path: "cpu",
      leaves_checked: 4,
      tree_ms: r.tree_ms,
      total_ms: r.total_ms,
      lease_id: "L1",
      worker_id: "w-L1",
    });
  });

  test("sampled: 8 leaves unless told otherwise, read on the CPU", async () => {
    const { store } = setup();
    await store.seal("L1", source(pattern(10 * LEAF_BYTES)), { shard_id: "s" });
    expect(await store.verify("s", "sampled")).toMatchObject({ ok: true, mode: "sampled", path: "cpu", leaves_checked: 8 });
    expect(await store.verify("s", "sampled", 20)).toMatchObject({ ok: true, leaves_checked: 10 });
  });

  test("a sampled leaf that differs: the audit names the sealed leaf hash and the one read back", async () => {
    const { store, audit } = setup({ random: () => 2 });
    const data = pattern(4 * LEAF_BYTES);
    await store.seal("L1", source(data), { shard_id: "leafy" });
    store.corrupt("leafy", 2 * LEAF_BYTES + 5, 0x00);
    const r = await store.verify("leafy", "sampled", 2); // leaves 3 (always) and 2 (the random pick)
    expect(r).toMatchObject({ ok: false, mode: "sampled", reason: "leaf 2 read back from VRAM differs from the sealed one" });
    const bad = data.slice(2 * LEAF_BYTES, 3 * LEAF_BYTES);
    bad[5] = 0;
    expect(audit().find((e) => e.event === "SealVerificationFailed")).toMatchObject({
      shard_id: "leafy",
      expected_digest: hex(leafHash(data.subarray(2 * LEAF_BYTES, 3 * LEAF_BYTES))),
      actual_digest: hex(leafHash(bad)),
      severity: "CRITICAL",
      mode: "sampled",
    });
  });

  test("a forged signature is audited as such", async () => {
    const { store, audit } = setup();
    const { shard } = await store.seal("L1", source(pattern(LEAF_BYTES)), { shard_id: "f" });
    (shard as { -readonly [K in keyof Shard]: Shard[K] }).digest = "0".repeat(64);
    await store.verify("f");
    expect(audit().find((e) => e.event === "SealVerificationFailed")).toMatchObject({
      reason: "the seal signature does not match the shard's fields",
      expected_digest: shard.tree_digest,
      actual_digest: "(signature)",
    });
  });

  test("a shard that failed stays failed: later verifications say so at once", async () => {
    const { store } = setup();
    await store.seal("L1", source(pattern(LEAF_BYTES)), { shard_id: "once" });
    store.corrupt("once", 0, 0xff);
    await store.verify("once");
    expect(await store.verify("once", "sampled")).toEqual({
      ok: false,
      shard_id: "once",
      reason: "the shard failed verification earlier: the tree digest recomputed from VRAM differs from the sealed one",
      mode: "sampled",
      total_ms: 0,
    });
    expect(store.counters.verify.get("fail")).toBe(1);
  });

  test("an unknown shard is a not_sealed error naming the id", async () => {
    const { store } = setup();
    const err = await store.verify("ghost").catch((e) => e);
    expect(err).toMatchObject({ code: "not_sealed", message: 'Unknown shard "ghost": no shard with that id is sealed', field: "id" });
  });

  test("VRAM that cannot be read back fails the shard, audited as unreadable", async () => {
    const { store, failed, audit } = setup({ backend: stalling(() => () => Promise.reject(new Error("CUDA_ERROR_ILLEGAL_ADDRESS"))) });
    const { shard } = await store.seal("L1", source(pattern(LEAF_BYTES)), { shard_id: "u" });
    const before = performance.now();
    const r = await store.verify("u");
    expect(r).toMatchObject({ ok: false, shard_id: "u", mode: "full", reason: "VRAM could not be read back: CUDA_ERROR_ILLEGAL_ADDRESS" });
    expect(r.total_ms).toBeLessThanOrEqual(performance.now() - before + 0.001);
    expect(failed).toEqual(["u"]);
    expect(audit().find((e) => e.event === "SealVerificationFailed")).toMatchObject({
      expected_digest: shard.tree_digest,
      actual_digest: "(unreadable)",
    });
  });

  test("a shard released while it is being verified is reported so, not failed", async () => {
    let fail: (e: Error) => void = () => {};
    const { store, failed } = setup({ backend: stalling(() => () => new Promise((_, reject) => (fail = reject))) });
    await store.seal("L1", source(pattern(LEAF_BYTES)), { shard_id: "r" });
    const before = performance.now();
    const pending = store.verify("r");
    store.release("r");
    fail(new Error("freed"));
    const r = await pending;
    expect(r).toEqual({
      ok: false,
      shard_id: "r",
      reason: "the shard was released during verification",
      mode: "full",
      total_ms: r.total_ms,
    });
    expect(r.total_ms).toBeGreaterThanOrEqual(0);
    expect(r.total_ms).toBeLessThanOrEqual(performance.now() - before + 0.001);
    expect(failed).toEqual([]);
    expect(store.counters.verify.get("fail")).toBeUndefined();
  });
});
