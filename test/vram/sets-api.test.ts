/**
 * Tensor-parallel sets through the API of a --mock bridge with a tokens file: an operator's set
 * sealed across two leases on two mock GPUs, seen incomplete then ready (its digest computed here
 * from the documented encoding, its attestation checked), in the leases' ready answers, its
 * execute-check; a one-byte corruption failing the set; a release making it incomplete; the
 * set's changes in the record; and another operator answered 404, refused the set id.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { PrincipalGuard } from "../../src/api/principals.ts";
import { addPrincipal } from "../../src/api/tokens-file.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import type { Change } from "../../src/changes/record.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { LEAF_BYTES } from "../../src/vram/tree.ts";
import { memoryLogger, tempDir } from "../helpers.ts";
import { pattern } from "./vectors.ts";

const tmp = tempDir("gbh-sets-api-");
let bridge: Bridge;
let app: ReturnType<typeof createApp>;
const tokens = { a: "", b: "" };
const changes: Change[] = [];

beforeAll(async () => {
  const file = join(tmp.path, "tokens.toml");
  tokens.a = addPrincipal(file, "op-a", "operator", ["a-*"]).token;
  tokens.b = addPrincipal(file, "op-b", "operator", ["b-*"]).token;
  const c = parseCommand(["serve", "--mock", "--state-dir", join(tmp.path, "state"), "--verify-max-age-ms", "0"], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log } = memoryLogger();
  bridge = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() });
  bridge.changes.on((ch) => changes.push(ch));
  app = createApp({ token: "", log, bridge, principals: new PrincipalGuard(file) });
});
afterAll(async () => {
  await bridge.stop();
  tmp.cleanup();
});

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;
async function call(
  who: keyof typeof tokens,
  method: string,
  path: string,
  body?: string | Uint8Array,
): Promise<{ status: number; body: Json }> {
  const res = await app.request(path, {
    method,
    headers: {
      Authorization: `Bearer ${tokens[who]}`,
      ...(typeof body === "string" && { "content-type": "application/json" }),
      ...(body instanceof Uint8Array && { "content-type": "application/octet-stream", "content-length": String(body.length) }),
    },
    ...(body !== undefined && { body }),
  });
  return { status: res.status, body: (await res.json()) as Json };
}
const lease = async (who: keyof typeof tokens, worker: string, gpu_id: string) => {
  const r = await call(
    who,
    "POST",
    "/v1/leases",
    JSON.stringify({ gpu_id, worker_id: worker, mem_mb: 16, streams: 1, ttl_s: 600, priority: 1 }),
  );
  expect(r.status).toBe(201);
  return r.body.id as string;
};
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const member = (i: number) => pattern(LEAF_BYTES + 300 + i);
const seal = (who: keyof typeof tokens, leaseId: string, i: number, set = "tp", total = 2) =>
  call(who, "POST", `/v1/leases/${leaseId}/shards?shard_id=${set}-${i}&set_id=${set}&shard_index=${i}&total_shards=${total}`, member(i));

describe("tensor-parallel sets through the API", () => {
  test("a set across two leases on two GPUs: incomplete, then ready with its digest and attestation; ready answers show it", async () => {
    const l1 = await lease("a", "a-1", "GPU-1");
    expect((await seal("a", l1, 1)).status).toBe(201);
    const half = await call("a", "GET", "/v1/vram/sets/tp");
    expect(half).toMatchObject({
      status: 200,
      body: { set_id: "tp", state: "incomplete", ready: false, missing: [0], set_digest: null, attestation: null, worker_id: "a-1" },
    });
    const l0 = await lease("a", "a-1", "GPU-0");
    const ready0 = await call("a", "GET", `/v1/leases/${l1}/ready`);
    expect(ready0.body).toMatchObject({ ready: true, sets: [{ set_id: "tp", state: "incomplete", ready: false, missing: [0] }] });
    expect((await seal("a", l0, 0)).status).toBe(201);

    const set = (await call("a", "GET", "/v1/vram/sets/tp")).body;
    const digest = sha(Buffer.from(`gpu-bridge-shard-set/v1\ntp\n2\n0 ${sha(member(0))}\n1 ${sha(member(1))}\n`));
    expect(set).toMatchObject({ state: "ready", ready: true, missing: [], failed: [], stale: [0, 1], set_digest: digest });
    expect(set.set_digest_algorithm).toBe("sha256-shard-set-v1");
    expect(set.members.map((m: Json) => [m.shard_index, m.lease_id, m.gpu_id, m.gpu_device])).toEqual([
      [0, l0, "GPU-0", 0],
      [1, l1, "GPU-1", 1],
    ]);
    expect(set.attestation.statement).toMatchObject({ set_id: "tp", set_digest: digest, total_shards: 2, resident: true });
    expect(set.attestation.signature.algorithm).toBe("HMAC-SHA256");
    const ready1 = await call("a", "GET", `/v1/leases/${l1}/ready`);
    expect(ready1.body.sets).toEqual([{
      set_id: "tp",
      state: "ready",
      ready: true,
      total_shards: 2,
      missing: [],
      failed: [],
      set_digest: digest,
    }]);
    expect(ready1.body.shards[0]).toMatchObject({ shard_id: "tp-1", set_id: "tp", shard_index: 1, total_shards: 2 });

    const check = await call("a", "POST", "/v1/vram/sets/tp/execute-check");
    expect(check).toMatchObject({ status: 200, body: { ok: true, may_execute: true, set_digest: digest, max_age_ms: 0 } });
    expect(check.body.members.map((m: Json) => [m.shard_id, m.verified_now])).toEqual([["tp-0", true], ["tp-1", true]]);
    const readyChange = changes.find((c) => c.type === "shard_set.ready");
    expect(readyChange).toMatchObject({ lease_id: l0, data: { event: "ShardSetReady", set_id: "tp", set_digest: digest } });
  });

  test("another operator: 404 for the set and its check, 409 for its set id; the owner's set is untouched", async () => {
    expect(await call("b", "GET", "/v1/vram/sets/tp")).toMatchObject({ status: 404, body: { error: { code: "not_found", field: "id" } } });
    const unknown = await call("a", "GET", "/v1/vram/sets/no-such-set");
    expect((await call("b", "GET", "/v1/vram/sets/tp")).body.error.message).toBe(unknown.body.error.message.replace("no-such-set", "tp"));
    expect((await call("b", "POST", "/v1/vram/sets/tp/execute-check")).status).toBe(404);
    const theirs = await lease("b", "b-1", "GPU-0");
    const taken = await seal("b", theirs, 1, "tp", 2);
    expect(taken).toMatchObject({ status: 409, body: { error: { code: "conflict", field: "set_id" } } });
    expect(taken.body.error.message).not.toContain("a-1");
    expect((await call("a", "GET", "/v1/vram/sets/tp")).body.members.length).toBe(2);
  });

  test("another operator's shard answers exactly as an unknown one, on every shard route", async () => {
    const routes = (id: string): [string, string][] => [
      ["GET", `/v1/shards/${id}`],
      ["DELETE", `/v1/shards/${id}`],
      ["POST", `/v1/shards/${id}/verify`],
      ["POST", `/v1/shards/${id}/execute-check`],
      ["GET", `/v1/shards/${id}/attestation`],
    ];
    for (const [[method, theirs], [, unknown]] of routes("tp-0").map((r, i) => [r, routes("no-such-shard")[i]!] as const)) {
      const b = await call("b", method, theirs);
      const none = await call("b", method, unknown);
      expect({ method, theirs, status: b.status, error: b.body.error }).toEqual({
        method,
        theirs,
        status: none.status,
        error: { ...none.body.error, message: none.body.error.message.replace("no-such-shard", "tp-0") },
      });
      expect(b.status).toBe(404);
    }
    // The owner's shard is untouched.
    expect((await call("a", "GET", "/v1/shards/tp-0")).body.state).toBe("SEALED");
  });

  test("a one-byte corruption of one member: the set's check refuses, the set is failed, the lease not ready, a critical change", async () => {
    bridge.vram.store!.corrupt("tp-1", 17, member(1)[17]! ^ 0x01);
    const refused = await call("a", "POST", "/v1/vram/sets/tp/execute-check");
    expect(refused.body).toMatchObject({ ok: false, may_execute: false, code: "seal_verification_failed", failed: [1], retryable: false });
    const set = (await call("a", "GET", "/v1/vram/sets/tp")).body;
    expect(set).toMatchObject({ state: "failed", ready: false, failed: [{ shard_index: 1, shard_id: "tp-1" }] });
    expect(set.attestation.statement).toMatchObject({ state: "failed", resident: false });
    const l1 = set.members[1].lease_id;
    expect((await call("a", "GET", `/v1/leases/${l1}/ready`)).body).toMatchObject({
      ready: false,
      failed: ["tp-1"],
      sets: [{ state: "failed" }],
    });
    expect(changes.find((c) => c.type === "shard_set.failed")).toMatchObject({
      severity: "critical",
      lease_id: l1,
      data: { set_id: "tp", shard_id: "tp-1", shard_index: 1 },
    });
  });

  test("deleting a member makes the set incomplete again, with a change saying which index is missing", async () => {
    expect((await call("a", "DELETE", "/v1/shards/tp-1")).status).toBe(200);
    expect((await call("a", "GET", "/v1/vram/sets/tp")).body).toMatchObject({
      state: "incomplete",
      missing: [1],
      set_digest: null,
      attestation: null,
    });
    expect((await call("a", "POST", "/v1/vram/sets/tp/execute-check")).body).toMatchObject({
      ok: false,
      code: "set_incomplete",
      missing: [1],
    });
    expect(changes.filter((c) => c.type === "shard_set.incomplete").at(-1)).toMatchObject({
      data: { set_id: "tp", shard_id: "tp-1", missing: [1], members_held: 1 },
    });
  });
});
