/** The keeper with MPS edits: merged into each lease's device, following the lease's terms at once. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { CdiKeeper } from "../../src/cdi/keeper.ts";
import type { CdiSpec } from "../../src/cdi/schema.ts";
import { LeaseManager } from "../../src/lease/manager.ts";
import { mpsLeaseEdits } from "../../src/mps/edits.ts";
import { FakeClock, memoryLogger, tempFolder } from "../helpers.ts";

const node = (i: number) => ({ path: `/dev/nvidia${i}`, type: "c", major: 195, minor: i });
const spec: CdiSpec = {
  cdiVersion: "0.5.0",
  kind: "cohesix/gpu",
  devices: [{ name: "0", containerEdits: { deviceNodes: [node(0)] } }, { name: "1", containerEdits: { deviceNodes: [node(1)] } }],
  containerEdits: {
    env: ["NVIDIA_VISIBLE_DEVICES=void"],
    mounts: [{
      hostPath: "/tmp/nvidia-mps",
      containerPath: "/tmp/nvidia-mps",
      options: ["nosuid", "nodev", "rbind", "rprivate", "noexec"],
    }],
  },
};

test("a lease's device gets its GPU's MPS edits after its own, and a change of terms rewrites the cap at once", async () => {
  const clock = new FakeClock();
  const leases = new LeaseManager({
    gpus: () => [{ id: "GPU-0", memory_mb: 40960 }, { id: "GPU-1", memory_mb: 40960 }],
    clock,
    maxStreamsPerGpu: 8,
  });
  const daemons = new Map([["GPU-0", { state: "started" as const, pipe_dir: "/state/mps/GPU-0/pipe" }]]);
  const { log, lines } = memoryLogger();
  const keeper = new CdiKeeper({
    dir: tempFolder("keeper-caps-"),
    generate: () => Promise.resolve({ spec, warnings: [] }),
    leases,
    log,
    clock,
    leaseEdits: mpsLeaseEdits((id) => daemons.get(id), 8),
  });
  await keeper.start();
  const read = () => JSON.parse(readFileSync(keeper.path, "utf8")) as CdiSpec;
  const l = leases.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 1000, streams: 2, ttl_s: 60, priority: 1 });
  expect(read().devices.find((d) => d.name === l.id)!.containerEdits).toEqual({
    env: [
      `GPU_BRIDGE_LEASE_ID=${l.id}`,
      "CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps",
      "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=1000M",
      "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25",
    ],
    deviceNodes: [node(0)],
    mounts: [{
      hostPath: "/state/mps/GPU-0/pipe",
      containerPath: "/tmp/nvidia-mps",
      options: ["nosuid", "nodev", "rbind", "rprivate", "noexec"],
    }],
  });
  leases.amend(l.id, { mem_mb: 3000, streams: 8, ttl_s: 60, priority: 1 });
  expect(read().devices.find((d) => d.name === l.id)!.containerEdits.env).toEqual([
    `GPU_BRIDGE_LEASE_ID=${l.id}`,
    "CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps",
    "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=3000M",
  ]);
  // GPU-1 has no daemon: its lease gets no device, and the log says why.
  const other = leases.grant({ gpu_id: "GPU-1", worker_id: "w", mem_mb: 10, streams: 1, ttl_s: 60, priority: 1 });
  expect(keeper.deviceFor(other.id)).toBeNull();
  expect(lines.some((x) => x.includes(`Lease ${other.id} has no CDI device: --mps is on and GPU-1 has no MPS control daemon`))).toBe(true);
  keeper.stop();
});
