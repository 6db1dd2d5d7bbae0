/**
 * Three Jetson generations (Nano on L4T R32, AGX Xavier on R35, Orin on R36) read from their
 * fake host trees under mock/jetson and the fake libcuda playing each GPU: discovery, stats,
 * and what the VRAM-only policy can and cannot promise on their shared memory.
 */
import { describe, expect, test } from "bun:test";
import { bunFfi } from "../../ffi/bun.ts";
import { CudaVram } from "../../ffi/cuda-vram.ts";
import { openNativeBackend } from "../../src/inventory/native.ts";
import { findGpuDevfreq, meminfo, sampleJetsonGpu, tegraRelease } from "../../src/inventory/sysfs.ts";
import { vramOnlyPolicy } from "../../src/vram/attest.ts";
import { CudaVramBackend } from "../../src/vram/cuda-backend.ts";
import { TREE_PTX } from "../../src/vram/ptx/generated/tree-ptx.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { FAKE_CUDA, FAKE_NVML, scriptFakes } from "./fakes.ts";
import { GENERATIONS, treeRoot } from "./jetson-trees.ts";

// JetPack 4 and 5 have no NVML; JetPack 6 has one that answers NOT_SUPPORTED.
const envFor = (tree: string) =>
  tree === "orin-r36"
    ? { GPU_BRIDGE_NVML_LIB: FAKE_NVML, GPU_BRIDGE_CUDA_LIB: FAKE_CUDA }
    : { GPU_BRIDGE_NVML_LIB: "/nonexistent/libnvidia-ml.so.1", GPU_BRIDGE_CUDA_LIB: FAKE_CUDA };

for (const g of GENERATIONS) {
  describe(`${g.tree} (${g.gpu}, L4T ${g.release})`, () => {
    const root = treeRoot(g);

    test("sysfs: the GPU's devfreq node, load, clocks, thermal zone, shared memory and release", () => {
      expect(findGpuDevfreq(root)).toBe(g.devfreq);
      expect(sampleJetsonGpu(root)).toEqual({ ...g.sample, governor: "nvhost_podgov" });
      const mem = meminfo(root);
      expect([Math.floor(mem.totalKb! / 1024), Math.floor(mem.availableKb! / 1024)]).toEqual([g.memory.totalMib, g.memory.freeMib]);
      expect(tegraRelease(root)).toBe(g.release);
    });

    test("auto discovery picks the Jetson backend and lists the GPU with its shared memory", async () => {
      scriptFakes({ jetson: g.fake });
      const b = openNativeBackend({ kind: "auto", adapter: bunFfi, env: envFor(g.tree), sysRoot: root });
      try {
        expect(b.name).toBe("jetson");
        expect(await b.list()).toEqual([
          {
            id: "GPU-0",
            name: g.gpu,
            memory_mb: g.memory.totalMib,
            sm_count: g.smCount,
            driver_version: g.release,
            runtime_version: g.cuda,
          },
        ]);
        expect((await b.stats())[0]).toMatchObject({
          source: "jetson",
          utilization_gpu_pct: g.sample.loadPct,
          temperature_c: g.sample.temperatureC,
          clock_graphics_mhz: Math.round(g.sample.curHz / 1e6),
          memory_total_mib: g.memory.totalMib,
          memory_free_mib: g.memory.freeMib,
          memory_used_mib: g.memory.totalMib - g.memory.freeMib,
          compute_capability: g.cc,
          power_w: null,
        });
      } finally {
        b.close();
        scriptFakes({});
      }
    });

    test("the VRAM-only policy is not applicable, saying what still holds and what cannot be promised", () => {
      scriptFakes({ jetson: g.fake });
      const pool = TreePool.create(1);
      const backend = new CudaVramBackend(CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX), pool);
      try {
        const device = backend.deviceEvidence(0);
        expect(device.attributes.integrated).toBe(1);
        const policy = vramOnlyPolicy(backend, device.integrated);
        expect(policy.status).toBe("not_applicable");
        expect(policy).toMatchObject({
          still_holds: expect.arrayContaining([expect.stringContaining("sealed tree digest")]),
          cannot_promise: expect.arrayContaining([expect.stringContaining("same DRAM")]),
        });
      } finally {
        backend.close();
        pool.close();
        scriptFakes({});
      }
    });
  });
}
