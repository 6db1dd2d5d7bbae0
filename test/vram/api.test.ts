/**
 * The shard API end to end on a --mock bridge (host memory standing in for VRAM): seal by body and
 * by file, verify, corruption caught in the (mock) VRAM, the job gate, the VM's status line,
 * capacity and plan, attestation, metrics, a lease's end freeing its shards, the audit trail.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, createPublicKey, verify } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCommand } from "../../src/cli/options.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { LEAF_BYTES } from "../../src/vram/tree.ts";
import { canonicalJson } from "../../src/util/canonical-json.ts";
import { memoryLogger, tempDir, until, vaddJob } from "../helpers.ts";
import { pattern, VECTORS } from "./vectors.ts";
import { shardEvents, trailText } from "../audit/read.ts";
import { apiCall } from "./api-call.ts";

const tmp = tempDir("gbh-vram-api-");
let daemon: Bridge;
let api: { port: number; token: string; close(): Promise<void> };
const auditText = () => trailText(join(tmp.path, "state"));
const auditEvents = () => shardEvents(join(tmp.path, "state"));
const logged: string[] = [];

beforeAll(async () => {
  mkdirSync(join(tmp.path, "models", "m"), { recursive: true });
  writeFileSync(join(tmp.path, "models", "m", "w.bin"), pattern(3 * LEAF_BYTES + 5));
  process.env.GPU_BRIDGE_MODEL_DIR = join(tmp.path, "models");
  const c = parseCommand(["serve", "--mock", "--state-dir", join(tmp.path, "state"), "--listen", "127.0.0.1:0"], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log, lines } = memoryLogger();
  daemon = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() });
  api = await startApi(c.options, daemon, { runtime: bunRuntime(), log });
  logged.push(...lines);
  Object.defineProperty(logged, "live", { value: lines });
});
afterAll(async () => {
  await api.close();
  await daemon.stop();
  delete process.env.GPU_BRIDGE_MODEL_DIR;
  tmp.cleanup();
});

const call = apiCall(() => api);
const lease = async (worker: string, mem_mb = 16, gpu_id = "GPU-0") =>
  (await call(
    "POST",
    "/v1/leases",
    JSON.stringify({ gpu_id, worker_id: worker, mem_mb, streams: 1, ttl_s: 600, priority: 1 }),
    "application/json",
  )).body;
const seal = (leaseId: string, data: Uint8Array, query = "") =>
  call("POST", `/v1/leases/${leaseId}/shards${query}`, data, "application/octet-stream");
const job = (leaseId: string, id: string) => call("POST", `/v1/leases/${leaseId}/jobs`, JSON.stringify(vaddJob(id)), "application/json");

describe("the shard API (--mock)", () => {
  test("seals a streamed body: the handle has the contract's fields and verifies", async () => {
    const l = await lease("seal-a");
    const [, data, tree, flat] = VECTORS[9]!;
    const r = await seal(l.id, data, `?shard_id=llama-0&set_id=llama&shard_index=0&total_shards=2&expected_digest=${flat}`);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      shard_id: "llama-0",
      gpu_id: "GPU-0",
      gpu_device: 0,
      vram_bytes: data.length,
      digest: flat,
      tree_digest: tree,
      tree_algorithm: "sha256-tree-64KiB",
      set_id: "llama",
      shard_index: 0,
      total_shards: 2,
      state: "SEALED",
      backend: "host-memory",
    });
    expect(new Date(r.body.sealed_at).getTime()).toBeGreaterThan(0);
    const v = await call("POST", "/v1/shards/llama-0/verify");
    expect(v.body).toMatchObject({ ok: true, mode: "full", path: "cpu", leaves_checked: 8 });
    expect(typeof v.body.total_ms).toBe("number");
    expect((await seal(l.id, data)).status).toBe(200); // the same bytes: the existing shard, nothing allocated
    expect((await call("GET", `/v1/shards?lease_id=${l.id}`)).body.length).toBe(1);
  });

  test("the README's seal, sent twice: 201 then 200 with the same handle; the same bytes under a new id: 409 naming the old", async () => {
    const l = await lease("reseal-w", 16, "GPU-1"); // GPU-0's lease log is kept for the tests below
    const data = pattern(5000);
    const flat = createHash("sha256").update(data).digest("hex");
    const query = `?shard_id=reseal-0&expected_digest=${flat}`;
    const first = await seal(l.id, data, query);
    expect(first.status).toBe(201);
    expect(await seal(l.id, data, query)).toEqual({ status: 200, body: first.body });
    expect(await seal(l.id, data, "?shard_id=reseal-0")).toEqual({ status: 200, body: first.body });
    const renamed = await seal(l.id, data, "?shard_id=reseal-1");
    expect(renamed).toMatchObject({ status: 409, body: { error: { code: "conflict", field: "shard_id" } } });
    expect(renamed.body.error.message).toContain(`already holds these bytes as shard "reseal-0"`);
    const changed = await seal(l.id, pattern(5001), "?shard_id=reseal-0");
    expect(changed).toMatchObject({ status: 409, body: { error: { code: "conflict", field: "shard_id" } } });
    expect((await call("GET", `/v1/shards?lease_id=${l.id}`)).body.map((s: { shard_id: string }) => s.shard_id)).toEqual(["reseal-0"]);
    const sealed = auditEvents().filter((e) => e.event === "VramSealed" && e.lease_id === l.id);
    expect(sealed.map((e) => e.worker_id)).toEqual(["reseal-w"]);
  });

  test("seals a file under the model folder, and refuses paths out of it", async () => {
    const l = await lease("seal-file");
    const r = await call("POST", `/v1/leases/${l.id}/shards`, JSON.stringify({ file: "m/w.bin" }), "application/json");
    expect(r.status).toBe(201);
    expect(r.body.digest).toBe(createHash("sha256").update(pattern(3 * LEAF_BYTES + 5)).digest("hex"));
    const audit = () => auditEvents().filter((e) => e.lease_id === l.id && e.event === "VramAllocated").length;
    expect(audit()).toBe(1);
    const again = await call("POST", `/v1/leases/${l.id}/shards`, JSON.stringify({ file: "m/w.bin" }), "application/json");
    expect(again).toMatchObject({ status: 200, body: { shard_id: r.body.shard_id } });
    expect(audit()).toBe(1); // the same file again: read and compared, never allocated
    const bad = await call("POST", `/v1/leases/${l.id}/shards`, JSON.stringify({ file: "../state/vram-seal.key" }), "application/json");
    expect(bad).toMatchObject({ status: 422, body: { error: { field: "file" } } });
    const typo = await call("POST", `/v1/leases/${l.id}/shards`, JSON.stringify({ file: "m/w.bin", sahrd_id: "x" }), "application/json");
    expect(typo.status).toBe(422);
  });

  test("refuses what does not fit with needed and available bytes", async () => {
    const l = await lease("seal-big", 1);
    const r = await seal(l.id, pattern(1048577));
    expect(r.status).toBe(409);
    expect(r.body.error.message).toContain("needed 1048577 bytes, available 1048576 bytes");
  });

  test("a byte changed in (mock) VRAM: verify fails, the job gate refuses, the VM gets a status line", async () => {
    const l = await lease("gate");
    const data = pattern(2 * LEAF_BYTES);
    await seal(l.id, data, "?shard_id=gated");
    const ok = await job(l.id, "gate-job-1");
    expect(ok.status).toBe(202);
    await until(() => daemon.host.jobs.get("gate-job-1")?.state === "OK", 15_000, "the first job to pass the gate");
    daemon.vram.store!.corrupt("gated", 4097, data[4097]! ^ 0x80);
    await job(l.id, "gate-job-2");
    await until(() => daemon.host.jobs.get("gate-job-2")?.state === "ERR", 15_000, "the gate to refuse the second job");
    expect(daemon.host.jobs.get("gate-job-2")).toMatchObject({ detail: "SEAL-VERIFICATION-FAILED" });
    const v = await call("POST", "/v1/shards/gated/verify");
    expect(v.body).toMatchObject({ ok: false, reason: expect.stringContaining("failed verification earlier") });
    expect((await call("GET", "/v1/shards/gated")).body).toMatchObject({ state: "FAILED" });
    const status = daemon.namespace().nodes.find((n) => n.id === "GPU-0")!.status;
    expect(status).toContain('{"job":"gated","state":"ERR","detail":"SEAL-VERIFICATION-FAILED"}');
  });

  test("capacity, plan, attestation and metrics", async () => {
    const l = await lease("cap");
    await seal(l.id, pattern(5000), "?shard_id=cap-0");
    const cap = (await call("GET", "/v1/gpus/GPU-0/vram")).body;
    expect(cap).toMatchObject({ gpu_id: "GPU-0", backend: "host-memory", note: expect.stringContaining("host memory stands in for VRAM") });
    expect(cap.used_bytes).toBe(cap.bridge.sealed_bytes);
    expect(cap.used_bytes).toBeGreaterThanOrEqual(5000);
    expect(cap.available_bytes).toBe(cap.total_bytes - cap.used_bytes);
    const other = (await call("GET", "/v1/gpus/GPU-1/vram")).body;
    expect(other.available_bytes).toBeLessThan(cap.available_bytes); // the mock's GPU-1 is the smaller one
    const plan = (await call("GET", `/v1/vram/plan?bytes=${other.available_bytes + 1}`)).body;
    expect(plan).toMatchObject({ vram_required: other.available_bytes + 1, feasible: true, gpu_id: "GPU-0" });
    expect(plan.candidates.map((x: { fits: boolean }) => x.fits)).toEqual([true, false]);
    expect((await call("GET", `/v1/vram/plan?bytes=${cap.available_bytes + 1}`)).body).toMatchObject({ feasible: false, gpu_id: null });
    expect((await call("GET", `/v1/vram/plan?bytes=4000&lease_id=${l.id}`)).body).toMatchObject({ feasible: true, gpu_id: "GPU-0" });
    expect((await call("GET", "/v1/vram/plan?bytes=-1")).status).toBe(422);
    const att = (await call("GET", "/v1/shards/cap-0/attestation")).body;
    expect(att.statement).toMatchObject({ shard_id: "cap-0", resident: true, policy: { status: "not_applicable" } });
    expect(att.signature).toMatchObject({ algorithm: "Ed25519", key_id: att.statement.key_id });
    const key = (await call("GET", "/v1/vram/attestation-key")).body;
    expect(key.key_id).toBe(att.statement.key_id);
    const pub = createPublicKey({ key: key.jwk, format: "jwk" });
    expect(verify(null, Buffer.from(canonicalJson(att.statement)), pub, Buffer.from(att.signature.value, "base64"))).toBe(true);
    expect(statSync(join(tmp.path, "state", "vram-attest.key")).mode & 0o777).toBe(0o600);
    const metrics = await (await fetch(`http://127.0.0.1:${api.port}/metrics`)).text();
    expect(metrics).toMatch(/^vram_used_bytes\{gpu_device="0",gpu_id="GPU-0"\} \d+$/m);
    expect(metrics).toMatch(/^vram_seal_operations_total\{result="ok"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^vram_verify_operations_total\{result="fail"\} [1-9]$/m);
  });

  test("a driver that will not free a shard's memory: DELETE says cuda_deallocation_failed, and the shard is released all the same", async () => {
    const l = await lease("nofree");
    await seal(l.id, pattern(3000), "?shard_id=nofree-0");
    const backend = daemon.vram.store!.backend;
    const free = backend.free.bind(backend);
    backend.free = () => {
      throw new Error("cuMemRelease failed: CUDA_ERROR_UNKNOWN (999)");
    };
    try {
      const res = await call("DELETE", "/v1/shards/nofree-0");
      expect(res).toMatchObject({ status: 500, body: { error: { code: "cuda_deallocation_failed", field: "id", retryable: false } } });
      expect(res.body.error.message).toBe(
        "Shard nofree-0 is released, but the driver did not free its 3000 bytes on CUDA device 0 " +
          "(cuMemRelease failed: CUDA_ERROR_UNKNOWN (999)); they stay allocated until the bridge's CUDA context ends",
      );
    } finally {
      backend.free = free;
    }
    expect((await call("GET", "/v1/shards/nofree-0")).status).toBe(404);
    expect(auditEvents().filter((e) => e.event === "VramDeallocated" && e.shard_id === "nofree-0")).toEqual([
      expect.objectContaining({ freed_bytes: 0, error: "CudaDeallocationFailed: cuMemRelease failed: CUDA_ERROR_UNKNOWN (999)" }),
    ]);
    await call("DELETE", `/v1/leases/${l.id}`);
  });

  test("a lease's end frees its shards; DELETE frees one; the audit trail has every event", async () => {
    const l = await lease("end");
    await seal(l.id, pattern(1000), "?shard_id=end-0");
    await seal(l.id, pattern(2000), "?shard_id=end-1");
    expect((await call("DELETE", "/v1/shards/end-1")).body).toMatchObject({ shard_id: "end-1", state: "RELEASED" });
    await call("DELETE", `/v1/leases/${l.id}`);
    expect((await call("GET", "/v1/shards/end-0")).status).toBe(404);
    const events = auditEvents();
    const names = new Set(events.map((e) => e.event));
    for (const n of ["VramAllocated", "VramSealed", "SealVerified", "SealVerificationFailed", "VramDeallocated", "VramAllocationFailed"]) {
      expect(names).toContain(n);
    }
    expect(events.filter((e) => e.event === "VramDeallocated" && e.shard_id === "end-0")[0]).toMatchObject({
      freed_bytes: 1000,
      reason: "lease released",
    });
    const key = readFileSync(join(tmp.path, "state", "vram-seal.key"), "utf8").trim();
    expect(auditText()).not.toContain(key);
    expect(existsSync(join(tmp.path, "state", "vram-audit.jsonl"))).toBe(false); // one trail: the bridge's
    expect((logged as unknown as { live: string[] }).live.join("\n")).not.toContain(key);
    // The attestation key's private half: its PEM body's lines appear nowhere either.
    const pem = readFileSync(join(tmp.path, "state", "vram-attest.key"), "utf8").split("\n").filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l));
    expect(pem.length).toBeGreaterThan(0);
    for (const line of pem) {
      expect(auditText()).not.toContain(line);
      expect((logged as unknown as { live: string[] }).live.join("\n")).not.toContain(line);
    }
  });

  test("the shard routes are a sub-app of the API: a known path with another method is a 405 with Allow", async () => {
    const res = await fetch(`http://127.0.0.1:${api.port}/v1/shards/x`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${api.token}` },
    });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD, DELETE");
    const plan = await fetch(`http://127.0.0.1:${api.port}/v1/vram/plan?bytes=1`, {
      method: "POST",
      headers: { Authorization: `Bearer ${api.token}` },
    });
    expect(plan.status).toBe(405);
  });

  test("POST without the token is refused; a body of unknown length is refused", async () => {
    const l = await lease("auth");
    const res = await fetch(`http://127.0.0.1:${api.port}/v1/leases/${l.id}/shards`, {
      method: "POST",
      body: "x",
      headers: { "content-type": "application/octet-stream" },
    });
    expect(res.status).toBe(401);
  });
});

describe("every shard route names a bad field", () => {
  test("an unknown query parameter or body field reads unknown field, a bad value names its field and the value", async () => {
    const l = await lease("fields");
    await seal(l.id, pattern(100), "?shard_id=fields-0");
    const octet = (query: string) => seal(l.id, pattern(10), query);
    const json = (body: unknown, query = "") => call("POST", `/v1/leases/${l.id}/shards${query}`, JSON.stringify(body), "application/json");
    const cases: [string, () => Promise<{ status: number; body: Record<string, any> }>, string, string][] = [
      ["seal (bytes), unknown", () => octet("?shardid=x"), "shardid", 'unknown field "shardid"'],
      [
        "seal (bytes), wrong type",
        () => octet("?shard_index=one&total_shards=2"),
        "shard_index",
        'shard_index must be a non-negative integer, got "one"',
      ],
      ["seal (file), unknown", () => json({ file: "m/w.bin", shardid: "x" }), "shardid", 'unknown field "shardid"'],
      [
        "seal (file), wrong type",
        () => json({ file: "m/w.bin", shard_index: "0", total_shards: 1 }),
        "shard_index",
        "shard_index must be an integer",
      ],
      ["seal (file), unknown query", () => json({ file: "m/w.bin" }, "?shard_id=x"), "shard_id", 'unknown field "shard_id"'],
      ["list, unknown", () => call("GET", "/v1/shards?lease=x"), "lease", 'unknown field "lease"'],
      ["list, repeated", () => call("GET", "/v1/shards?lease_id=a&lease_id=b"), "lease_id", "lease_id is given more than once"],
      ["one shard, unknown", () => call("GET", "/v1/shards/fields-0?verbose=1"), "verbose", 'unknown field "verbose"'],
      ["verify, unknown", () => call("POST", "/v1/shards/fields-0/verify?sample=3"), "sample", 'unknown field "sample"'],
      [
        "verify, wrong mode",
        () => call("POST", "/v1/shards/fields-0/verify?mode=fast"),
        "mode",
        'mode must be full or sampled, got "fast"',
      ],
      [
        "verify, wrong k",
        () => call("POST", "/v1/shards/fields-0/verify?mode=sampled&k=0"),
        "k",
        'k must be an integer from 1 to 999999, got "0"',
      ],
      ["verify, wrong path", () => call("POST", "/v1/shards/fields-0/verify?path=tpu"), "path", 'path must be gpu or cpu, got "tpu"'],
      ["attestation, unknown", () => call("GET", "/v1/shards/fields-0/attestation?fresh=1"), "fresh", 'unknown field "fresh"'],
      ["capacity, unknown", () => call("GET", "/v1/gpus/GPU-0/vram?unit=mb"), "unit", 'unknown field "unit"'],
      ["plan, unknown", () => call("GET", "/v1/vram/plan?bytes=1&gpu=GPU-0"), "gpu", 'unknown field "gpu"'],
      ["plan, wrong type", () => call("GET", "/v1/vram/plan?bytes=1k"), "bytes", 'bytes must be a positive integer, got "1k"'],
      ["plan, missing", () => call("GET", "/v1/vram/plan"), "bytes", 'bytes must be a positive integer, got ""'],
      ["release, unknown", () => call("DELETE", "/v1/shards/fields-0?why=done"), "why", 'unknown field "why"'],
    ];
    for (const [what, send, field, message] of cases) {
      const r = await send();
      expect({ what, status: r.status, field: r.body.error?.field, message: r.body.error?.message }).toEqual({
        what,
        status: 422,
        field,
        message,
      });
    }
    expect((await call("GET", `/v1/shards?lease_id=${l.id}`)).body.map((x: { shard_id: string }) => x.shard_id)).toEqual(["fields-0"]);
    await call("DELETE", `/v1/leases/${l.id}`);
  });

  test("a file in a symlink loop is refused as such (ELOOP), a missing one as not found", async () => {
    const l = await lease("loop");
    symlinkSync("loop-b", join(tmp.path, "models", "loop-a"));
    symlinkSync("loop-a", join(tmp.path, "models", "loop-b"));
    const loop = await call("POST", `/v1/leases/${l.id}/shards`, JSON.stringify({ file: "loop-a" }), "application/json");
    expect(loop).toMatchObject({ status: 422, body: { error: { field: "file" } } });
    expect(loop.body.error.message).toContain('Cannot seal "loop-a": it cannot be resolved in the model folder');
    expect(loop.body.error.message).toContain("ELOOP");
    const missing = await call("POST", `/v1/leases/${l.id}/shards`, JSON.stringify({ file: "none.bin" }), "application/json");
    expect(missing).toMatchObject({ status: 404, body: { error: { field: "file" } } });
    expect(missing.body.error.message).toContain('Cannot seal "none.bin": no such file in the model folder');
    await call("DELETE", `/v1/leases/${l.id}`);
  });
});

describe("a client that goes away mid-seal", () => {
  test("logs no ERROR (a client's hang-up is not the bridge's fault), and the lease seals again at once", async () => {
    const l = await lease("gone", 16);
    const live = (logged as unknown as { live: string[] }).live;
    const before = live.length;
    const { connect } = await import("node:net");
    await new Promise<void>((resolve, reject) => {
      const s = connect(api.port, "127.0.0.1", () => {
        s.write(
          `POST /v1/leases/${l.id}/shards HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${api.token}\r\n` +
            `Content-Type: application/octet-stream\r\nContent-Length: ${4 * LEAF_BYTES}\r\n\r\n`,
        );
        s.write(pattern(LEAF_BYTES + 17), () => setTimeout(() => (s.destroy(), resolve()), 50));
      });
      s.on("error", reject);
    });
    await Bun.sleep(500); // a real socket: the server notices the hang-up on its own time
    expect(live.slice(before).filter((line) => / ERROR /.test(line))).toEqual([]);
    const again = await seal(l.id, pattern(2 * LEAF_BYTES));
    expect(again.status).toBe(201);
  });
});
