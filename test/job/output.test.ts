/**
 * A job's output lands under the bundle directory or nowhere: a symbolic link at the name
 * (dangling or not) or on the way is refused, never followed; a FIFO does not hang the bridge;
 * and an output holding `..` is refused at submission, naming the field and the value.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { HostState, JobError } from "../../src/host/state.ts";
import type { KernelSummary } from "../../src/job/kernels.ts";
import type { Runner, RunOutcome } from "../../src/job/runner.ts";
import { JobOutputError, writeJobOutput } from "../../src/job/output.ts";
import { validateJob } from "../../src/job/descriptor.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { memoryLogger, tempDir, until } from "../helpers.ts";

const okRunner: Runner = {
  run: (): Promise<RunOutcome> =>
    Promise.resolve({
      ok: true,
      summary: { kernel: "vadd", size: 1, checksum: 3, max_abs_error: 0, verified: 1, duration_ms: 1 } as KernelSummary,
    }),
};
const ops = Buffer.from(new Float32Array([1, 2]).buffer);
const job = (id: string, outputs: string[]) => ({
  job: id,
  kernel: "vadd",
  grid: [1, 1, 1],
  block: [1, 1, 1],
  bytes_hash: `sha256:${sha256Hex(ops)}`,
  inputs: [],
  outputs,
  timeout_ms: 10_000,
  payload_b64: ops.toString("base64"),
});

let bundle: { path: string; cleanup: () => void };
let outside: { path: string; cleanup: () => void };
let host: HostState;
beforeEach(() => {
  bundle = tempDir("gbh-out-bundle-");
  outside = tempDir("gbh-out-outside-");
  host = new HostState({
    gpus: () => MOCK_GPUS,
    runner: okRunner,
    runnerKind: "cpu",
    log: memoryLogger().log,
    onChange: () => {},
    bundleDir: bundle.path,
  });
});
afterEach(() => {
  host.close();
  bundle.cleanup();
  outside.cleanup();
});

async function run(id: string, output: string): Promise<{ state: string; detail: string; message: string | null }> {
  const lease = host.grant({ gpu_id: "GPU-0", worker_id: id, mem_mb: 64, streams: 1, ttl_s: 600, priority: 1 });
  host.submitJob(lease.id, job(id, [output]));
  await until(() => ["OK", "ERR"].includes(host.jobs.get(id)!.state), 5000, "the job to end");
  return host.jobs.get(id)!;
}

test("a dangling symlink at the output's name is refused, and nothing lands outside the bundle directory", async () => {
  symlinkSync(join(outside.path, "stolen.json"), join(bundle.path, "result.json"));
  const j = await run("dangling", "result.json");
  expect(j.state).toBe("ERR");
  expect(j.detail).toBe("OUTPUT_FAILED");
  expect(j.message).toContain("symbolic link");
  expect(existsSync(join(outside.path, "stolen.json"))).toBe(false);
});

test("a symlink to a file outside is not followed either (the file keeps its bytes)", async () => {
  writeFileSync(join(outside.path, "keep.txt"), "precious\n");
  symlinkSync(join(outside.path, "keep.txt"), join(bundle.path, "out.json"));
  expect((await run("live-link", "out.json")).detail).toBe("OUTPUT_FAILED");
  expect(readFileSync(join(outside.path, "keep.txt"), "utf8")).toBe("precious\n");
});

test("a symlinked folder on the way is refused", async () => {
  symlinkSync(outside.path, join(bundle.path, "sub"));
  const j = await run("via-folder", "sub/deeper/result.json");
  expect(j.detail).toBe("OUTPUT_FAILED");
  expect(j.message).toContain('"sub"');
  expect(existsSync(join(outside.path, "deeper"))).toBe(false);
});

test("folders are created under the bundle directory and the summary written there", async () => {
  const j = await run("nested", "a/b/result.json");
  expect(j.state).toBe("OK");
  expect(JSON.parse(readFileSync(join(bundle.path, "a/b/result.json"), "utf8"))).toMatchObject({ job: "nested", state: "OK" });
});

test("a FIFO at the output's name is refused at once, not waited on", () => {
  execFileSync("mkfifo", [join(bundle.path, "pipe.json")]);
  expect(() => writeJobOutput(bundle.path, "pipe.json", "x")).toThrow(JobOutputError);
  mkdirSync(join(bundle.path, "dir.json"));
  expect(() => writeJobOutput(bundle.path, "dir.json", "x")).toThrow(JobOutputError);
});

test("an output holding '..' is refused at submission, naming the field and the value", () => {
  const lease = host.grant({ gpu_id: "GPU-0", worker_id: "dots", mem_mb: 64, streams: 1, ttl_s: 600, priority: 1 });
  for (const [i, bad] of [[0, "../escape.json"], [1, "a/../../b.json"], [0, "/worker/../x/result"]] as const) {
    const outputs = i === 0 ? [bad] : ["fine.json", bad];
    let err: unknown;
    try {
      host.submitJob(lease.id, job(`dots-${i}`, outputs));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(JobError);
    expect((err as JobError).code).toBe("invalid");
    expect((err as JobError).message).toContain(`outputs.${i}`);
    expect((err as JobError).message).toContain(JSON.stringify(bad));
  }
  expect(host.jobs.list()).toEqual([]);
  const r = validateJob(job("ok", ["x/y.json", "/worker/w1/result"]));
  expect(r.ok).toBe(true);
});
