/**
 * A sealed shard as a job's operand b, end to end on a --mock bridge through the API: the job
 * computes a + the shard's bytes in its run-kernel child and says which shard it read and the
 * verification it passed (its view and its job.state change); another lease's shard is refused
 * like an unknown one; a failed shard, a size mismatch and a corrupted shard are refused or fail
 * the job with the consumers' codes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { parseCommand } from "../../src/cli/options.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { memoryLogger, tempDir, until } from "../helpers.ts";
import { trailText } from "../audit/read.ts";
import { apiCall } from "./api-call.ts";
import { source } from "./vectors.ts";
import { CTL_FILE, FAKE_CUDA, scriptFakes } from "../inventory/fakes.ts";

const tmp = tempDir("gbh-vram-job-input-");
let daemon: Bridge;
let api: { port: number; token: string; close(): Promise<void> };

beforeAll(async () => {
  const c = parseCommand(["serve", "--mock", "--state-dir", join(tmp.path, "state"), "--listen", "127.0.0.1:0"], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log } = memoryLogger();
  daemon = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() });
  api = await startApi(c.options, daemon, { runtime: bunRuntime(), log });
});
afterAll(async () => {
  await api.close();
  await daemon.stop();
  tmp.cleanup();
});

const call = apiCall(() => api);
const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const lease = async (worker: string) =>
  (await call(
    "POST",
    "/v1/leases",
    JSON.stringify({ gpu_id: "GPU-0", worker_id: worker, mem_mb: 16, streams: 1, ttl_s: 600, priority: 1 }),
    "application/json",
  )).body;
const seal = (leaseId: string, data: Uint8Array, id: string) =>
  call("POST", `/v1/leases/${leaseId}/shards?shard_id=${id}`, data, "application/octet-stream");
/** A vadd job: payload_b64 is `a` alone, `b` is the shard `inputs` names. */
function shardJob(job: string, a: Uint8Array, shardId: string) {
  return {
    job,
    kernel: "vadd",
    grid: [1, 1, 1],
    block: [32, 1, 1],
    bytes_hash: `sha256:${sha256Hex(a)}`,
    inputs: [`/shards/${shardId}`],
    outputs: [],
    timeout_ms: 20000,
    payload_b64: Buffer.from(a).toString("base64"),
  };
}
const submit = (leaseId: string, body: unknown) => call("POST", `/v1/leases/${leaseId}/jobs`, JSON.stringify(body), "application/json");

describe("a sealed shard as a job's operand b (--mock, through the API)", () => {
  test("the job computes a + the shard's bytes and records the shard and the verification it passed", async () => {
    const l = await lease("w-ok");
    const b = f32([10, 20, 30, 40, 0.5, -1]);
    const sealed = await seal(l.id, b, "weights-b");
    expect(sealed.status).toBe(201);
    const a = f32([1, 2, 3, 4, 5, 6]);
    const queued = await submit(l.id, shardJob("shard-job-1", a, "weights-b"));
    expect(queued.status).toBe(202);
    await until(() => ["OK", "ERR"].includes(daemon.host.jobs.get("shard-job-1")?.state ?? ""), 15_000, "the job to end");
    const view = (await call("GET", "/v1/jobs/shard-job-1")).body;
    expect(view).toMatchObject({ state: "OK", detail: "completed" });
    const res = await fetch(`http://127.0.0.1:${api.port}/v1/jobs/shard-job-1/result`, {
      headers: { Authorization: `Bearer ${api.token}` },
    });
    expect([...new Float32Array(await res.arrayBuffer())]).toEqual([11, 22, 33, 44, 5.5, 5]);
    const shard = (await call("GET", "/v1/shards/weights-b")).body;
    expect(view.input_shard).toEqual({
      shard_id: "weights-b",
      digest: sealed.body.digest,
      vram_bytes: 24,
      verified_at: shard.verified_at,
      mode: "full",
      path: "cpu",
      access: "copy",
    });
    expect(Date.parse(view.input_shard.verified_at)).toBeGreaterThanOrEqual(Date.parse(view.submitted_at));
    const changes = trailText(join(tmp.path, "state")).split("\n").filter((x) => x !== "").map((x) => JSON.parse(x));
    const ok = changes.find((c) => c.type === "job.state" && c.data.job === "shard-job-1" && c.data.state === "OK");
    expect(ok.data.input_shard).toEqual(view.input_shard);
  }, 20_000);

  test("another lease's shard is refused exactly like an id nobody sealed (404 not_sealed)", async () => {
    const mine = await lease("w-mine");
    const theirs = await lease("w-theirs");
    await seal(theirs.id, f32([1, 2]), "theirs-b");
    const a = f32([1, 1]);
    const stranger = await submit(mine.id, shardJob("stranger", a, "theirs-b"));
    const unknown = await submit(mine.id, shardJob("stranger", a, "nobody-b"));
    expect(stranger.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(stranger.body.error).toEqual({
      code: "not_sealed",
      field: "inputs.0",
      message:
        'Invalid job descriptor: inputs.0: inputs[0] names shard "theirs-b": no shard with that id is sealed under this job\'s lease',
    });
    expect(unknown.body.error.message).toBe(stranger.body.error.message.replace("theirs-b", "nobody-b"));
    expect(daemon.host.jobs.get("stranger")).toBeUndefined();
  });

  test("a size mismatch is refused naming the input and both sizes", async () => {
    const l = await lease("w-size");
    await seal(l.id, f32([1, 2, 3]), "size-b");
    const r = await submit(l.id, shardJob("size-job", f32([1, 2]), "size-b"));
    expect(r.status).toBe(422);
    expect(r.body.error).toEqual({
      code: "invalid",
      field: "inputs.0",
      message:
        'Invalid job descriptor: inputs.0: inputs[0] names shard "size-b" of 12 bytes as operand b, but payload_b64 holds 8 bytes of operand a: vadd needs both the same size',
    });
  });

  test("a byte changed in the shard fails the job and the shard; a job naming it then is integrity_violation", async () => {
    const l = await lease("w-bad");
    const b = f32([7, 8, 9, 10]);
    await seal(l.id, b, "bad-b");
    // Changed in (mock) VRAM behind the seal's back: the job is accepted (the shard is SEALED as
    // far as anyone knows), and the verification when it starts catches it.
    daemon.vram.store!.corrupt("bad-b", 5, b[5]! ^ 0x01);
    const queued = await submit(l.id, shardJob("bad-job-1", f32([1, 2, 3, 4]), "bad-b"));
    expect(queued.status).toBe(202);
    await until(() => daemon.host.jobs.get("bad-job-1")?.state === "ERR", 15_000, "the job to fail");
    expect(daemon.host.jobs.get("bad-job-1")).toMatchObject({ detail: "SEAL-VERIFICATION-FAILED", result: null, input_shard: null });
    expect((await call("GET", "/v1/shards/bad-b")).body).toMatchObject({ state: "FAILED" });
    const again = await submit(l.id, shardJob("bad-job-2", f32([1, 2, 3, 4]), "bad-b"));
    expect(again.status).toBe(422);
    expect(again.body.error).toMatchObject({ code: "integrity_violation", field: "inputs.0" });
  }, 20_000);
});

describe("a sealed shard as operand b on the CUDA runner (--mock memory, fake libcuda, through the bridge)", () => {
  test("the run-kernel child maps the shard's descriptor read-only and computes a + b; the record says so", async () => {
    const dir = tempDir("gbh-vram-job-map-");
    scriptFakes({});
    // The children's driver is the fake libcuda: it imports the mock's shared memory as a GPU's.
    const rt = bunRuntime();
    const runtime = {
      ...rt,
      spawn: (cmd: readonly string[], stdin: Uint8Array, _env?: Record<string, string>, fd?: number) =>
        rt.spawn(cmd, stdin, { GPU_BRIDGE_CUDA_LIB: FAKE_CUDA, FAKE_GPU_CTL: CTL_FILE }, fd),
    };
    const c = parseCommand(["serve", "--mock", "--runner", "cuda", "--state-dir", join(dir.path, "state"), "--listen", "127.0.0.1:0"], {});
    if (c.kind !== "serve") throw new Error("expected serve");
    const { log } = memoryLogger();
    const bridge = await createBridge(c.options, { runtime, log, backend: mockBackend() });
    try {
      const l = bridge.host.grant({ gpu_id: "GPU-0", worker_id: "w-map", mem_mb: 16, streams: 1, ttl_s: 600, priority: 1 });
      const b = f32([0.5, 1.5, 2.5, 3.5]);
      await bridge.vram.store!.seal(l.id, source(b), { shard_id: "mapped-b" });
      expect(bridge.vram.store!.shareRefusal("mapped-b")).toBeNull();
      bridge.host.submitJob(l.id, shardJob("map-job", f32([1, 2, 3, 4]), "mapped-b"));
      await until(() => ["OK", "ERR"].includes(bridge.host.jobs.get("map-job")?.state ?? ""), 15_000, "the job to end");
      const j = bridge.host.jobs.get("map-job")!;
      expect({ state: j.state, detail: j.detail, message: j.message }).toEqual({ state: "OK", detail: "completed", message: null });
      expect([...new Float32Array(j.output!.slice().buffer)]).toEqual([1.5, 3.5, 5.5, 7.5]);
      expect(j.input_shard).toMatchObject({ shard_id: "mapped-b", mode: "full", access: "read-only-mapping" });
    } finally {
      await bridge.stop();
      dir.cleanup();
    }
  }, 20_000);
});
