/**
 * A driver that will not JIT the tree kernels (an ISA newer than it knows: 222; a GPU older than
 * `.target`: 209), scripted in the fake libcuda: the refusal is named with the PTX header, the
 * driver's CUDA release and the GPU, and shards are sealed and verified on the CPU path instead
 * of being declared corrupt. The bytes in VRAM are fine; only the kernels cannot run there.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { bunFfi } from "../../ffi/bun.ts";
import { CudaVram, PtxRefusedError } from "../../ffi/cuda-vram.ts";
import type { Lease } from "../../src/lease/types.ts";
import { VramAudit } from "../../src/vram/audit.ts";
import { CudaVramBackend } from "../../src/vram/cuda-backend.ts";
import { TREE_PTX } from "../../src/vram/ptx/generated/tree-ptx.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { ShardStore } from "../../src/vram/shards.ts";
import { LEAF_BYTES } from "../../src/vram/tree.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { activeLease, memoryLogger } from "../helpers.ts";
import { FAKE_CUDA, scriptFakes } from "../inventory/fakes.ts";
import { source, VECTORS } from "../vram/vectors.ts";

const pool = TreePool.create(2);
afterAll(() => (pool.close(), scriptFakes({})));

const lease: Lease = activeLease();

function store(backend: CudaVramBackend): ShardStore {
  return new ShardStore({
    backend,
    audit: new VramAudit(null, memoryLogger().log),
    key: deriveKey("secret", "test"),
    lease: () => lease,
    ordinalOf: () => 0,
    verifyPath: "gpu",
    pool,
  });
}

describe.each([
  [222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"],
  [209, "CUDA_ERROR_NO_BINARY_FOR_GPU"],
])("cuModuleLoadData refusing the tree kernels with %d", (code, name) => {
  test("the error names the driver, the PTX header, the device and the driver's answer", () => {
    scriptFakes({ module_load_error: code });
    const vram = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
    try {
      const [, data] = VECTORS[7]!;
      const buf = vram.alloc(0, data.length);
      vram.write(buf, 0, data);
      let error: unknown = null;
      try {
        vram.treeDigest(buf, data.length, LEAF_BYTES);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(PtxRefusedError);
      expect((error as PtxRefusedError).code).toBe(code);
      expect((error as Error).message).toMatch(
        new RegExp(
          `^The CUDA driver \\(CUDA 12\\.4\\) refused the tree kernels' PTX \\(ISA 6\\.0, sm_50\\) on device 0 \\(compute capability \\d\\.\\d\\): cuModuleLoadData failed: ${name} \\(CUresult ${code}\\)$`,
        ),
      );
      expect(vram.kernelRefusal(0)).toBe(error as PtxRefusedError);
      // Asked once: a driver that later answers differently is not asked again for this device.
      scriptFakes({});
      expect(() => vram.treeDigest(buf, data.length, LEAF_BYTES)).toThrow(PtxRefusedError);
      expect(vram.kernelRefusal(1)).toBeNull();
      vram.free(buf);
    } finally {
      vram.close();
    }
  });

  test("shards still seal and verify, on the CPU path, and a changed byte is still caught", async () => {
    scriptFakes({ module_load_error: code });
    const vram = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
    const backend = new CudaVramBackend(vram, pool);
    const s = store(backend);
    try {
      const [, data, tree] = VECTORS[9]!;
      const { shard } = await s.seal("L1", source(data), {});
      expect(shard.tree_digest).toBe(tree);
      expect(await s.verify(shard.shard_id, "full")).toMatchObject({ ok: true, path: "cpu" });
      expect(backend.kernelRefusal(0)).toContain(name);
      s.corrupt(shard.shard_id, LEAF_BYTES + 3, data[LEAF_BYTES + 3]! ^ 1);
      expect(await s.verify(shard.shard_id, "full")).toMatchObject({ ok: false });
    } finally {
      s.close();
      vram.close();
    }
  });
});

test("a driver that loads the kernels keeps the GPU path, and other driver errors are not taken for a refusal", async () => {
  scriptFakes({});
  const vram = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
  const backend = new CudaVramBackend(vram, pool);
  const s = store(backend);
  try {
    const [, data] = VECTORS[9]!;
    const { shard } = await s.seal("L1", source(data), {});
    expect(await s.verify(shard.shard_id, "full")).toMatchObject({ ok: true, path: "gpu" });
    expect(backend.kernelRefusal(0)).toBeNull();
    scriptFakes({ launch_error: 700 });
    expect(await s.verify(shard.shard_id, "full")).toMatchObject({ ok: false });
  } finally {
    scriptFakes({});
    s.close();
    vram.close();
  }
});
