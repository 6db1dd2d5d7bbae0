/**
 * Sealed shards handed to another process (src/vram/share.ts, clients/python/): a --mock bridge
 * (host memory in a memfd standing in for VRAM) hands a shard over the lease's Unix socket to a
 * Python process, which maps it read-only with the fake libcuda: it reads the sealed bytes, its
 * writes fail, and it sees what happens to the bridge's copy. Refusals: a wrong token, another
 * lease's shard, a failed shard; release and the lease's end revoke and remove the socket.
 */
import { shardEvents } from "../audit/read.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseCommand } from "../../src/cli/options.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { LEAF_BYTES } from "../../src/vram/tree.ts";
import { memoryLogger, tempDir } from "../helpers.ts";
import { FAKE_CUDA } from "../inventory/fakes.ts";
import { pattern } from "./vectors.ts";
import { jsonLines } from "./child-lines.ts";
import { apiCall, type Json } from "./api-call.ts";

const PYTHON = spawnSync("python3", ["-c", "import socket; socket.recv_fds"]).status === 0 ? "python3" : null;
const CONSUMER = join(import.meta.dir, "share_consumer.py");
const tmp = tempDir("gbh-share-");
let daemon: Bridge;
let api: { port: number; token: string; close(): Promise<void> };

beforeAll(async () => {
  const c = parseCommand([
    "serve",
    "--mock",
    "--state-dir",
    join(tmp.path, "s"),
    "--listen",
    "127.0.0.1:0",
    "--verify-max-age-ms",
    "0",
    "--cdi-dir",
    join(tmp.path, "cdi"),
  ], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  daemon = await createBridge(c.options, { runtime: bunRuntime(), log: memoryLogger().log, backend: mockBackend() });
  api = await startApi(c.options, daemon, { runtime: bunRuntime(), log: memoryLogger().log });
});
afterAll(async () => {
  await api.close();
  await daemon.stop();
  tmp.cleanup();
});

const call = apiCall(() => api);
const lease = async (worker: string) =>
  (await call(
    "POST",
    "/v1/leases",
    JSON.stringify({ gpu_id: "GPU-0", worker_id: worker, mem_mb: 16, streams: 1, ttl_s: 600, priority: 1 }),
    "application/json",
  ))
    .body;
const seal = async (leaseId: string, data: Uint8Array, id: string) =>
  (await call("POST", `/v1/leases/${leaseId}/shards?shard_id=${id}`, data, "application/octet-stream")).body;

/** Runs the consumer against lease `leaseId`'s socket; `token` overrides the lease's own. */
function consumer(leaseId: string, shardId: string, token?: string, wait = false) {
  const paths = { socket: join(tmp.path, "s", "share", `${leaseId}.sock`), token: join(tmp.path, "s", "share", `${leaseId}.token`) };
  const child = spawn(PYTHON!, [CONSUMER, shardId, ...(wait ? ["wait"] : [])], {
    env: {
      ...process.env,
      GPU_BRIDGE_CUDA_LIB: FAKE_CUDA,
      GPU_BRIDGE_SHARE_SOCKET: paths.socket,
      ...(token === undefined ? { GPU_BRIDGE_SHARE_TOKEN_FILE: paths.token } : { GPU_BRIDGE_SHARE_TOKEN: token }),
    },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const { next } = jsonLines(child.stdout!);
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return { next, exited, pid: child.pid!, say: (s: string) => child.stdin!.write(s + "\n") };
}
const audit = (): Json[] => shardEvents(join(tmp.path, "s"));

describe.skipIf(PYTHON === null)("sharing a sealed shard with another process (--mock, fake libcuda)", () => {
  test("the lease's socket and token exist with owner-only modes; the shard says it is shareable", async () => {
    const l = await lease("share-modes");
    const s = await seal(l.id, pattern(5000), "modes-0");
    expect(s).toMatchObject({ shard_id: "modes-0", shareable: true });
    const info = (await call("GET", `/v1/leases/${l.id}/share`)).body;
    expect(info).toMatchObject({ lease_id: l.id, available: true, socket_in_container: "/run/gpu-bridge/share.sock" });
    expect(statSync(info.socket).mode & 0o777).toBe(0o600);
    expect(statSync(info.token_file).mode & 0o777).toBe(0o600);
    expect(readFileSync(info.token_file, "utf8").trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(info)).not.toContain(readFileSync(info.token_file, "utf8").trim()); // a GET needs no bearer token
    expect(statSync(join(tmp.path, "s", "share")).mode & 0o777).toBe(0o700);
    // The lease's CDI device mounts both at the fixed paths the helper reads by default.
    const spec = JSON.parse(readFileSync(join(tmp.path, "cdi", "gpu-bridge-host.json"), "utf8"));
    const edits = spec.devices.find((d: Json) => d.name === l.id).containerEdits;
    expect(edits.mounts).toEqual([
      { hostPath: info.socket, containerPath: "/run/gpu-bridge/share.sock", options: ["ro", "nosuid", "nodev", "bind"] },
      { hostPath: info.token_file, containerPath: "/run/gpu-bridge/share.token", options: ["ro", "nosuid", "nodev", "bind"] },
    ]);
    expect(edits.env).toEqual(expect.arrayContaining([
      `GPU_BRIDGE_LEASE_ID=${l.id}`,
      "GPU_BRIDGE_SHARE_SOCKET=/run/gpu-bridge/share.sock",
      "GPU_BRIDGE_SHARE_TOKEN_FILE=/run/gpu-bridge/share.token",
    ]));
  });

  test("a second process maps the shard read-only: it reads the sealed bytes, and its writes fail", async () => {
    const l = await lease("share-read");
    const data = pattern(3 * LEAF_BYTES + 5);
    const s = await seal(l.id, data, "read-0");
    const c = consumer(l.id, "read-0");
    const r = await c.next(1);
    expect(await c.exited).toBe(0);
    expect(r.check).toMatchObject({ ok: true, may_execute: true, shard_id: "read-0", mode: "full", verified_now: true });
    expect(r).toMatchObject({ size: data.length, digest: s.digest, access: "read-only", cai: true });
    expect(r.sha256).toBe(createHash("sha256").update(data).digest("hex"));
    expect(r.write_rc).toBe(700); // CUDA_ERROR_ILLEGAL_ADDRESS: the importer's mapping is read-only
    expect(r.store_signal).toBe(11); // SIGSEGV: a CPU store through the pointer faults
    expect(r.sha256_after).toBe(r.sha256);
    expect((await call("POST", "/v1/shards/read-0/verify")).body.ok).toBe(true); // the bridge's copy is unchanged
    const handed = audit().filter((e) => e.event === "ShareHandedOut" && e.shard_id === "read-0");
    expect(handed).toHaveLength(1);
    expect(handed[0]).toMatchObject({ consumer_pid: c.pid, access: "read-only", lease_id: l.id });
  });

  test("the mapping is the sealed memory itself: a byte changed in the bridge's copy shows, and execute-check refuses", async () => {
    const l = await lease("share-same");
    const data = pattern(2 * LEAF_BYTES);
    await seal(l.id, data, "same-0");
    const c = consumer(l.id, "same-0", undefined, true);
    const first = await c.next(1);
    expect(first.sha256).toBe(createHash("sha256").update(data).digest("hex"));
    daemon.vram.store!.corrupt("same-0", LEAF_BYTES + 3, data[LEAF_BYTES + 3]! ^ 1);
    c.say("again");
    const later = await c.next(2);
    expect(later.sha256_later).not.toBe(first.sha256);
    const check = (await call("POST", "/v1/shards/same-0/execute-check")).body;
    expect(check).toMatchObject({ ok: false, may_execute: false, code: "seal_verification_failed", retryable: false });
    expect((await call("GET", `/v1/leases/${l.id}/ready`)).body).toMatchObject({ ready: false, failed: ["same-0"] });
    const revoked = audit().filter((e) => e.event === "ShareRevoked" && e.shard_id === "same-0");
    expect(revoked).toHaveLength(1);
    expect(revoked[0]!.consumers.map((k: Json) => k.pid)).toEqual([c.pid]);
    expect(revoked[0]!.still_mapped_by).toEqual([c.pid]); // it is still running with the mapping
    await c.exited;
    const again = consumer(l.id, "same-0");
    // its check says no, and the hand-out is refused too
    expect(await again.next(1)).toMatchObject({ check: { code: "seal_verification_failed" }, error: "integrity_violation" });
  });

  test("a wrong token, another lease's shard and an unknown shard are refused; nothing is handed out", async () => {
    const a = await lease("share-a");
    const b = await lease("share-b");
    await seal(a.id, pattern(4000), "a-0");
    await seal(b.id, pattern(4001), "b-0");
    const bad = consumer(a.id, "a-0", "0".repeat(64));
    expect(await bad.next(1)).toMatchObject({ error: "permission" });
    const bToken = readFileSync((await call("GET", `/v1/leases/${b.id}/share`)).body.token_file, "utf8").trim();
    expect(await consumer(a.id, "a-0", bToken).next(1)).toMatchObject({ error: "permission" });
    expect(await consumer(a.id, "b-0").next(1)).toMatchObject({ error: "not_sealed" });
    expect(audit().filter((e) => e.event === "ShareHandedOut" && (e.shard_id === "a-0" || e.shard_id === "b-0"))).toHaveLength(0);
  });

  test("deleting the shard revokes it; the lease's end removes its socket and token", async () => {
    const l = await lease("share-end");
    expect(await seal(l.id, pattern(3000), "end-0")).toMatchObject({ shard_id: "end-0" });
    const c = consumer(l.id, "end-0");
    expect((await c.next(1)).sha256).toBeDefined();
    await c.exited;
    const del = await call("DELETE", "/v1/shards/end-0");
    expect(del).toMatchObject({ status: 200, body: { state: "RELEASED" } });
    const revoked = audit().filter((e) => e.event === "ShareRevoked" && e.shard_id === "end-0");
    expect(revoked).toHaveLength(1);
    expect(revoked[0]).toMatchObject({ reason: "released", still_mapped_by: [] });
    expect(await consumer(l.id, "end-0").next(1)).toMatchObject({ error: "not_sealed" });
    const info = (await call("GET", `/v1/leases/${l.id}/share`)).body;
    expect(existsSync(info.socket)).toBe(true);
    expect((await call("DELETE", `/v1/leases/${l.id}`)).status).toBe(200);
    expect(existsSync(info.socket)).toBe(false);
    expect(existsSync(info.token_file)).toBe(false);
  });
});

describe("the consumers' contract over HTTP", () => {
  test("plan, commit with expected_digest, ready and execute-check, with the error kinds as codes and their numbers", async () => {
    const l = await lease("contract");
    const room = 16 * 1048576;
    const plan = (await call("GET", `/v1/vram/plan?bytes=${room + 1}&lease_id=${l.id}`)).body;
    expect(plan).toMatchObject({ vram_required: room + 1, feasible: false });
    expect((await call("GET", `/v1/vram/plan?bytes=4096&lease_id=${l.id}`)).body).toMatchObject({ feasible: true, gpu_id: "GPU-0" });
    expect((await call("GET", `/v1/leases/${l.id}/ready`)).body).toMatchObject({ ready: false, shards: [], failed: [] });
    const data = pattern(4096);
    const flat = createHash("sha256").update(data).digest("hex");
    const wrong = await call("POST", `/v1/leases/${l.id}/shards?expected_digest=${"0".repeat(64)}`, data, "application/octet-stream");
    expect(wrong).toMatchObject({
      status: 422,
      body: {
        error: {
          code: "integrity_violation",
          field: "expected_digest",
          expected_digest: "0".repeat(64),
          actual_digest: flat,
          retryable: false,
        },
      },
    });
    const big = await call("POST", `/v1/leases/${l.id}/shards`, new Uint8Array(room + 1), "application/octet-stream");
    expect(big).toMatchObject({
      status: 409,
      body: { error: { code: "insufficient_vram", needed_bytes: room + 1, available_bytes: room, retryable: true } },
    });
    const committed = await call(
      "POST",
      `/v1/leases/${l.id}/shards?shard_id=contract-0&expected_digest=${flat}`,
      data,
      "application/octet-stream",
    );
    expect(committed).toMatchObject({ status: 201, body: { shard_id: "contract-0", digest: flat, state: "SEALED" } });
    const ready = (await call("GET", `/v1/leases/${l.id}/ready`)).body;
    expect(ready).toMatchObject({
      lease_id: l.id,
      ready: true,
      failed: [],
      shards: [{ shard_id: "contract-0", state: "SEALED", digest: flat }],
    });
    const yes = await call("POST", "/v1/shards/contract-0/execute-check");
    expect(yes).toMatchObject({ status: 200, body: { ok: true, may_execute: true, mode: "full", verified_now: true, max_age_ms: 0 } });
    expect(await call("GET", "/v1/shards/nope")).toMatchObject({ status: 404, body: { error: { code: "not_sealed", retryable: false } } });
    expect(await call("POST", "/v1/shards/nope/execute-check")).toMatchObject({
      status: 404,
      body: { error: { code: "not_sealed", field: "id" } },
    });
  });
});
