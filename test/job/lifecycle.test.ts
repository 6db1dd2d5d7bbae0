/**
 * What a finished job keeps, and for how long (src/job/retention.ts), on a fake clock; and a
 * stop: nothing starts after it, queued jobs end, and `idle()` waits for the last child.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { HostState } from "../../src/host/state.ts";
import type { KernelSummary } from "../../src/job/kernels.ts";
import type { Runner, RunOutcome, RunRequest } from "../../src/job/runner.ts";
import type { RetentionPolicy } from "../../src/job/retention.ts";
import { renderMetrics } from "../../src/api/metrics.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { FakeClock, memoryLogger, settle } from "../helpers.ts";

const KIB = new Uint8Array(1024);

/** A runner whose jobs end when the test says; an aborted job's "child" exits only on `exit()`. */
class HeldRunner implements Runner {
  readonly started: string[] = [];
  readonly live: { job: string; ok: () => void; exit: () => void }[] = [];
  run(req: RunRequest, signal: AbortSignal): Promise<RunOutcome> {
    const job = String(req.spec.grid[0]);
    this.started.push(job);
    return new Promise((resolve) => {
      const entry = {
        job,
        ok: () => {
          this.live.splice(this.live.indexOf(entry), 1);
          const summary = { kernel: "vadd", size: 1, checksum: 0, max_abs_error: 0, verified: 1, duration_ms: 1 } as KernelSummary;
          resolve({ ok: true, summary, output: KIB });
        },
        exit: () => {
          this.live.splice(this.live.indexOf(entry), 1);
          resolve({ ok: false, detail: String(signal.reason) });
        },
      };
      this.live.push(entry);
    });
  }
}

const ops = Buffer.from(new Float32Array([1, 2, 3, 4]).buffer);
const job = (n: number) => ({
  job: `j${n}`,
  kernel: "vadd",
  grid: [n, 1, 1],
  block: [1, 1, 1],
  bytes_hash: `sha256:${sha256Hex(ops)}`,
  inputs: [],
  outputs: [],
  timeout_ms: 3_600_000,
  payload_b64: ops.toString("base64"),
});

let clock: FakeClock;
let runner: HeldRunner;
let host: HostState;
const make = (retention: Partial<RetentionPolicy>) =>
  new HostState({ gpus: () => MOCK_GPUS, runner, runnerKind: "cpu", log: memoryLogger().log, onChange: () => {}, clock, retention });
beforeEach(() => {
  clock = new FakeClock();
  runner = new HeldRunner();
});
afterEach(() => host.close());

/** Runs jobs 1..n one after another on a lease with one stream, each finishing OK with 1 KiB. */
async function runJobs(from: number, to: number): Promise<void> {
  const lease = host.grant({ gpu_id: "GPU-0", worker_id: `w${from}`, mem_mb: 64, streams: 1, ttl_s: 86_400, priority: 1 });
  for (let n = from; n <= to; n++) {
    host.submitJob(lease.id, job(n));
    await settle();
    runner.live[0]!.ok();
    await settle();
  }
  host.leases.release(lease.id, "done");
}

test("a job that leaves the table takes its result with it: nothing is held that the API cannot reach", async () => {
  host = make({ finishedJobs: 3, resultBytes: 1 << 30 });
  await runJobs(1, 5);
  expect(host.jobs.get("j1")).toBeUndefined();
  expect(host.jobs.get("j2")).toBeUndefined();
  expect(host.jobs.get("j5")!.output!.length).toBe(1024);
  expect(host.jobs.results()).toEqual({ count: 3, bytes: 3 * 1024 });
});

test("results are freed past the byte budget, oldest first; the record keeps their size and SHA-256", async () => {
  host = make({ resultBytes: 2.5 * 1024 });
  await runJobs(1, 4);
  expect(host.jobs.results()).toEqual({ count: 2, bytes: 2048 });
  const old = host.jobs.get("j1")!;
  expect(old.output).toBeNull();
  expect(old.output_bytes).toBe(1024);
  expect(old.output_sha256).toBe(sha256Hex(KIB));
  expect(host.jobs.get("j4")!.output).not.toBeNull();
});

test("results are freed after their age and jobs leave the table after theirs, on an idle bridge too", async () => {
  host = make({ resultAgeMs: 60_000, finishedAgeMs: 600_000 });
  await runJobs(1, 2);
  clock.advance(30_000);
  await runJobs(3, 3);
  expect(host.jobs.results().count).toBe(3);
  clock.advance(30_000); // j1 and j2 reach 60 s; nothing else happens: the timer frees them
  expect(host.jobs.results()).toEqual({ count: 1, bytes: 1024 });
  expect(host.jobs.get("j1")!.output).toBeNull();
  expect(host.jobs.get("j1")!.state).toBe("OK");
  clock.advance(30_000);
  expect(host.jobs.results()).toEqual({ count: 0, bytes: 0 });
  clock.advance(600_000 - 90_000);
  expect(host.jobs.get("j1")).toBeUndefined();
  expect(host.jobs.get("j3")).toBeDefined();
  clock.advance(30_000);
  expect(host.jobs.list()).toEqual([]);
});

test("the metrics show the results held", () => {
  const text = renderMetrics({
    hostname: "h",
    version: "v",
    stats: [],
    publisher: null,
    leases: [],
    jobs: {},
    jobResults: { count: 2, bytes: 2048 },
  });
  expect(text).toContain("gpu_bridge_job_results 2\n");
  expect(text).toContain("gpu_bridge_job_results_bytes 2048\n");
});

test("a stop starts nothing more, ends queued jobs, and idle() waits until the last child has exited", async () => {
  host = make({});
  const lease = host.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 64, streams: 1, ttl_s: 86_400, priority: 1 });
  host.submitJob(lease.id, job(1));
  host.submitJob(lease.id, job(2));
  await settle();
  expect(runner.started).toEqual(["1"]);
  host.jobs.close();
  const idle = host.jobs.idle(1500);
  let done = null as boolean | null;
  void idle.then((v) => (done = v));
  await settle();
  expect(host.jobs.get("j2")!.state).toBe("ERR");
  expect(host.jobs.get("j2")!.detail).toBe("SHUTDOWN");
  expect(done).toBeNull(); // the killed child has not exited yet
  runner.live[0]!.exit();
  await settle();
  expect(runner.started).toEqual(["1"]); // j2 never started
  expect(done).toBe(true);
  expect(host.jobs.get("j1")!.detail).toBe("SHUTDOWN");
  expect(host.jobs.refusal("GPU-0", { descriptor: job(3), payload: ops, operands: ops, ptx: null } as never)).toContain("stopping");
});

test("idle() gives up after its bound, saying so", async () => {
  host = make({});
  const lease = host.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 64, streams: 1, ttl_s: 86_400, priority: 1 });
  host.submitJob(lease.id, job(1));
  await settle();
  host.jobs.close();
  let done = null as boolean | null;
  void host.jobs.idle(1500).then((v) => (done = v));
  await clock.run(1500);
  expect(done).toBe(false);
  runner.live[0]!.exit();
});

test("over the API: a freed result is a 404 that says why, and /metrics shows what is held", async () => {
  const [{ createApp }, { bridgeFacade }, { builtinCatalog }, { mockStats }] = await Promise.all([
    import("../../src/api/app.ts"),
    import("../../src/app/bridge.ts"),
    import("../../src/models/catalog.ts"),
    import("../../src/inventory/mock.ts"),
  ]);
  host = make({ resultAgeMs: 60_000 });
  const app = createApp({
    token: "test-token-0123456789",
    log: memoryLogger().log,
    bridge: bridgeFacade({
      version: "9.9.9",
      hostname: "edge-01",
      gpus: () => MOCK_GPUS,
      stats: () => Promise.resolve(mockStats()),
      host,
      models: { catalog: () => builtinCatalog(), setActive: () => {} },
    }),
  });
  await runJobs(1, 1);
  expect((await app.request("/v1/jobs/j1/result")).status).toBe(200);
  expect(await (await app.request("/metrics")).text()).toContain("gpu_bridge_job_results_bytes 1024\n");
  clock.advance(60_000);
  const res = await app.request("/v1/jobs/j1/result");
  expect(res.status).toBe(404);
  expect(await res.text()).toContain("its result was freed (results are kept for 60 s, up to 64 MiB in all)");
  expect(await (await app.request("/metrics")).text()).toContain("gpu_bridge_job_results_bytes 0\n");
  expect(((await (await app.request("/v1/jobs/j1")).json()) as { state: string }).state).toBe("OK");
});
