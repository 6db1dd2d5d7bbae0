/**
 * validateJob() under `--allowed-kernels`: what a job runs (the bridge's vadd or matmul, or a
 * staged PTX bundle) must be in the list, else the job is refused naming the kernel and the
 * setting; a job that names a .ptx input that is not staged runs the bridge's own kernel, so
 * that kernel is the one checked.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { JobKernel } from "../../src/config/defaults.ts";
import { validateJob } from "../../src/job/descriptor.ts";
import { kernelOf } from "../../src/job/kernel-policy.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { tempDir } from "../helpers.ts";

const f32 = (...xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
const vaddOperands = f32(1, 2, 3, 10, 20, 30);
const matmulOperands = f32(1, 2, 3, 4, 5, 6, 7, 8);
const job = (kernel: "vadd" | "matmul", o: Record<string, unknown> = {}) => {
  const operands = kernel === "vadd" ? vaddOperands : matmulOperands;
  return {
    job: "job-1",
    kernel,
    grid: [1, 1, 1],
    block: [32, 1, 1],
    bytes_hash: `sha256:${sha256Hex(operands)}`,
    inputs: [],
    outputs: [],
    timeout_ms: 5000,
    payload_b64: operands.toString("base64"),
    ...o,
  };
};

let dir: { path: string; cleanup: () => void };
beforeEach(() => {
  dir = tempDir("gbh-kernels-");
  writeFileSync(join(dir.path, "k.ptx"), ".version 7.0\n.target sm_50\n");
});
afterEach(() => dir.cleanup());

const check = (raw: unknown, allowed?: readonly JobKernel[]) =>
  validateJob(raw, { bundleDir: dir.path, ...(allowed !== undefined && { allowedKernels: allowed }) });

describe("--allowed-kernels", () => {
  test("each of vadd, matmul and a staged PTX bundle is refused when left out, naming the kernel and the setting", () => {
    expect(check(job("vadd"), ["matmul", "ptx"])).toEqual({
      ok: false,
      problems: [{ field: "kernel", message: 'kernel "vadd" is not in allowed-kernels (matmul,ptx), a serve flag and --config key' }],
    });
    expect(check(job("matmul"), ["vadd"])).toEqual({
      ok: false,
      problems: [{ field: "kernel", message: 'kernel "matmul" is not in allowed-kernels (vadd), a serve flag and --config key' }],
    });
    expect(check(job("vadd", { inputs: ["k.ptx"] }), ["vadd", "matmul"])).toEqual({
      ok: false,
      problems: [{
        field: "inputs.0",
        message: 'kernel ptx (the staged bundle "k.ptx") is not in allowed-kernels (vadd,matmul), a serve flag and --config key',
      }],
    });
  });

  test("each is taken when listed, and every kind without the setting", () => {
    for (
      const [raw, kernel] of [
        [job("vadd"), "vadd"],
        [job("matmul"), "matmul"],
        [job("vadd", { inputs: ["k.ptx"] }), "ptx"],
      ] as const
    ) {
      const listed = check(raw, [kernel]);
      expect(listed.ok).toBe(true);
      expect(listed.ok && kernelOf(listed.job)).toBe(kernel);
      expect(check(raw).ok).toBe(true);
    }
  });

  test("a .ptx input that is not staged runs the bridge's own kernel, which is the one checked", () => {
    const raw = job("matmul", { inputs: ["gone.ptx"] });
    expect(check(raw, ["matmul"]).ok).toBe(true);
    expect(check(raw, ["ptx"])).toMatchObject({ ok: false, problems: [{ field: "kernel" }] });
  });

  test("a job refused for another reason says that reason, not the kernel's", () => {
    const r = check(job("vadd", { bytes_hash: `sha256:${"0".repeat(64)}` }), ["matmul"]);
    expect(r).toMatchObject({ ok: false, problems: [{ field: "bytes_hash" }] });
  });
});
