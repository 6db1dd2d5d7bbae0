/**
 * The VRAM façade over the fake libcuda: allocations, copies, cuMemsetD8_v2, pointer attributes,
 * cuMemGetInfo_v2, and the tree kernels (which the fake runs from the same C the PTX is built
 * from) against the pinned vectors.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { bunFfi } from "../../ffi/bun.ts";
import { CudaVram } from "../../ffi/cuda-vram.ts";
import { TREE_PTX } from "../../src/vram/ptx/generated/tree-ptx.ts";
import { hex, LEAF_BYTES } from "../../src/vram/tree.ts";
import { FAKE_CUDA, scriptFakes } from "../inventory/fakes.ts";
import { VECTORS } from "./vectors.ts";

const vram = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
afterAll(() => vram.close());

describe("CudaVram (fake driver)", () => {
  test("the tree kernels compute the pinned vectors from device memory", () => {
    scriptFakes({});
    for (const [, data, tree] of VECTORS) {
      const buf = vram.alloc(0, data.length);
      vram.write(buf, 0, data);
      expect(hex(vram.treeDigest(buf, data.length, LEAF_BYTES))).toBe(tree);
      vram.free(buf);
    }
  });

  test("one byte changed in device memory changes the digest", () => {
    const [, data, tree] = VECTORS[7]!;
    const buf = vram.alloc(1, data.length);
    vram.write(buf, 0, data);
    vram.memset(buf, 2 * LEAF_BYTES + 1, data[2 * LEAF_BYTES + 1]! ^ 0xff, 1);
    expect(hex(vram.treeDigest(buf, data.length, LEAF_BYTES))).not.toBe(tree);
    const back = new Uint8Array(data.length);
    vram.read(buf, 0, back);
    expect(back.findIndex((b, i) => b !== data[i])).toBe(2 * LEAF_BYTES + 1);
    vram.free(buf);
  });

  test("pointer attributes say device memory, not managed, no host pointer", () => {
    scriptFakes({});
    const buf = vram.alloc(1, 4096);
    expect(vram.pointerEvidence(buf)).toEqual({ memory_type: "device", is_managed: false, host_pointer_query: 1, device_ordinal: 1 });
    scriptFakes({ pointer_managed: 1 });
    expect(vram.pointerEvidence(buf)).toMatchObject({ is_managed: true, host_pointer_query: 0 });
    scriptFakes({});
    vram.free(buf);
  });

  test("cuMemGetInfo_v2 counts allocations; the driver refuses what does not fit", () => {
    scriptFakes({ mem_limit_mib: 64 });
    const before = vram.memInfo(0);
    expect(before.total).toBe(64 << 20);
    const buf = vram.alloc(0, 8 << 20);
    expect(vram.memInfo(0).free).toBe(before.free - (8 << 20));
    expect(() => vram.alloc(0, 64 << 20)).toThrow("CUDA_ERROR_OUT_OF_MEMORY");
    vram.free(buf);
    expect(vram.memInfo(0).free).toBe(before.free);
    expect(() => vram.write(buf, 0, new Uint8Array(1))).toThrow("freed");
    scriptFakes({});
  });

  test("copies past the end of a buffer are refused before they reach the driver", () => {
    const buf = vram.alloc(0, 100);
    expect(() => vram.write(buf, 90, new Uint8Array(11))).toThrow("Cannot reach bytes 90..101 of a 100-byte device buffer");
    vram.free(buf);
  });
});
