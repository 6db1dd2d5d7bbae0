import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { HostState, JobError } from "../../src/host/state.ts";
import type { KernelSummary } from "../../src/job/kernels.ts";
import { ProcessRunner, type Runner, type RunOutcome, type RunRequest } from "../../src/job/runner.ts";
import { LeaseJournal } from "../../src/lease/journal.ts";
import { LeaseError } from "../../src/lease/types.ts";
import type { NodeLogs } from "../../src/contract/namespace.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { FakeClock, memoryLogger, REPO, settle, tempDir, until } from "../helpers.ts";

/** A runner whose jobs finish only when the test says so. */
class GateRunner implements Runner {
  readonly running: { req: RunRequest; finish: (o?: RunOutcome) => void }[] = [];
  readonly started: string[] = [];
  maxConcurrent = 0;
  run(req: RunRequest, signal: AbortSignal): Promise<RunOutcome> {
    return new Promise((resolve) => {
      const entry = {
        req,
        finish: (
          o: RunOutcome = {
            ok: true,
            summary: { kernel: req.spec.kernel, size: 1, checksum: 0, max_abs_error: 0, verified: 1, duration_ms: 1 } as KernelSummary,
          },
        ) => {
          this.running.splice(this.running.indexOf(entry), 1);
          resolve(o);
        },
      };
      this.running.push(entry);
      this.started.push(String(req.spec.grid[0]));
      this.maxConcurrent = Math.max(this.maxConcurrent, this.running.length);
      signal.addEventListener("abort", () => entry.finish({ ok: false, detail: String(signal.reason) }), { once: true });
    });
  }
}

/** Operands as Cohesix sends them: little-endian f32, a then b. */
const f32 = (...xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
const operands = f32(1, 2, 3, 4, 10, 20, 30, 40);
/** A job descriptor; grid.x doubles as a tag the GateRunner records. */
const job = (id: string, o: Record<string, unknown> = {}) => ({
  job: id,
  kernel: "vadd",
  grid: [1, 1, 1],
  block: [64, 1, 1],
  bytes_hash: `sha256:${sha256Hex(operands)}`,
  inputs: [],
  outputs: [],
  timeout_ms: 10_000,
  payload_b64: operands.toString("base64"),
  ...o,
});
/** The seed's form: no payload, bytes_hash over the staged bundle, operands generated from grid x block. */
const seedJob = (id: string, bundle: string, kernel: "vadd" | "matmul", o: Record<string, unknown> = {}) => {
  const ptx = readFileSync(join(REPO, "src/job/ptx/generated", `${kernel}.ptx`));
  writeFileSync(join(bundle, `${kernel}.ptx`), ptx);
  return {
    job: id,
    kernel,
    grid: [1, 1, 1],
    block: [1, 1, 1],
    bytes_hash: `sha256:${sha256Hex(ptx)}`,
    inputs: [`/bundles/${kernel}.ptx`],
    outputs: [],
    timeout_ms: 10_000,
    ...o,
  };
};

let clock: FakeClock;
let changes: number;
let runner: GateRunner;
let host: HostState;
const make = (o: Partial<ConstructorParameters<typeof HostState>[0]> = {}) =>
  new HostState({
    gpus: () => MOCK_GPUS,
    runner,
    runnerKind: "cpu",
    log: memoryLogger().log,
    onChange: () => changes++,
    clock,
    ...o,
  });

beforeEach(() => {
  clock = new FakeClock();
  changes = 0;
  runner = new GateRunner();
  host = make();
});
afterEach(() => host.close());

const logs = (gpu = "GPU-0") => host.nodeLogs(gpu) as Required<NodeLogs>;

describe("control verbs and the mirrored logs", () => {
  test("LEASE and RELEASE write the contract's ctl, lease and status lines", () => {
    host.control("GPU-0", "LEASE worker-1 mem=4096 streams=2 priority=5");
    expect(logs().ctl).toBe("LEASE GPU-0\nLEASE worker-1 mem=4096 streams=2 priority=5\n");
    expect(logs().lease).toBe(
      '{"schema":"gpu-lease/v1","state":"ACTIVE","gpu_id":"GPU-0","worker_id":"worker-1","mem_mb":4096,"streams":2,"ttl_s":120,"priority":5}\n',
    );
    host.control("GPU-0", "RELEASE worker-1 done");
    expect(logs().ctl.split("\n")[2]).toBe("RELEASE worker-1 done");
    expect(logs().lease.split("\n")[1]).toContain('"state":"RELEASED"');
    expect(logs().status).toBe('{"job":"worker-1","state":"LEASE-ENDED","detail":"done"}\n');
    expect(changes).toBeGreaterThanOrEqual(2);
    expect(host.nodeLogs("GPU-1")).toBeUndefined(); // untouched GPUs keep their seeds
  });

  test("control refusals say why", () => {
    expect(() => host.control("GPU-7", "RESET")).toThrow('Unknown GPU "GPU-7"');
    expect(() => host.control("GPU-0", "RELEASE nobody")).toThrow("nobody holds no lease on GPU-0");
    expect(() => host.control("GPU-1", "LEASE w mem=9000 streams=1 priority=1")).toThrow(
      "insufficient memory on GPU-1: requested 9000 MiB, 8192 MiB unleased",
    );
  });

  test("the lease log never outgrows 1 KiB: a grant it cannot hold is refused", () => {
    let granted = 0;
    for (let i = 0; i < 20; i++) {
      try {
        host.control("GPU-0", `LEASE worker-${i} mem=1 streams=1 priority=1`);
        granted++;
      } catch (e) {
        expect((e as LeaseError).message).toStartWith("lease log full on GPU-0");
      }
    }
    expect(granted).toBeGreaterThan(4);
    expect(granted).toBeLessThan(20);
    expect(new TextEncoder().encode(logs().lease).length).toBeLessThanOrEqual(1024);
    expect(logs().lease.split("\n").filter((l) => l.includes("ACTIVE")).length).toBe(granted);
  });

  test("an expired lease is released, logged, and refuses further jobs with a permission error", () => {
    const { lease } = host.control("GPU-0", "LEASE w1 mem=1024 streams=1 priority=1 ttl=30");
    clock.advance(30_000);
    expect(lease!.state).toBe("RELEASED");
    expect(logs().ctl).toContain("RELEASE w1 expired");
    expect(logs().status).toContain('{"job":"w1","state":"LEASE-ENDED","detail":"expired"}');
    const err = (() => {
      try {
        host.submitJob(lease!.id, job("late"));
      } catch (e) {
        return e as JobError;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(JobError);
    expect(err!.code).toBe("permission");
  });
});

describe("jobs", () => {
  test("QUEUED -> RUNNING -> OK, each mirrored into the status log", async () => {
    const { lease } = host.control("GPU-0", "LEASE w mem=1024 streams=1 priority=1");
    host.submitJob(lease!.id, job("j1"));
    expect(host.jobs.get("j1")!.state).toBe("RUNNING");
    runner.running[0]!.finish();
    await until(() => host.jobs.get("j1")!.state === "OK");
    expect(logs().status.split("\n").slice(0, 3)).toEqual([
      '{"job":"j1","state":"QUEUED","detail":"accepted"}',
      '{"job":"j1","state":"RUNNING","detail":"scheduled"}',
      '{"job":"j1","state":"OK","detail":"completed"}',
    ]);
  });

  test("a lease runs at most `streams` jobs at once, the rest wait", async () => {
    const { lease } = host.control("GPU-0", "LEASE w mem=1024 streams=2 priority=1");
    for (let i = 0; i < 5; i++) host.submitJob(lease!.id, job(`j${i}`));
    expect(runner.running.length).toBe(2);
    while (runner.running.length > 0) {
      runner.running[0]!.finish();
      await settle();
    }
    expect(runner.maxConcurrent).toBe(2);
    expect(host.jobs.list().every((j) => j.state === "OK")).toBe(true);
  });

  test("priority orders the queue across leases, and PRIORITY reorders it", async () => {
    const low = host.control("GPU-0", "LEASE low mem=1024 streams=1 priority=1").lease!;
    const high = host.control("GPU-0", "LEASE high mem=1024 streams=1 priority=9").lease!;
    // Occupy both leases' single stream, then queue one job under each.
    host.submitJob(low.id, job("busy-low", { grid: [100, 1, 1] }));
    host.submitJob(high.id, job("busy-high", { grid: [101, 1, 1] }));
    host.submitJob(low.id, job("next-low", { grid: [1, 1, 1] }));
    host.submitJob(high.id, job("next-high", { grid: [2, 1, 1] }));
    host.control("GPU-0", "PRIORITY 50 worker=low");
    expect(logs().ctl).toContain("PRIORITY 50 worker=low");
    runner.running.find((r) => r.req.spec.grid[0] === 100)!.finish();
    runner.running.find((r) => r.req.spec.grid[0] === 101)!.finish();
    await until(() => runner.started.length === 4);
    expect(runner.started.slice(2)).toEqual(["1", "2"]); // low's job first: its priority is now 50
  });

  test("RESET releases every lease of the GPU and ends queued and running jobs with LEASE-ENDED", async () => {
    const { lease } = host.control("GPU-0", "LEASE w mem=1024 streams=1 priority=1");
    host.submitJob(lease!.id, job("run"));
    host.submitJob(lease!.id, job("wait"));
    host.control("GPU-0", "RESET");
    await until(() => host.jobs.get("run")!.state === "ERR");
    expect(host.jobs.get("run")!.detail).toBe("LEASE-ENDED");
    expect(host.jobs.get("wait")!.detail).toBe("LEASE-ENDED");
    expect(lease!.released_reason).toBe("reset");
    expect(logs().ctl).toContain("RESET\nRELEASE w reset\n");
  });

  test("submission errors name the field; duplicate ids conflict", () => {
    const { lease } = host.control("GPU-0", "LEASE w mem=1024 streams=1 priority=1");
    try {
      host.submitJob(lease!.id, job("bad", { bytes_hash: "sha256:xyz" }));
      throw new Error("expected a JobError");
    } catch (e) {
      expect((e as JobError).code).toBe("invalid");
      expect((e as JobError).message).toBe("Invalid job descriptor: bytes_hash: bytes_hash must contain 64 hex characters");
    }
    host.submitJob(lease!.id, job("dup"));
    expect(() => host.submitJob(lease!.id, job("dup"))).toThrow("Job dup already exists");
  });
});

describe("jobs in real child processes", () => {
  let bundle: { path: string; cleanup: () => void };
  beforeEach(() => (bundle = tempDir("gbh-bundle-")));
  afterEach(() => bundle.cleanup());

  test("computes the seed's vadd (generated operands) on the CPU, verifies it and writes the summary into the bundle", async () => {
    host.close();
    host = make({ runner: new ProcessRunner(bunRuntime()), bundleDir: bundle.path, clock: undefined });
    const lease = host.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 1024, streams: 1, ttl_s: 60, priority: 1 });
    host.submitJob(lease.id, seedJob("real", bundle.path, "vadd", { grid: [256, 1, 1], block: [256, 1, 1], outputs: ["result.json"] }));
    await until(() => host.jobs.get("real")!.state === "OK", 15_000, "the job to finish");
    expect(host.jobs.get("real")!.result).toMatchObject({ kernel: "vadd", size: 65536, max_abs_error: 0, verified: 65536 });
    expect(host.jobs.get("real")!.output!.length).toBe(65536 * 4);
    await until(() => existsSync(join(bundle.path, "result.json")));
    expect(JSON.parse(readFileSync(join(bundle.path, "result.json"), "utf8"))).toMatchObject({ job: "real", state: "OK" });
  });

  test("timeout_ms is timed by the injected clock: the job is aborted at its deadline, not a millisecond before", async () => {
    const lease = host.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 1024, streams: 1, ttl_s: 600, priority: 1 });
    host.submitJob(lease.id, job("hung", { timeout_ms: 2500 }));
    await clock.run(0);
    expect(host.jobs.get("hung")!.state).toBe("RUNNING");
    await clock.run(2499);
    expect(host.jobs.get("hung")!.state).toBe("RUNNING");
    await clock.run(1);
    expect(host.jobs.get("hung")).toMatchObject({ state: "ERR", detail: "TIMEOUT" });
    expect(host.jobs.get("hung")!.finished_at! - host.jobs.get("hung")!.started_at!).toBe(2500);
  });

  test("timeout_ms kills the job's process: ERR TIMEOUT", async () => {
    host.close();
    host = make({ runner: new ProcessRunner(bunRuntime()), clock: undefined, bundleDir: bundle.path });
    const lease = host.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 8192, streams: 1, ttl_s: 60, priority: 1 });
    // A 4096 x 4096 matmul takes minutes on a CPU; the job gets 300 ms.
    const t0 = performance.now();
    host.submitJob(lease.id, seedJob("slow", bundle.path, "matmul", { grid: [16, 1, 1], block: [256, 1, 1], timeout_ms: 300 }));
    await until(() => host.jobs.get("slow")!.state === "ERR", 10_000, "the timeout");
    expect(host.jobs.get("slow")!.detail).toBe("TIMEOUT");
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(logs().status).toContain('{"job":"slow","state":"ERR","detail":"TIMEOUT"}');
  });

  test("a job needing more memory than its lease ends ERR OUT_OF_MEMORY", async () => {
    host.close();
    host = make({ runner: new ProcessRunner(bunRuntime()), clock: undefined, bundleDir: bundle.path });
    const lease = host.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 1, streams: 1, ttl_s: 60, priority: 1 });
    host.submitJob(lease.id, seedJob("big", bundle.path, "matmul", { grid: [4, 1, 1], block: [256, 1, 1] }));
    await until(() => host.jobs.get("big")!.state === "ERR", 10_000);
    expect(host.jobs.get("big")!.detail).toBe("OUT_OF_MEMORY");
    expect(host.jobs.get("big")!.message).toBe("matmul needs 12 MiB, over the lease's 1 MiB");
  });
});

describe("persistence", () => {
  test("leases survive a restart; one whose TTL passed while down is released at start-up", () => {
    const dir = tempDir("gbh-state-");
    try {
      const path = join(dir.path, "leases.jsonl");
      host.close();
      host = make({ journal: new LeaseJournal(path) });
      const short = host.grant({ gpu_id: "GPU-0", worker_id: "short", mem_mb: 1, streams: 1, ttl_s: 10, priority: 1 });
      const long = host.grant({ gpu_id: "GPU-0", worker_id: "long", mem_mb: 2, streams: 1, ttl_s: 1000, priority: 1 });
      const gone = host.grant({ gpu_id: "GPU-1", worker_id: "gone", mem_mb: 3, streams: 1, ttl_s: 1000, priority: 1 });
      host.leases.release(gone.id, "done");
      host.close();
      writeFileSync(path, readFileSync(path, "utf8") + '{"op":"grant","lease":{"id":"tor'); // a crash mid-write

      clock = new FakeClock(clock.now() + 60_000); // the bridge was down for a minute
      const { log, lines } = memoryLogger();
      host = make({ journal: new LeaseJournal(path), log });
      host.restore();
      expect(host.leases.live().map((l) => l.id)).toEqual([long.id]);
      expect(host.leases.get(short.id)!.released_reason).toBe("expired");
      expect(host.leases.get(gone.id)).toBeUndefined();
      expect(lines.some((l) => l.includes("torn last line"))).toBe(true);
      expect(host.nodeLogs("GPU-0")!.lease).toContain('"worker_id":"long"');
      // The journal was compacted to the one live lease.
      expect(readFileSync(path, "utf8").trim().split("\n").length).toBe(1);
    } finally {
      dir.cleanup();
    }
  });
});
