/**
 * `--k8s-share N` with `--mps`: a share is a lease of 1/N of its GPU's memory, and the lease's CDI
 * device makes its container an MPS client pinned at exactly that memory, so a pod cannot use more
 * than its share (the cap is enforced by MPS, not only counted by the bridge).
 */
import { expect, test } from "bun:test";
import { Allocations } from "../../src/k8s/allocations.ts";
import { advertised, type PluginGpu } from "../../src/k8s/devices.ts";
import { LeaseManager } from "../../src/lease/manager.ts";
import { mpsLeaseEdits } from "../../src/mps/edits.ts";
import { FakeClock } from "../helpers.ts";

const GPUS: PluginGpu[] = [{ gpuId: "GPU-0", uuid: "GPU-aaaa", memoryMb: 16384, numa: 0, healthy: true }];

test("each of 4 shares is a quarter of the GPU's memory, and its device pins an MPS client at that quarter", () => {
  const clock = new FakeClock();
  const leases = new LeaseManager({ gpus: () => GPUS.map((g) => ({ id: g.gpuId, memory_mb: g.memoryMb })), clock });
  const a = new Allocations({ leases, clock, share: 4, graceMs: 1000, memoryOf: () => 16384 });
  const edits = mpsLeaseEdits(() => ({ state: "started", pipe_dir: "/state/mps/GPU-0/pipe" }), 16);
  const granted = a.allocate([["GPU-aaaa::0"], ["GPU-aaaa::1"]], advertised(GPUS, 4)).flatMap((g) => g.leases);
  expect(granted.map((l) => l.mem_mb)).toEqual([4096, 4096]);
  for (const lease of granted) {
    const e = edits(lease);
    if (typeof e === "string") throw new Error(e);
    expect(e.env).toContain("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=4096M");
    expect(e.env).toContain("CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps");
  }
});
