/**
 * The CUDA runner's real path (child process, FFI, params arrays, copies) against the fake
 * libcuda, which emulates the shipped kernels on the host. A real GPU run is in the notes.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ProcessRunner, type RunRequest } from "../../src/job/runner.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { REPO } from "../helpers.ts";
import { MATMUL_PTX, VADD_PTX } from "../../src/job/ptx/builtin.ts";
import { CTL_FILE, FAKE_CUDA, scriptFakes } from "../inventory/fakes.ts";

const runner = new ProcessRunner(bunRuntime(), { GPU_BRIDGE_CUDA_LIB: FAKE_CUDA, FAKE_GPU_CTL: CTL_FILE });
const ptx = (k: string) => readFileSync(join(REPO, "src/job/ptx/generated", `${k}.ptx`));
const req = (o: Partial<RunRequest> = {}): RunRequest => ({
  spec: { kernel: "vadd", grid: [64, 2, 1], block: [128, 2, 1] },
  runner: "cuda",
  memLimitBytes: 1 << 30,
  payload: ptx("vadd"),
  device: 0,
  ...o,
});
const run = (r: RunRequest, signal = new AbortController().signal) => runner.run(r, signal);

describe("the CUDA runner (fake driver)", () => {
  test("runs the shipped vadd and matmul PTX and verifies the results", async () => {
    scriptFakes({});
    expect(await run(req())).toMatchObject({ ok: true, summary: { kernel: "vadd", size: 32768, max_abs_error: 0 } });
    const mm = await run(req({ spec: { kernel: "matmul", grid: [2, 1, 1], block: [64, 1, 1] }, payload: ptx("matmul") }));
    expect(mm).toMatchObject({ ok: true, summary: { kernel: "matmul", size: 128 } });
  });

  test("runs Cohesix's operands on one thread ([1,1,1] x [1,1,1]): the shipped kernels loop grid-stride; the result comes back raw", async () => {
    scriptFakes({});
    const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
    const one = { grid: [1, 1, 1], block: [1, 1, 1] } as const;
    const v = await run(req({ spec: { kernel: "vadd", ...one }, operands: f32([1, 2, 3, 10, 20, 30]) }));
    expect(v.ok && [...new Float32Array(v.output!.slice().buffer)]).toEqual([11, 22, 33]);
    const m = await run(req({ spec: { kernel: "matmul", ...one }, payload: ptx("matmul"), operands: f32([1, 2, 3, 4, 5, 6, 7, 8]) }));
    expect(m.ok && [...new Float32Array(m.output!.slice().buffer)]).toEqual([19, 22, 43, 50]);
  });

  test("the PTX embedded in the binary (src/job/ptx/builtin.ts) is the shipped .ptx files'", () => {
    expect(VADD_PTX).toBe(ptx("vadd").toString());
    expect(MATMUL_PTX).toBe(ptx("matmul").toString());
    expect(VADD_PTX).toContain("%nctaid.x"); // the grid-stride loop reads the grid's size
  });

  test("maps driver failures to job details", async () => {
    scriptFakes({});
    expect(await run(req({ payload: new TextEncoder().encode("not ptx") }))).toMatchObject({ ok: false, detail: "INVALID_PTX" });
    expect(await run(req({ payload: ptx("matmul") }))).toMatchObject({ ok: false, detail: "INVALID_PTX" }); // no vadd entry in it
    scriptFakes({ launch_error: 719 });
    expect(await run(req())).toMatchObject({ ok: false, detail: "LAUNCH_FAILED" });
    scriptFakes({ mem_limit_mib: 0 });
    expect(await run(req())).toMatchObject({ ok: false, detail: "OUT_OF_MEMORY" });
    scriptFakes({});
  });

  test("a hung launch is killed at the timeout", async () => {
    scriptFakes({ launch_sleep_ms: 20_000 });
    const abort = new AbortController();
    setTimeout(() => abort.abort("TIMEOUT"), 300);
    const t0 = performance.now();
    expect(await run(req(), abort.signal)).toEqual({ ok: false, detail: "TIMEOUT" });
    expect(performance.now() - t0).toBeLessThan(3000);
    scriptFakes({});
  });
});
