import { afterEach, describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { HostState, JobError } from "../../src/host/state.ts";
import type { Runner, RunOutcome, RunRequest } from "../../src/job/runner.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { leaseRecord } from "../../src/lease/records.ts";
import { LIMITS } from "../../src/contract/limits.ts";
import { FakeClock, memoryLogger, REPO, settle, tempDir } from "../helpers.ts";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const utf8 = (s: string) => new TextEncoder().encode(s).length;
const idle: Runner = { run: () => new Promise(() => {}) };
let host: HostState | undefined;
const cleanups: (() => void)[] = [];
afterEach(() => {
  host?.close();
  for (const c of cleanups.splice(0)) c();
});
const make = (
  o: Partial<ConstructorParameters<typeof HostState>[0]> = {},
) => (host = new HostState({
  gpus: () => MOCK_GPUS,
  runner: idle,
  runnerKind: "cpu",
  log: memoryLogger().log,
  onChange: () => {},
  clock: new FakeClock(),
  ...o,
}));

describe("PRIORITY cannot grow a full lease log past the VM's cap", () => {
  test("a full lease log, then PRIORITY 255: the lease log stays within 1 KiB", () => {
    const h = make();
    h.control("GPU-0", "LEASE w0 mem=1 streams=1 priority=1");
    const base = utf8(leaseRecord({ ...h.leases.live("GPU-0")[0]!, worker_id: "" }, "ACTIVE")) + 1;
    const room = () => LIMITS.leaseLogBytes - utf8(h.nodeLogs("GPU-0")!.lease!) - base;
    for (let i = 1; room() > 64; i++) h.control("GPU-0", `LEASE w${i} mem=1 streams=1 priority=1`);
    // One more lease whose worker id fills the log to the last byte, as admission counted it.
    const fill = room();
    expect(fill).toBeGreaterThan(0);
    expect(fill).toBeLessThanOrEqual(64);
    try {
      h.control("GPU-0", `LEASE ${"x".repeat(fill)} mem=1 streams=1 priority=1`);
    } catch { /* refused: it could not survive a PRIORITY 255 */ }
    h.control("GPU-0", "PRIORITY 255");
    expect(utf8(h.nodeLogs("GPU-0")!.lease!)).toBeLessThanOrEqual(LIMITS.leaseLogBytes);
  });
});

/** A runner whose jobs finish only when the test says so; records each request. */
class Gate implements Runner {
  readonly running: { req: RunRequest; finish: () => void }[] = [];
  maxConcurrent = 0;
  run(req: RunRequest, signal: AbortSignal): Promise<RunOutcome> {
    return new Promise((resolve) => {
      const entry = {
        req,
        finish: () => {
          this.running.splice(this.running.indexOf(entry), 1);
          resolve({ ok: true, summary: { kernel: req.spec.kernel, size: 1, checksum: 0, max_abs_error: 0, verified: 1, duration_ms: 1 } });
        },
      };
      this.running.push(entry);
      this.maxConcurrent = Math.max(this.maxConcurrent, this.running.length);
      signal.addEventListener("abort", () => entry.finish(), { once: true });
    });
  }
}
/** Operands (payload_b64): `n` bytes, little-endian f32 `a` then `b`. */
const payload = (n: number) => new Uint8Array(n).fill(7);
const descriptor = (id: string, o: Record<string, unknown> = {}, bytes = payload(64)) => ({
  job: id,
  kernel: "vadd",
  grid: [1, 1, 1],
  block: [64, 1, 1],
  bytes_hash: `sha256:${sha256Hex(bytes)}`,
  inputs: [],
  outputs: [],
  timeout_ms: 60_000,
  payload_b64: Buffer.from(bytes).toString("base64"),
  ...o,
});
/** The shipped vadd, staged as a bundle in a fresh directory. */
function stagedVadd(): { dir: string; ptx: Uint8Array } {
  const dir = tempDir("gbh-hard-");
  cleanups.push(dir.cleanup);
  const ptx = readFileSync(join(REPO, "src/job/ptx/generated/vadd.ptx"));
  writeFileSync(join(dir.path, "vadd.ptx"), ptx);
  return { dir: dir.path, ptx };
}
/** The seed's form: no payload, bytes_hash over the staged kernel, operands sized by grid x block. */
const seedDescriptor = (id: string, ptx: Uint8Array, o: Record<string, unknown> = {}) => ({
  job: id,
  kernel: "vadd",
  grid: [1, 1, 1],
  block: [64, 1, 1],
  bytes_hash: `sha256:${sha256Hex(ptx)}`,
  inputs: ["/bundles/vadd.ptx"],
  outputs: [],
  timeout_ms: 60_000,
  ...o,
});

describe("a lease's mem_mb holds across its concurrent jobs", () => {
  test("eight 100 MiB jobs on a 256 MiB lease with 8 streams: at most two run at once, each within what is left", async () => {
    const gate = new Gate();
    const { dir, ptx } = stagedVadd();
    const h = make({ runner: gate, bundleDir: dir });
    const l = h.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 256, streams: 8, ttl_s: 600, priority: 1 });
    // vadd uses 12 bytes per element: 8,738,304 elements are 100 MiB.
    for (let i = 0; i < 8; i++) h.submitJob(l.id, seedDescriptor(`j${i}`, ptx, { grid: [34134, 1, 1], block: [256, 1, 1] }));
    expect(gate.running.length).toBe(2);
    expect(gate.running[1]!.req.memLimitBytes).toBe(256 * 1048576 - 104_859_648);
    while (gate.running.length > 0) {
      gate.running[0]!.finish();
      await settle();
    }
    expect(gate.maxConcurrent).toBe(2);
    expect(h.jobs.list().filter((j) => j.state === "OK").length).toBe(8);
  });
});

describe("the job queue is bounded and queued jobs hold no payload they do not need", () => {
  test("on the CPU runner a queued job holds its operands but no kernel bytes, and a GPU's queue stops at 256 jobs (busy)", () => {
    const gate = new Gate();
    const { dir } = stagedVadd();
    const h = make({ runner: gate, bundleDir: dir });
    const l = h.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 1024, streams: 1, ttl_s: 600, priority: 1 });
    // Each names the staged kernel, which the CUDA runner would load and the CPU runner never reads.
    for (let i = 0; i < 257; i++) h.submitJob(l.id, descriptor(`q${i}`, { inputs: ["/bundles/vadd.ptx"] }));
    expect(h.jobs.queued()).toEqual({ jobs: 256, payloadBytes: 256 * 64 });
    let err: unknown;
    try {
      h.submitJob(l.id, descriptor("q-over"));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(JobError);
    expect((err as JobError).code).toBe("busy");
    expect((err as JobError).message).toContain("Job queue of GPU-0 is full");
  });

  test("on the CUDA runner queued kernels are bounded to 64 MiB together", () => {
    const gate = new Gate();
    const h = make({ runner: gate, runnerKind: "cuda" });
    const l = h.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 1024, streams: 1, ttl_s: 600, priority: 1 });
    const sixteen = payload(16 << 20);
    h.submitJob(l.id, descriptor("running", {}, sixteen)); // runs at once: not queued
    for (let i = 0; i < 4; i++) h.submitJob(l.id, descriptor(`c${i}`, {}, sixteen));
    expect(h.jobs.queued()).toEqual({ jobs: 4, payloadBytes: 64 << 20 });
    expect(() => h.submitJob(l.id, descriptor("c-over", {}, sixteen))).toThrow("retry later");
    gate.running[0]!.finish();
  });
});
