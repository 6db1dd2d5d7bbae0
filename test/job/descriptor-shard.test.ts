/**
 * A sealed shard of the job's lease as operand b (`/shards/<shard_id>` in inputs): payload_b64
 * is operand a alone and bytes_hash covers it; the shard must be the lease's own, sealed, and
 * as large as a; refusals carry the consumers' codes and name the field.
 */
import { describe, expect, test } from "bun:test";
import { type ShardInput, validateJob } from "../../src/job/descriptor.ts";
import { sha256Hex } from "../../src/util/sha256.ts";

const f32 = (...xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
const a = f32(1, 2, 3, 4);
const job = (over: Record<string, unknown> = {}, payload: Buffer = a) => ({
  job: "j1",
  kernel: "vadd",
  grid: [1, 1, 1],
  block: [32, 1, 1],
  bytes_hash: `sha256:${sha256Hex(payload)}`,
  inputs: ["/shards/w-shard_1"],
  outputs: [],
  timeout_ms: 5000,
  payload_b64: payload.toString("base64"),
  ...over,
});
const sealed = (vram_bytes: number): ShardInput => ({ vram_bytes, state: "SEALED", failure: null });
/** The lease's own shards: w-shard_1 of 16 bytes; any other id is unknown (another lease's looks the same). */
const own = (shards: Record<string, ShardInput> = { "w-shard_1": sealed(16) }) => ({ shard: (id: string) => shards[id] });
const problems = (raw: unknown, ctx: Parameters<typeof validateJob>[1]) => {
  const r = validateJob(raw, ctx);
  if (r.ok) throw new Error("expected problems");
  return r.problems;
};

describe("validateJob() with a shard as operand b", () => {
  test("accepts it: the operands are a alone, bytes_hash covers a, and the job names the shard and its size", () => {
    const r = validateJob(job(), own());
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(Buffer.from(r.job.operands!).equals(a)).toBe(true);
    expect(Buffer.from(r.job.payload).equals(a)).toBe(true);
    expect(r.job.shard).toEqual({ id: "w-shard_1", bytes: 16 });
    expect(r.job.ptx).toBeNull();
  });

  test("a matmul's shard is an n×n matrix as large as a", () => {
    const m = f32(1, 2, 3, 4);
    const r = validateJob(job({ kernel: "matmul" }, m), own());
    expect(r.ok && r.job.shard).toEqual({ id: "w-shard_1", bytes: 16 });
    expect(problems(job({ kernel: "matmul" }, f32(1, 2, 3)), own())).toEqual([{
      field: "payload_b64",
      message: "payload_b64 must hold operand a alone (the shard is b), a square n×n matrix of little-endian f32 (matmul), got 12 bytes",
    }]);
  });

  test("a shard the lease does not hold is not_sealed, with the same words as another lease's would get", () => {
    const unknown = problems(job({ inputs: ["/shards/other"] }), own());
    expect(unknown).toEqual([{
      field: "inputs.0",
      code: "not_sealed",
      message: 'inputs[0] names shard "other": no shard with that id is sealed under this job\'s lease',
    }]);
    // Without a shard lookup (no VRAM backend), nothing can be named.
    expect(problems(job({ inputs: ["/shards/other"] }), {})).toEqual(unknown);
  });

  test("a shard that failed verification is integrity_violation, naming it and why", () => {
    const failed = { "w-shard_1": { vram_bytes: 16, state: "FAILED" as const, failure: "the tree digest differs" } };
    expect(problems(job(), own(failed))).toEqual([{
      field: "inputs.0",
      code: "integrity_violation",
      message: 'inputs[0] names shard "w-shard_1", which failed verification (the tree digest differs); delete it and seal it again',
    }]);
  });

  test("a size mismatch names the input and both sizes", () => {
    expect(problems(job({ inputs: ["/bundles/vadd.ptx", "/shards/w-shard_1"] }), own({ "w-shard_1": sealed(20) }))).toEqual([{
      field: "inputs.1",
      message:
        'inputs[1] names shard "w-shard_1" of 20 bytes as operand b, but payload_b64 holds 16 bytes of operand a: vadd needs both the same size',
    }]);
  });

  test("payload_b64 is required, must be a alone, and bytes_hash covers it", () => {
    const { payload_b64: _, ...noPayload } = job();
    expect(problems(noPayload, own())).toEqual([{
      field: "payload_b64",
      message: "payload_b64 is required when inputs name a shard: it carries operand a, and the shard is operand b",
    }]);
    expect(problems(job({}, Buffer.from([1, 2, 3])), own())[0]).toEqual({
      field: "payload_b64",
      message: "payload_b64 must hold operand a alone (the shard is b), little-endian f32 (vadd), got 3 bytes",
    });
    expect(problems(job({ bytes_hash: `sha256:${sha256Hex(f32(9))}` }), own())[0]!.field).toBe("bytes_hash");
  });

  test.each([
    ["/shards/"],
    ["/shards/has space"],
    ["/shards/a/b"],
    ["/shards/a.b"],
  ])("a shard id off the rule (%p) is invalid", (input) => {
    expect(problems(job({ inputs: [input] }), own())).toEqual([{
      field: "inputs.0",
      message: `inputs[0] must be /shards/<shard_id> with a shard id of 1-256 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(input)}`,
    }]);
  });

  test("the VM's path limit bounds the id a job can name: 88 characters fit in /shards/<id>, 89 do not", () => {
    const id = "s".repeat(88);
    expect(validateJob(job({ inputs: [`/shards/${id}`] }), own({ [id]: sealed(16) })).ok).toBe(true);
    expect(problems(job({ inputs: [`/shards/${id}s`] }), own({ [`${id}s`]: sealed(16) }))).toEqual([{
      field: "inputs.0",
      message: "inputs entries must be at most 96 bytes",
    }]);
  });

  test("one shard at most: a second is refused, naming it", () => {
    expect(problems(job({ inputs: ["/shards/w-shard_1", "/shards/w-shard_1"] }), own())).toEqual([{
      field: "inputs.1",
      message: "inputs[1] names a second shard: one shard can be named, and it is operand b",
    }]);
  });
});
