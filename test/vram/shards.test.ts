/**
 * The shard store over both backends: host memory (--mock) and the fake libcuda (the FFI path,
 * with the tree computed by the kernels' C). Corruption is done in (fake) VRAM with
 * cuMemsetD8_v2, never by editing a digest string.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bunFfi } from "../../ffi/bun.ts";
import { CudaVram } from "../../ffi/cuda-vram.ts";
import type { Lease } from "../../src/lease/types.ts";
import { attestation } from "../../src/vram/attest.ts";
import { VramAudit } from "../../src/vram/audit.ts";
import type { VramBackend } from "../../src/vram/backend.ts";
import { CudaVramBackend } from "../../src/vram/cuda-backend.ts";
import { HostMemoryVram } from "../../src/vram/host-backend.ts";
import { TREE_PTX } from "../../src/vram/ptx/generated/tree-ptx.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { CHUNK_BYTES, type Shard, type ShardSource, ShardStore, VramError } from "../../src/vram/shards.ts";
import { hex, LEAF_BYTES, treeDigest } from "../../src/vram/tree.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { memoryLogger, tempDir } from "../helpers.ts";
import { FAKE_CUDA, scriptFakes } from "../inventory/fakes.ts";
import { pattern, source, VECTORS } from "./vectors.ts";

const pool = TreePool.create(2);
const cuda = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
afterAll(() => (pool.close(), cuda.close()));

const lease = (id: string, mem_mb = 64, gpu_id = "GPU-0"): Lease => ({
  id,
  gpu_id,
  worker_id: `w-${id}`,
  mem_mb,
  streams: 1,
  ttl_s: 60,
  priority: 0,
  state: "ACTIVE",
  granted_at: 0,
  expires_at: 1e15,
});

function setup(backend: VramBackend, extra: { onFailure?: (s: Shard) => void } = {}) {
  const dir = tempDir("vram-");
  const { log, lines } = memoryLogger();
  const leases = new Map<string, Lease>([["L1", lease("L1")], ["L2", lease("L2", 1)]]);
  const store = new ShardStore({
    backend,
    audit: new VramAudit(join(dir.path, "vram-audit.jsonl"), log),
    key: deriveKey("secret", "test"),
    lease: (id) => leases.get(id),
    ordinalOf: (g) => (g === "GPU-0" ? 0 : g === "GPU-1" ? 1 : undefined),
    pool,
    ...extra,
  });
  const audit = () => readFileSync(join(dir.path, "vram-audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  return { store, leases, audit, lines, dir };
}

const backends: [string, () => VramBackend][] = [
  ["host memory (--mock)", () => new HostMemoryVram(() => 1 << 30, pool)],
  ["fake libcuda (FFI, GPU path)", () => new CudaVramBackend(cuda, pool)],
];

describe.each(backends)("ShardStore over %s", (_name, make) => {
  test("seals: digest is the flat SHA-256, the tree comes from VRAM, fields as the contract names them", async () => {
    scriptFakes({});
    const { store, audit, dir } = setup(make());
    const [, data, tree, flat] = VECTORS[9]!;
    const { shard, created } = await store.seal("L1", source(data), { set_id: "tp", shard_index: 0, total_shards: 2 });
    expect(created).toBe(true);
    expect(shard).toMatchObject({
      lease_id: "L1",
      gpu_id: "GPU-0",
      gpu_device: 0,
      vram_bytes: data.length,
      digest: flat,
      tree_digest: tree,
      set_id: "tp",
      shard_index: 0,
      total_shards: 2,
      state: "SEALED",
    });
    expect(shard.shard_id).toMatch(/^shard-[0-9a-f]{32}$/);
    expect(await store.verify(shard.shard_id)).toMatchObject({ ok: true, mode: "full", leaves_checked: 8 });
    expect(await store.verify(shard.shard_id, "sampled", 3)).toMatchObject({ ok: true, mode: "sampled", leaves_checked: 3 });
    expect(audit().map((e) => e.event)).toEqual(["VramAllocated", "VramSealed", "SealVerified", "SealVerified"]);
    dir.cleanup();
  });

  test("a shard over several staging buffers: the same digests as one-shot hashing, any chunking", async () => {
    const { store, dir } = setup(make());
    const data = pattern(2 * CHUNK_BYTES + LEAF_BYTES + 3);
    for (const step of [CHUNK_BYTES, 1_000_003]) {
      const { shard } = await store.seal("L1", source(data, step), {});
      expect(shard.tree_digest).toBe(hex(treeDigest(data)));
      expect(shard.digest).toBe(createHash("sha256").update(data).digest("hex"));
      store.release(shard.shard_id);
    }
    dir.cleanup();
  });

  test("one byte changed in VRAM fails verification: CRITICAL audit, shard failed, gate refuses", async () => {
    const failed: string[] = [];
    const { store, audit, dir } = setup(make(), { onFailure: (s) => failed.push(s.shard_id) });
    const data = pattern(5 * LEAF_BYTES + 9);
    const { shard } = await store.seal("L1", source(data), { shard_id: "w-0" });
    expect(await store.gate("L1")).toBeNull();
    store.corrupt("w-0", 3 * LEAF_BYTES + 17, data[3 * LEAF_BYTES + 17]! ^ 0x01);
    const r = await store.verify("w-0");
    expect(r).toMatchObject({ ok: false, reason: "the tree digest recomputed from VRAM differs from the sealed one" });
    expect(store.get("w-0")!.state).toBe("FAILED");
    expect(failed).toEqual(["w-0"]);
    const ev = audit().find((e) => e.event === "SealVerificationFailed");
    expect(ev).toMatchObject({ shard_id: "w-0", severity: "CRITICAL", expected_digest: shard.tree_digest });
    expect(ev.actual_digest).not.toBe(shard.tree_digest);
    expect(await store.gate("L1")).toMatchObject({ detail: "SEAL-VERIFICATION-FAILED" });
    expect(store.counters.verify.get("fail")).toBe(1);
    dir.cleanup();
  });

  test("sampled verification catches a corrupted leaf it samples", async () => {
    const { store, dir } = setup(make());
    const data = pattern(4 * LEAF_BYTES);
    await store.seal("L1", source(data), { shard_id: "s" });
    store.corrupt("s", 4 * LEAF_BYTES - 1, 0xee); // the last leaf is always sampled
    expect(await store.verify("s", "sampled", 1)).toMatchObject({
      ok: false,
      reason: "leaf 3 read back from VRAM differs from the sealed one",
    });
    dir.cleanup();
  });

  test("refuses with needed and available bytes, by the lease's cap", async () => {
    const { store, dir } = setup(make());
    const err = await store.seal("L2", source(pattern(1048577)), {}).catch((e) => e);
    expect(err).toBeInstanceOf(VramError);
    expect(err.code).toBe("insufficient_vram");
    expect(err.message).toContain("needed 1048577 bytes, available 1048576 bytes");
    expect(err.extra).toEqual({ needed_bytes: 1048577, available_bytes: 1048576 });
    dir.cleanup();
  });

  test("the same bytes twice under a lease do not allocate twice", async () => {
    const { store, audit, dir } = setup(make());
    const data = pattern(70_000);
    const flat = createHash("sha256").update(data).digest("hex");
    const a = await store.seal("L1", source(data), {});
    const b = await store.seal("L1", source(data), { expected_digest: flat });
    const c = await store.seal("L1", source(data), {});
    expect(b).toEqual({ shard: a.shard, created: false });
    expect(c).toEqual({ shard: a.shard, created: false });
    expect(store.list("L1").length).toBe(1);
    expect(audit().filter((e) => e.event === "VramAllocated").length).toBe(2); // c streamed, then freed its copy
    expect(audit().filter((e) => e.event === "VramDeallocated").length).toBe(1);
    dir.cleanup();
  });

  test("a wrong expected_digest, a short body and a long body are refused and free their VRAM", async () => {
    const { store, dir } = setup(make());
    const free0 = store.backend.memInfo(0).free;
    const data = pattern(1000);
    await expect(store.seal("L1", source(data), { expected_digest: "0".repeat(64) })).rejects.toThrow("not the expected_digest");
    await expect(store.seal("L1", source(data, 100, 2000), {})).rejects.toThrow("the body ended after 1000 of its declared 2000 bytes");
    await expect(store.seal("L1", source(data, 100, 500), {})).rejects.toThrow("longer than its declared 500 bytes");
    await expect(store.seal("L1", source(data), { shard_id: "bad id" })).rejects.toThrow(
      'shard_id must be 1-256 characters of A-Z a-z 0-9 _ -, got "bad id"',
    );
    expect(store.backend.memInfo(0).free).toBe(free0);
    expect(store.list()).toEqual([]);
    dir.cleanup();
  });

  test("a lease that ends while its shard streams in gets no shard, and the VRAM is freed", async () => {
    const { store, leases, dir } = setup(make());
    const free0 = store.backend.memInfo(0).free;
    const data = pattern(300_000);
    const ending: ShardSource = {
      length: data.length,
      chunks: (async function* () {
        yield data.subarray(0, 100_000);
        leases.get("L1")!.state = "RELEASED";
        yield data.subarray(100_000);
      })(),
    };
    await expect(store.seal("L1", ending, {})).rejects.toThrow("ended while the shard was streaming in");
    expect(store.list()).toEqual([]);
    expect(store.backend.memInfo(0).free).toBe(free0);
    dir.cleanup();
  });

  test("release frees the VRAM and audits it; a lease's end frees all its shards", async () => {
    const { store, audit, dir } = setup(make());
    const free0 = store.backend.memInfo(0).free;
    await store.seal("L1", source(pattern(1000)), { shard_id: "a" });
    await store.seal("L1", source(pattern(2000)), { shard_id: "b" });
    // The driver counts whole VMM allocations (2 MiB granules: exportable shards); host memory counts bytes.
    const held = store.backend.kind === "cuda" ? store.mappedBytes("a") + store.mappedBytes("b") : 3000;
    expect(store.backend.memInfo(0).free).toBe(free0 - held);
    expect(store.usedBytes(0)).toEqual({ sealed: 3000, reserved: 0, shards: 2 });
    store.releaseLease("L1", "expired");
    expect(store.backend.memInfo(0).free).toBe(free0);
    expect(audit().filter((e) => e.event === "VramDeallocated").map((e) => [e.shard_id, e.freed_bytes, e.reason])).toEqual([[
      "a",
      1000,
      "lease expired",
    ], ["b", 2000, "lease expired"]]);
    await expect(store.verify("a")).rejects.toThrow('Unknown shard "a"');
    dir.cleanup();
  });

  test("nothing in the audit trail or the log looks like a pointer or the key", async () => {
    const { store, audit, lines, dir } = setup(make());
    await store.seal("L1", source(pattern(1000)), {});
    const text = JSON.stringify(audit()) + lines.join("\n");
    expect(text).not.toMatch(/0x[0-9a-f]{6,}|"ptr"|pointer"?:\s*"?\d{6,}/i);
    expect(text).not.toContain(Buffer.from(deriveKey("secret", "test")).toString("hex"));
    dir.cleanup();
  });
});

describe("the VRAM-only policy (fake libcuda)", () => {
  test("a managed allocation is refused, audited as PolicyViolation, and freed", async () => {
    const { store, audit, dir } = setup(new CudaVramBackend(cuda, pool));
    const free0 = store.backend.memInfo(0).free;
    scriptFakes({ pointer_managed: 1 });
    await expect(store.seal("L1", source(pattern(1000)), {})).rejects.toThrow(
      "Cannot seal: the VRAM-only check failed: the allocation is managed (unified) memory",
    );
    scriptFakes({});
    expect(audit().find((e) => e.event === "PolicyViolation")).toMatchObject({
      policy: "vram-only",
      reason: "the allocation is managed (unified) memory",
    });
    expect(store.backend.memInfo(0).free).toBe(free0);
    dir.cleanup();
  });

  test("the evidence recorded per allocation: device memory, not managed, no host pointer", async () => {
    const { store, dir } = setup(new CudaVramBackend(cuda, pool));
    const { shard } = await store.seal("L1", source(pattern(1000)), {});
    expect(shard.evidence.pointer).toEqual({
      memory_type: "device",
      is_managed: false,
      host_pointer_query: "CUDA_ERROR_INVALID_VALUE",
      device_ordinal: 0,
    });
    dir.cleanup();
  });

  test("the driver's out-of-memory is a refusal naming needed and available bytes", async () => {
    const { store, dir } = setup(new CudaVramBackend(cuda, pool));
    scriptFakes({ mem_limit_mib: 1 });
    const err = await store.seal("L1", source(pattern(2 << 20)), {}).catch((e) => e);
    scriptFakes({});
    expect(err.code).toBe("insufficient_vram");
    expect(err.message).toMatch(/needed 2097152 bytes, available \d+ bytes/);
    dir.cleanup();
  });

  test("the CPU path over device-to-host copies gives the same tree as the GPU kernels", async () => {
    const backend = new CudaVramBackend(cuda, pool);
    const [, data, tree] = VECTORS[9]!;
    const buf = backend.alloc(1, data.length);
    backend.write(buf, 0, data);
    const gpu = await backend.treeDigest(buf, data.length, "gpu");
    const cpu = await backend.treeDigest(buf, data.length, "cpu");
    expect([gpu.path, hex(gpu.digest)]).toEqual(["gpu", tree]);
    expect([cpu.path, hex(cpu.digest)]).toEqual(["cpu", tree]);
    backend.free(buf);
  });
});

describe("integrated GPUs (fake Jetson Orin)", () => {
  test("the VRAM-only policy is reported not applicable, with the reason, never faked", async () => {
    scriptFakes({ jetson: 1 });
    const backend = new CudaVramBackend(cuda, pool);
    const { store, dir } = setup(backend);
    const { shard } = await store.seal("L1", source(pattern(1000)), {});
    const { statement, signature } = attestation(shard, backend, deriveKey("a", "b"), 0);
    scriptFakes({});
    expect(statement.policy).toMatchObject({
      name: "vram-only",
      status: "not_applicable",
      reason: expect.stringContaining("shares DRAM with the CPU"),
      cannot_promise: expect.arrayContaining([expect.stringContaining("out of the CPU's reach")]),
    });
    expect(statement.evidence.device).toMatchObject({ integrated: 1, ecc_enabled: 0 });
    expect(statement.evidence.pointer).toMatchObject({ memory_type: "device" });
    expect(JSON.stringify(statement)).not.toMatch(/pointer"?:\s*\d/);
    expect(signature.value).toMatch(/^[0-9a-f]{64}$/);
    dir.cleanup();
  });

  test("a discrete GPU's attestation says enforced", async () => {
    scriptFakes({});
    const backend = new CudaVramBackend(cuda, pool);
    const { store, dir } = setup(backend);
    const { shard } = await store.seal("L1", source(pattern(1000)), {});
    expect(attestation(shard, backend, deriveKey("a", "b"), 0).statement.policy.status).toBe("enforced");
    dir.cleanup();
  });
});
