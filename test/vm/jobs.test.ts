/**
 * Jobs as Cohesix sends them (docs/protocol.md section 12), through the daemon against the mock VM:
 * worker-gpu's descriptors appended to /gpu/<id>/job run under the lease the Queen granted, the
 * seed's descriptor runs on the staged bundle, and both compute the right bytes.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { ConsoleConnection } from "../../mock/console/core.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { vaddA, vaddB } from "../../src/job/kernels.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { publishingServe } from "./helpers.ts";
import { source } from "../vram/vectors.ts";
import { memoryLogger, REPO, tempDir, until } from "../helpers.ts";

const runtime = bunRuntime();
let mock: MockConsole;
let daemon: Bridge;
let bundle: { path: string; cleanup: () => void };

beforeEach(async () => {
  mock = await startMockConsole(runtime, { token: "tok" });
  mock.state.vm.jobFiles = true; // the VM variant with /gpu/<id>/job
  bundle = tempDir("gbh-bundles-");
  copyFileSync(join(REPO, "src/job/ptx/generated/vadd.ptx"), join(bundle.path, "vadd.ptx"));
  const options = publishingServe(mock.port, "--readback-ms", "30", "--bundle-dir", bundle.path, "--runner", "cpu");
  daemon = await createBridge(options, { runtime, log: memoryLogger().log, backend: mockBackend() }, { noJournal: true });
  await until(() => mock.state.publishes === 1, 5000, "the first publish");
});
afterEach(async () => {
  await daemon.stop();
  await mock.close();
  bundle.cleanup();
});

const f32 = (xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
const statusLines = (gpu: string) =>
  (mock.state.read(`/gpu/${gpu}/status`) ?? "").trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));

/** The descriptor Cohesix's worker-gpu builds (section 12). */
function workerGpuJob(worker: string, kernel: "vadd" | "matmul", operands: Buffer, streams = 1) {
  const label = sha256Hex(worker).slice(0, 2);
  return {
    job: `job-${sha256Hex(operands).slice(0, 16)}`,
    kernel,
    grid: [1, 1, 1],
    block: [streams, 1, 1],
    bytes_hash: `sha256:${sha256Hex(operands)}`,
    inputs: [`/bundles/${kernel}.ptx`],
    outputs: [`/shard/${label}/worker/${worker}/result`],
    timeout_ms: 5000,
    payload_b64: operands.toString("base64"),
  };
}

describe("jobs as Cohesix sends them", () => {
  test("worker-gpu's descriptors in /gpu/<id>/job run under the Queen's lease and compute a+b and a·b", async () => {
    const queen = new ConsoleConnection(mock.state);
    queen.handle("AUTH tok");
    queen.handle("ATTACH queen ");
    queen.handle('ECHO /queen/ctl {"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":1024,"streams":2,"ttl_s":600}}');
    await until(() => daemon.host.leases.ofWorker("GPU-0", "worker-1") !== undefined, 3000, "the adoption");

    const a = [1, 2, 3, 4, 5, 6, 7, 8];
    const b = [0.5, 0.25, -1, 100, 7, 8, 9, 1e6];
    const vadd = workerGpuJob("worker-1", "vadd", f32([...a, ...b]), 2);
    // A descriptor is far over the console's 128-byte echo: worker-gpu writes it through its 9P mount.
    expect(mock.state.vm.append("/gpu/GPU-0/job", JSON.stringify(vadd))).toBeNull();
    const mm = workerGpuJob("worker-1", "matmul", f32([1, 2, 3, 4, 5, 6, 7, 8]));
    expect(mock.state.vm.append("/gpu/GPU-0/job", JSON.stringify(mm))).toBeNull();
    await until(() => daemon.host.jobs.get(mm.job)?.state === "OK" && daemon.host.jobs.get(vadd.job)?.state === "OK", 15_000, "both jobs");
    expect([...new Float32Array(daemon.host.jobs.get(vadd.job)!.output!.slice().buffer)]).toEqual(a.map((x, i) => Math.fround(x + b[i]!)));
    expect([...new Float32Array(daemon.host.jobs.get(mm.job)!.output!.slice().buffer)]).toEqual([19, 22, 43, 50]);
    expect(daemon.host.jobs.get(vadd.job)!.worker_id).toBe("worker-1");

    await until(() => statusLines("GPU-0").some((l) => l.job === mm.job && l.state === "OK"), 3000, "the OK line in the VM");
    await until(() => statusLines("GPU-0").some((l) => l.job === vadd.job && l.state === "OK"), 3000, "the vadd OK line");
    const mine = statusLines("GPU-0").filter((l) => l.job === vadd.job);
    expect(mine).toEqual([
      { job: vadd.job, state: "QUEUED", detail: "accepted" },
      { job: vadd.job, state: "RUNNING", detail: "scheduled" },
      { job: vadd.job, state: "OK", detail: "completed" },
    ]);
  });

  test(
    "a descriptor naming a sealed shard of the worker's lease as operand b computes a + the shard (/shards/<id> in inputs)",
    async () => {
      const queen = new ConsoleConnection(mock.state);
      queen.handle("AUTH tok");
      queen.handle("ATTACH queen ");
      queen.handle('ECHO /queen/ctl {"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":64,"streams":1,"ttl_s":600}}');
      await until(() => daemon.host.leases.ofWorker("GPU-0", "worker-1") !== undefined, 3000, "the adoption");
      const lease = daemon.host.leases.ofWorker("GPU-0", "worker-1")!;
      const b = f32([100, 200, 300, 400]);
      await daemon.vram.store!.seal(lease.id, source(new Uint8Array(b)), { shard_id: "vm-weights" });
      const a = f32([1, 2, 3, 4]);
      const d = { ...workerGpuJob("worker-1", "vadd", a), inputs: ["/bundles/vadd.ptx", "/shards/vm-weights"] };
      expect(mock.state.vm.append("/gpu/GPU-0/job", JSON.stringify(d))).toBeNull();
      await until(() => daemon.host.jobs.get(d.job)?.state === "OK", 15_000, "the job");
      expect([...new Float32Array(daemon.host.jobs.get(d.job)!.output!.slice().buffer)]).toEqual([101, 202, 303, 404]);
      expect(daemon.host.jobs.get(d.job)!.input_shard).toMatchObject({ shard_id: "vm-weights", mode: "full", access: "copy" });
      // A shard the worker's lease does not hold: the VM gets the refusal in its status log.
      const other = { ...workerGpuJob("worker-1", "vadd", f32([5, 6, 7, 8])), inputs: ["/shards/not-mine"] };
      expect(mock.state.vm.append("/gpu/GPU-0/job", JSON.stringify(other))).toBeNull();
      await until(() => statusLines("GPU-0").some((l) => l.job === other.job), 3000, "the refusal in the VM");
      // (the status line's detail is cut to fit the VM's line)
      expect(statusLines("GPU-0").find((l) => l.job === other.job)).toEqual({
        job: other.job,
        state: "ERR",
        detail: 'Invalid job descriptor: inputs.0: inputs[0] names shard "not-mine":…',
      });
    },
    20_000,
  );

  test("a descriptor whose output names no worker with a live lease is refused with a status line", async () => {
    const d = workerGpuJob("worker-9", "vadd", f32([1, 2]));
    expect(mock.state.vm.append("/gpu/GPU-1/job", JSON.stringify(d))).toBeNull();
    await until(() => statusLines("GPU-1").some((l) => l.job === d.job), 3000, "the refusal in the VM");
    expect(statusLines("GPU-1")).toContainEqual({ job: d.job, state: "ERR", detail: "worker-9 holds no live lease on GPU-1" });
  });

  test("the seed's descriptor (no payload, bytes_hash over the staged /bundles/vadd.ptx) runs on the bridge's own operands", async () => {
    const lease = daemon.host.grant({ gpu_id: "GPU-1", worker_id: "seed", mem_mb: 64, streams: 1, ttl_s: 60, priority: 0 });
    const ptx = Buffer.from(await Bun.file(join(bundle.path, "vadd.ptx")).arrayBuffer());
    daemon.host.submitJob(lease.id, {
      job: "seed-1",
      kernel: "vadd",
      grid: [1, 1, 1],
      block: [4, 1, 1],
      bytes_hash: `sha256:${sha256Hex(ptx)}`,
      inputs: ["/bundles/vadd.ptx"],
      outputs: ["/worker/seed/result"],
      timeout_ms: 5000,
    });
    await until(() => daemon.host.jobs.get("seed-1")?.state === "OK", 15_000, "the seed job");
    const out = [...new Float32Array(daemon.host.jobs.get("seed-1")!.output!.slice().buffer)];
    expect(out).toEqual([0, 1, 2, 3].map((i) => Math.fround(vaddA(i) + vaddB(i))));
  });
});
