/**
 * validateJob() at the edges a plausible slip would pass unseen: bytes_hash in upper case (hex
 * is case-blind), for operands and for a staged input alike; every field's own message; the
 * device limits at their exact values; absolute outputs; the payload bound's two messages;
 * staged inputs that are missing, unreadable or not a kernel; resolveInBundle()'s refusals.
 * Messages about a path that cannot be resolved are checked for the field and the path only.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, realpathSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MAX_PAYLOAD_BYTES, MAX_TIMEOUT_MS, resolveInBundle, validateJob } from "../../src/job/descriptor.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { tempDir } from "../helpers.ts";

const f32 = (...xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
const operands = f32(1, 2, 3, 10, 20, 30);
const good = (o: Record<string, unknown> = {}) => ({
  job: "job-1",
  kernel: "vadd",
  grid: [64, 1, 1],
  block: [256, 1, 1],
  bytes_hash: `sha256:${sha256Hex(operands)}`,
  inputs: [],
  outputs: ["out/job-1.json"],
  timeout_ms: 5000,
  payload_b64: operands.toString("base64"),
  ...o,
});

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-desc-")));
afterEach(() => dir.cleanup());

describe("bytes_hash", () => {
  test("upper-case hex matches the payload's digest", () => {
    const r = validateJob(good({ bytes_hash: `sha256:${sha256Hex(operands).toUpperCase()}` }));
    expect(r).toMatchObject({ ok: true });
  });

  test("upper-case hex matches a staged input's digest", () => {
    const staged = Buffer.from("staged kernel bytes");
    writeFileSync(join(dir.path, "k.bin"), staged);
    const raw = good({ bytes_hash: `sha256:${sha256Hex(staged).toUpperCase()}`, inputs: ["k.bin"] });
    delete (raw as { payload_b64?: string }).payload_b64;
    const r = validateJob(raw, { bundleDir: dir.path });
    expect(r.ok).toBe(true);
    expect(r.ok && Buffer.from(r.job.payload).equals(staged)).toBe(true);
  });
});

const problems = (raw: unknown, ctx = {}) => {
  const r = validateJob(raw, ctx);
  if (r.ok) throw new Error("expected problems");
  return r.problems;
};
/** The staged form: no operands, bytes_hash over inputs[0]. */
const staged = (input: string, bytes: Uint8Array = Buffer.from("x")) => {
  const raw: Record<string, unknown> = good({ inputs: [input], bytes_hash: `sha256:${sha256Hex(bytes)}` });
  delete raw.payload_b64;
  return raw;
};

describe("the shape", () => {
  test("anything but an object is refused as such", () => {
    for (const raw of [null, "job", 42, undefined, true]) {
      expect(problems(raw)).toEqual([{ field: "(descriptor)", message: "the job descriptor must be a JSON object" }]);
    }
  });

  test.each([
    [{ job: 5 }, "job", "job must be a string"],
    [{ grid: [1.5, 1, 1] }, "grid.0", "grid.x must be a positive integer"],
    [{ grid: [1, 0, 1] }, "grid.1", "grid.y must be a positive integer"],
    [{ grid: [1, 1, "a"] }, "grid.2", "grid.z must be a positive integer"],
    [{ block: [0, 1, 1] }, "block.0", "block.x must be a positive integer"],
    [{ block: [1, 1, 1, 1] }, "block.3", "block must be three positive integers [x, y, z]"],
    [{ bytes_hash: 5 }, "bytes_hash", "bytes_hash must use sha256:<hex> format"],
    [{ bytes_hash: `sha256:${"a".repeat(65)}` }, "bytes_hash", "bytes_hash must contain 64 hex characters"],
    [{ bytes_hash: `sha256:${"g".repeat(64)}` }, "bytes_hash", "bytes_hash must contain 64 hex characters"],
    [{ inputs: "x" }, "inputs", "inputs must be an array of paths"],
    [{ inputs: [5] }, "inputs.0", "inputs entries must be strings"],
    [{ inputs: [""] }, "inputs.0", "inputs entries must not be empty"],
    [{ outputs: "x" }, "outputs", "outputs must be an array of paths"],
    [{ outputs: [""] }, "outputs.0", "outputs entries must not be empty"],
    [{ outputs: [7] }, "outputs.0", "outputs entries must be strings"],
    [{ timeout_ms: "5" }, "timeout_ms", "timeout_ms must be a positive integer"],
    [{ timeout_ms: MAX_TIMEOUT_MS + 1 }, "timeout_ms", `timeout_ms must be at most ${MAX_TIMEOUT_MS}`],
    [{ payload_b64: 5 }, "payload_b64", "payload_b64 is not valid base64"],
  ])("refuses %j, naming %s", (patch, field, message) => {
    expect(problems(good(patch))[0]).toEqual({ field, message });
  });

  test("the device limits are inclusive: a block of exactly 1024 threads and the largest grid pass", () => {
    for (const o of [{ block: [1024, 1, 1] }, { block: [1, 1, 64] }, { block: [32, 32, 1] }, { grid: [2147483647, 65535, 65535] }]) {
      expect(validateJob(good({ ...o, timeout_ms: MAX_TIMEOUT_MS })).ok).toBe(true);
    }
    expect(problems(good({ block: [1, 1, 65] }))[0]).toEqual({ field: "block.2", message: "block.z is 65, over the device's 64" });
    const limits = { maxThreadsPerBlock: 64, maxBlock: [64, 64, 64] as const, maxGrid: [10, 10, 10] as const };
    expect(problems(good({ block: [8, 9, 1], grid: [11, 1, 1] }), { limits })).toEqual([
      { field: "block", message: "block has 72 threads, over the device's 64 per block" },
      { field: "grid.0", message: "grid.x is 11, over the device's 10" },
    ]);
  });
});

describe("outputs", () => {
  test("an absolute (VM) output is kept, but not one with NUL or '..' in it", () => {
    expect(problems(good({ outputs: ["/worker/w\0/result"] }))[0]).toEqual({
      field: "outputs.0",
      message: "outputs[0] must not contain NUL",
    });
    expect(problems(good({ outputs: ["/worker/../etc/passwd"] }))[0]).toEqual({
      field: "outputs.0",
      message: `outputs[0] must not contain '..', got "/worker/../etc/passwd"`,
    });
    expect(problems(good({ outputs: ["ok.json", "/w\\..\\x"] }))[0]).toEqual({
      field: "outputs.1",
      message: `outputs[1] must not contain '..', got "/w\\\\..\\\\x"`,
    });
  });

  test("a relative output must name a file", () => {
    expect(problems(good({ outputs: ["./"] }))[0]).toEqual({ field: "outputs.0", message: 'outputs[0] names no file, got "./"' });
  });
});

describe("the payload bound", () => {
  const bound = Math.ceil(MAX_PAYLOAD_BYTES / 3) * 4 + 4;
  test("base64 longer than any 16 MiB payload is refused for its size without decoding; shorter garbage is not base64", () => {
    expect(problems(good({ payload_b64: "A".repeat(bound + 1) }))[0]).toEqual({
      field: "payload_b64",
      message: `payload_b64 is over the ${MAX_PAYLOAD_BYTES}-byte limit`,
    });
    expect(problems(good({ payload_b64: "!".repeat(bound) }))[0]).toEqual({
      field: "payload_b64",
      message: "payload_b64 is not valid base64",
    });
  });

  test("a decoded payload over 16 MiB names payload_b64", () => {
    const big = Buffer.alloc(MAX_PAYLOAD_BYTES + 1).toString("base64");
    expect(problems(good({ payload_b64: big }))[0]).toEqual({
      field: "payload_b64",
      message: `payload_b64 is over the ${MAX_PAYLOAD_BYTES}-byte limit`,
    });
  });
});

describe("staged inputs", () => {
  test("operands with no inputs, or a staged input that is not a .ptx: the bridge's own kernel", () => {
    writeFileSync(join(dir.path, "k.bin"), "bytes");
    const none = validateJob(good(), { bundleDir: dir.path });
    expect(none.ok && none.job.ptx).toBeNull();
    const bin = validateJob(good({ inputs: ["k.bin"] }), { bundleDir: dir.path });
    expect(bin.ok && bin.job.ptx).toBeNull();
    const seed = validateJob(staged("k.bin", Buffer.from("bytes")), { bundleDir: dir.path });
    expect(seed.ok && seed.job.ptx).toBeNull();
  });

  test("a staged .ptx that cannot be read is refused naming inputs.0, with operands or without", () => {
    mkdirSync(join(dir.path, "k.ptx"));
    for (const raw of [good({ inputs: ["k.ptx"] }), staged("k.ptx")]) {
      const [p] = problems(raw, { bundleDir: dir.path });
      expect(p!.field).toBe("inputs.0");
      expect(p!.message).toContain('"k.ptx"');
    }
  });

  test("the staged form needs an input, one that exists, within the size bound", () => {
    const noInputs = good({ inputs: [] });
    delete (noInputs as { payload_b64?: string }).payload_b64;
    expect(problems(noInputs, { bundleDir: dir.path })).toEqual([
      { field: "inputs", message: "inputs must name the staged kernel file when payload_b64 is absent" },
    ]);
    const [missing] = problems(staged("gone.ptx"), { bundleDir: dir.path });
    expect(missing!.field).toBe("inputs.0");
    expect(missing!.message).toContain('"gone.ptx"');
    writeFileSync(join(dir.path, "big.ptx"), "");
    truncateSync(join(dir.path, "big.ptx"), MAX_PAYLOAD_BYTES + 1);
    expect(problems(staged("big.ptx"), { bundleDir: dir.path })).toEqual([
      { field: "inputs.0", message: `"big.ptx" is ${MAX_PAYLOAD_BYTES + 1} bytes, over the ${MAX_PAYLOAD_BYTES}-byte limit` },
    ]);
    writeFileSync(join(dir.path, "k.ptx"), "a");
    expect(problems(staged("k.ptx", Buffer.from("b")), { bundleDir: dir.path })[0]!.field).toBe("bytes_hash");
  });
});

describe("resolveInBundle()", () => {
  test("refuses NUL, absolute paths and '..' (either slash) before touching the disk", () => {
    expect(resolveInBundle(dir.path, "a\0b")).toEqual({ error: "must not contain NUL" });
    expect(resolveInBundle(dir.path, "/etc/passwd")).toEqual({ error: 'must be relative to the bundle directory, got "/etc/passwd"' });
    expect(resolveInBundle(dir.path, "a/../b")).toEqual({ error: `must not contain '..', got "a/../b"` });
    expect(resolveInBundle(dir.path, "a\\..\\b")).toEqual({ error: `must not contain '..', got "a\\\\..\\\\b"` });
  });

  test("resolves through the bundle directory's real path; a file not there yet resolves through its folder", () => {
    mkdirSync(join(dir.path, "real", "out"), { recursive: true });
    symlinkSync(join(dir.path, "real"), join(dir.path, "link"));
    const root = realpathSync(join(dir.path, "real"));
    expect(resolveInBundle(join(dir.path, "link"), "out")).toBe(join(root, "out"));
    expect(resolveInBundle(join(dir.path, "link"), "out/new.json")).toBe(join(root, "out", "new.json"));
  });

  test("the bundle directory itself, a missing bundle directory and a missing folder are refused, naming the path", () => {
    expect(resolveInBundle(dir.path, ".")).toEqual({ error: '"." leads outside the bundle directory' });
    const gone = join(dir.path, "nope");
    const a = resolveInBundle(gone, "x");
    expect(typeof a === "object" && a.error).toContain(gone);
    const b = resolveInBundle(dir.path, "no/such/file");
    expect(typeof b === "object" && b.error).toContain('"no/such/file"');
  });
});
