import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { validateJob } from "../../src/job/descriptor.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { REPO, tempDir } from "../helpers.ts";

const ptx = readFileSync(join(REPO, "src/job/ptx/generated/vadd.ptx"));
/** Operands as Cohesix's worker-gpu sends them: little-endian f32, a then b. */
const f32 = (...xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
const operands = f32(1, 2, 3, 10, 20, 30);
const good = () => ({
  job: "job-1",
  kernel: "vadd",
  grid: [64, 1, 1],
  block: [256, 1, 1],
  bytes_hash: `sha256:${sha256Hex(operands)}`,
  inputs: [],
  outputs: ["out/job-1.json"],
  timeout_ms: 5000,
  payload_b64: operands.toString("base64"),
});
const problems = (raw: unknown, ctx = {}) => {
  const r = validateJob(raw, ctx);
  if (r.ok) throw new Error("expected problems");
  return r.problems;
};

describe("validateJob()", () => {
  test("accepts a good descriptor: payload_b64 is the operands, and the bridge's own kernel runs them", () => {
    const r = validateJob(good());
    expect(r.ok).toBe(true);
    expect(r.ok && Buffer.from(r.job.operands!).equals(operands)).toBe(true);
    expect(r.ok && r.job.ptx).toBeNull();
  });

  test.each([
    [{ bytes_hash: "md5:abc" }, "bytes_hash", "bytes_hash must use sha256:<hex> format"],
    [{ bytes_hash: "sha256:abc" }, "bytes_hash", "bytes_hash must contain 64 hex characters"],
    [{ payload_b64: "not base64!" }, "payload_b64", "payload_b64 is not valid base64"],
    [
      { payload_b64: Buffer.from("other").toString("base64") },
      "bytes_hash",
      `payload hash mismatch: bytes_hash is sha256:${sha256Hex(operands)}, the payload_b64 bytes hash to sha256:${
        sha256Hex(Buffer.from("other"))
      }`,
    ],
    [{ job: "has space" }, "job", "job must be 1-64 characters of A-Z a-z 0-9 . _ -"],
    [{ job: "j".repeat(65) }, "job", "job must be 1-64 characters of A-Z a-z 0-9 . _ -"],
    [{ kernel: "conv" }, "kernel", "kernel must be vadd or matmul"],
    [{ grid: [1, 0, 1] }, "grid.1", "grid.y must be a positive integer"],
    [{ grid: [1, 1] }, "grid.2", "grid.z must be a positive integer"],
    [{ grid: "64" }, "grid", "grid must be three positive integers [x, y, z]"],
    [{ block: [2048, 1, 1] }, "block.0", "block.x is 2048, over the device's 1024"],
    [{ block: [32, 32, 2] }, "block", "block has 2048 threads, over the device's 1024 per block"],
    [{ grid: [1, 70000, 1] }, "grid.1", "grid.y is 70000, over the device's 65535"],
    [{ timeout_ms: 0 }, "timeout_ms", "timeout_ms must be a positive integer"],
    [{ timeout_ms: 1.5 }, "timeout_ms", "timeout_ms must be a positive integer"],
    [
      { inputs: ["/etc/passwd"] },
      "inputs.0",
      'inputs[0] must be /bundles/<path> (a staged bundle) or relative to the bundle directory, got "/etc/passwd"',
    ],
    [{ inputs: ["/bundles/../x"] }, "inputs.0", `inputs[0] must not contain '..', got "/bundles/../x"`],
    [{ outputs: ["a\0b"] }, "outputs.0", "outputs[0] must not contain NUL"],
    [{ inputs: ["x".repeat(97)] }, "inputs.0", "inputs entries must be at most 96 bytes"],
    [{ extra: 1 }, "extra", 'unknown field "extra"'],
  ])("refuses %j, naming %s", (patch, field, message) => {
    const p = problems({ ...good(), ...patch });
    expect(p[0]).toEqual({ field, message });
  });

  test("names every missing field and refuses non-objects", () => {
    expect(problems({ job: "j" }).map((p) => p.field)).toEqual([
      "kernel",
      "grid",
      "block",
      "bytes_hash",
      "inputs",
      "outputs",
      "timeout_ms",
    ]);
    expect(problems([1, 2])).toEqual([{ field: "(descriptor)", message: "the job descriptor must be a JSON object" }]);
  });

  test("keeps outputs as VM paths, and checks the operands' shape, naming payload_b64", () => {
    expect(validateJob({ ...good(), outputs: ["/shard/3f/worker/worker-1/result"] }).ok).toBe(true);
    const odd = f32(1, 2, 3);
    expect(problems({ ...good(), payload_b64: odd.toString("base64"), bytes_hash: `sha256:${sha256Hex(odd)}` })[0]).toEqual({
      field: "payload_b64",
      message: "payload_b64 must hold a then b, two equal halves of little-endian f32 (vadd), got 12 bytes",
    });
    const notSquare = f32(1, 2, 3, 4, 5, 6); // 3 + 3 floats: not two n x n matrices
    expect(
      problems({ ...good(), kernel: "matmul", payload_b64: notSquare.toString("base64"), bytes_hash: `sha256:${sha256Hex(notSquare)}` })[0]!
        .message,
    )
      .toBe("payload_b64 must hold a then b, two square n×n matrices of little-endian f32 (matmul), got 24 bytes");
  });

  test("accepts a payload of exactly 16 MiB and refuses one over it", () => {
    const max = Buffer.alloc(16 * 1024 * 1024, 7);
    const r = validateJob({ ...good(), payload_b64: max.toString("base64"), bytes_hash: `sha256:${sha256Hex(max)}` });
    expect(r.ok).toBe(true);
    const big = Buffer.alloc(16 * 1024 * 1024 + 3).toString("base64");
    expect(problems({ ...good(), payload_b64: big })[0]!.message).toBe("payload_b64 is over the 16777216-byte limit");
  });

  describe("staged inputs", () => {
    let bundle: { path: string; cleanup: () => void };
    beforeEach(() => {
      bundle = tempDir("gbh-bundle-");
      mkdirSync(join(bundle.path, "kernels"));
      writeFileSync(join(bundle.path, "kernels", "vadd.ptx"), ptx);
    });
    afterEach(() => bundle.cleanup());
    const staged = (input: string) => {
      const d: Record<string, unknown> = { ...good(), inputs: [input], bytes_hash: `sha256:${sha256Hex(ptx)}` };
      delete d.payload_b64;
      return d;
    };

    test("checks bytes_hash against the staged file under the bundle directory; /bundles/<path> maps into it", () => {
      expect(validateJob(staged("kernels/vadd.ptx"), { bundleDir: bundle.path }).ok).toBe(true);
      const seed = validateJob({ ...staged("/bundles/kernels/vadd.ptx"), bytes_hash: `sha256:${sha256Hex(ptx)}` }, {
        bundleDir: bundle.path,
      });
      expect(seed.ok && seed.job.operands === null && Buffer.from(seed.job.ptx!).equals(ptx)).toBe(true);
      writeFileSync(join(bundle.path, "kernels", "other.ptx"), "x");
      expect(problems(staged("kernels/other.ptx"), { bundleDir: bundle.path })[0]).toEqual({
        field: "bytes_hash",
        message: `payload hash mismatch: bytes_hash is sha256:${sha256Hex(ptx)}, the inputs[0] "kernels/other.ptx" bytes hash to sha256:${
          sha256Hex(Buffer.from("x"))
        }`,
      });
    });

    test("refuses a symlink that leads out of the bundle directory", () => {
      symlinkSync("/etc/hostname", join(bundle.path, "kernels", "escape.ptx"));
      expect(problems(staged("kernels/escape.ptx"), { bundleDir: bundle.path })[0]!.message).toBe(
        '"kernels/escape.ptx" leads outside the bundle directory',
      );
    });

    test("with operands, a staged .ptx named by inputs[0] is the kernel; one not staged leaves the bridge's own", () => {
      const withPtx = validateJob({ ...good(), inputs: ["/bundles/kernels/vadd.ptx"] }, { bundleDir: bundle.path });
      expect(withPtx.ok && Buffer.from(withPtx.job.ptx!).equals(ptx)).toBe(true);
      const absent = validateJob({ ...good(), inputs: ["/bundles/matmul.ptx"] }, { bundleDir: bundle.path });
      expect(absent.ok && absent.job.ptx).toBeNull();
    });

    test("without a bundle directory, payload_b64 is required", () => {
      expect(problems(staged("kernels/vadd.ptx"))[0]).toEqual({
        field: "payload_b64",
        message: "payload_b64 is required: no bundle directory is configured for staged inputs",
      });
    });
  });
});
