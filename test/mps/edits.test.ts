/** The MPS client edits of a lease's CDI device: the cap's syntax, the SM share, and when there is no device. */
import { describe, expect, test } from "bun:test";
import { activeThreadPercentage, MPS_CONTAINER_PIPE, mpsClientEdits, mpsLeaseEdits, pinnedMemLimit } from "../../src/mps/edits.ts";

describe("MPS client edits", () => {
  test("the memory cap is device 0 (the one GPU the container sees) at the lease's MiB, as `0=512M`", () => {
    expect(pinnedMemLimit(512)).toBe("0=512M");
    expect(pinnedMemLimit(81559)).toBe("0=81559M");
  });

  test("the SM share is the lease's streams out of the GPU's, rounded down, at least 1; the whole GPU has no cap", () => {
    expect(activeThreadPercentage(4, 16)).toBe(25);
    expect(activeThreadPercentage(1, 3)).toBe(33); // never more than the share
    expect(activeThreadPercentage(2, 3)).toBe(66);
    expect(activeThreadPercentage(1, 1024)).toBe(1); // 0.09% would be no SMs at all
    expect(activeThreadPercentage(15, 16)).toBe(93);
    expect(activeThreadPercentage(16, 16)).toBeNull();
  });

  test("a capped lease gets the pipe folder mounted read-write where CUDA looks, and the two variables", () => {
    const e = mpsClientEdits({ mem_mb: 512, streams: 4 }, "/state/mps/GPU-0/pipe", 16);
    expect(e.env).toEqual([
      `CUDA_MPS_PIPE_DIRECTORY=${MPS_CONTAINER_PIPE}`,
      "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=512M",
      "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25",
    ]);
    expect(e.mounts).toEqual([{
      hostPath: "/state/mps/GPU-0/pipe",
      containerPath: "/tmp/nvidia-mps",
      options: ["nosuid", "nodev", "rbind", "rprivate", "noexec"],
    }]);
    expect(e.mounts![0]!.options).not.toContain("ro");
    expect(mpsClientEdits({ mem_mb: 512, streams: 16 }, "/p", 16).env).toEqual([
      "CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps",
      "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=512M",
    ]);
  });

  test("a lease whose GPU has no running daemon gets no device, and says why; a MIG lease needs no MPS", () => {
    const daemons = new Map([
      ["GPU-0", { state: "started" as const, pipe_dir: "/s/0" }],
      ["GPU-1", { state: "adopted" as const, pipe_dir: "/s/1" }],
      ["GPU-2", { state: "failed" as const, pipe_dir: "/s/2", reason: "nvidia-cuda-mps-control -d failed: boom" }],
      ["GPU-3", { state: "skipped" as const, pipe_dir: "/s/3", reason: "GPU-3 is in MIG mode" }],
    ]);
    const edits = mpsLeaseEdits((id) => daemons.get(id), 8);
    const lease = (gpu_id: string, mig_uuid?: string) => ({ gpu_id, mem_mb: 100, streams: 2, ...(mig_uuid && { mig_uuid }) });
    expect(edits(lease("GPU-0"))).toMatchObject({ mounts: [{ hostPath: "/s/0" }] });
    expect(edits(lease("GPU-1"))).toMatchObject({ mounts: [{ hostPath: "/s/1" }] });
    expect(edits(lease("GPU-2"))).toBe("--mps is on and GPU-2 has no MPS control daemon: nvidia-cuda-mps-control -d failed: boom");
    expect(edits(lease("GPU-3"))).toBe("--mps is on and GPU-3 has no MPS control daemon: GPU-3 is in MIG mode");
    expect(edits(lease("GPU-9"))).toContain("GPU-9 has no MPS control daemon");
    expect(edits(lease("GPU-3", "MIG-abc"))).toEqual({});
  });
});
