/**
 * Tensor-parallel sets (src/vram/sets.ts, set-check.ts, attest.ts setAttestation) over a store on
 * host memory with two mock GPUs: a set assembled across two leases on two GPUs, its digest
 * computed here from the documented encoding, the refusals that keep a set consistent, a one-byte
 * corruption of one member failing the whole set, a release making it incomplete again, and the
 * set's changes in the audit trail.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash, createHmac } from "node:crypto";
import type { Lease } from "../../src/lease/types.ts";
import { canonicalJson, setAttestation } from "../../src/vram/attest.ts";
import { type AuditEvent, VramAudit } from "../../src/vram/audit.ts";
import { HostMemoryVram } from "../../src/vram/host-backend.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { executeCheckSet } from "../../src/vram/set-check.ts";
import { setView } from "../../src/vram/sets.ts";
import { type SealOptions, ShardStore, VramError } from "../../src/vram/shards.ts";
import { LEAF_BYTES } from "../../src/vram/tree.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { activeLease, FakeClock, memoryLogger } from "../helpers.ts";
import { pattern, source } from "./vectors.ts";

const pool = TreePool.create(0);
afterAll(() => pool.close());

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
/** The members' bytes: different per index, so no seal is taken for another's retry. */
const bytes = (i: number) => pattern(2 * LEAF_BYTES + 100 + i);

function setup() {
  const clock = new FakeClock();
  const events: { event: AuditEvent; fields: Record<string, unknown> }[] = [];
  const audit = new VramAudit(null, memoryLogger().log, clock.now);
  audit.onRecord = (event, fields) => events.push({ event, fields: { ...fields } });
  const leases = new Map<string, Lease>([
    ["A0", activeLease({ id: "A0", gpu_id: "GPU-0", worker_id: "w-tp" })],
    ["A1", activeLease({ id: "A1", gpu_id: "GPU-1", worker_id: "w-tp" })],
    ["B0", activeLease({ id: "B0", gpu_id: "GPU-0", worker_id: "w-other" })],
  ]);
  const store = new ShardStore({
    backend: new HostMemoryVram(() => 1 << 30, pool),
    audit,
    key: deriveKey("k", "k"),
    lease: (id) => leases.get(id),
    ordinalOf: (g) => (g === "GPU-0" ? 0 : g === "GPU-1" ? 1 : undefined),
    clock,
  });
  const member = (lease: string, i: number, n = 2, set = "llama-tp", extra: SealOptions = {}) =>
    store.seal(lease, source(bytes(i)), { shard_id: `${set}-${i}`, set_id: set, shard_index: i, total_shards: n, ...extra });
  const check = (maxAgeMs = 1000) => executeCheckSet(store, "llama-tp", { maxAgeMs, mode: "full", now: clock.now });
  const setEvents = () => events.filter((e) => e.event.startsWith("ShardSet"));
  return { clock, store, leases, member, check, setEvents, events };
}

/** The refusal `run` throws: its code, field and message. */
async function refusal(run: () => Promise<unknown>): Promise<{ code: string; field: string | undefined; message: string }> {
  try {
    await run();
  } catch (error) {
    if (!(error instanceof VramError)) throw error;
    return { code: error.code, field: error.field, message: error.message };
  }
  throw new Error("expected a refusal");
}

describe("tensor-parallel sets", () => {
  test("a set across two leases on two GPUs: incomplete with the missing index, then ready with the documented set digest", async () => {
    const { store, member, setEvents } = setup();
    const first = await member("A1", 1);
    expect(first.shard).toMatchObject({ set_id: "llama-tp", shard_index: 1, total_shards: 2, gpu_device: 1 });
    expect(store.sets.status("llama-tp")).toMatchObject({ state: "incomplete", missing: [0], failed: [], set_digest: null });
    expect(setEvents()).toEqual([]);
    await member("A0", 0);
    const set = store.sets.status("llama-tp")!;
    // Computed here from docs/vram-sharing.md, not with setDigest().
    const text = `gpu-bridge-shard-set/v1\nllama-tp\n2\n0 ${sha(bytes(0))}\n1 ${sha(bytes(1))}\n`;
    expect(set).toMatchObject({ state: "ready", missing: [], worker_id: "w-tp", total_shards: 2, set_digest: sha(Buffer.from(text)) });
    expect(set.members.map((m) => [m.shard_index, m.lease_id, m.gpu_device])).toEqual([[0, "A0", 0], [1, "A1", 1]]);
    expect(setEvents().map((e) => e.event)).toEqual(["ShardSetReady"]);
    expect(setEvents()[0]!.fields).toMatchObject({ set_id: "llama-tp", set_digest: set.set_digest, lease_id: "A0", worker_id: "w-tp" });
  });

  test("a set of three lists every index still missing, in order", async () => {
    const { store, member } = setup();
    await member("A1", 1, 3);
    expect(store.sets.status("llama-tp")).toMatchObject({ state: "incomplete", missing: [0, 2], total_shards: 3 });
  });

  test("refusals name the field and both values: duplicate index, total that disagrees, index out of range, partial options", async () => {
    const { store, member } = setup();
    await member("A0", 0, 2);
    expect(await refusal(() => member("A1", 0, 2, "llama-tp", { shard_id: "dup" }))).toEqual({
      code: "conflict",
      field: "shard_index",
      message: 'Cannot seal into set "llama-tp": shard_index 0 is held by shard "llama-tp-0" already; delete it first to replace it',
    });
    expect(await refusal(() => member("A1", 1, 4))).toEqual({
      code: "conflict",
      field: "total_shards",
      message: 'Cannot seal into set "llama-tp": total_shards is 4, but its members have total_shards 2',
    });
    expect(await refusal(() => member("A1", 2, 2))).toEqual({
      code: "invalid",
      field: "shard_index",
      message: "shard_index 2 is out of range for total_shards 2: indexes run from 0 to 1",
    });
    expect(await refusal(() => store.seal("A1", source(bytes(1)), { set_id: "x", shard_index: 1 }))).toEqual({
      code: "invalid",
      field: "total_shards",
      message: "set_id, shard_index and total_shards go together: give all three or none (total_shards missing)",
    });
    expect((await refusal(() => store.seal("A1", source(bytes(1)), { shard_index: 0, total_shards: 2 }))).field).toBe("set_id");
    expect((await refusal(() => member("A1", 1, 0))).message).toBe("total_shards must be an integer from 1 to 65536, got 0");
    expect((await refusal(() => member("A1", 1, 2, "bad id", { shard_id: "ok-id" }))).field).toBe("set_id");
    // Another worker's lease cannot join, and a retry of the same bytes cannot change membership.
    const other = await refusal(() => member("B0", 1));
    expect(other).toMatchObject({ code: "conflict", field: "set_id" });
    expect(other.message).toContain(`its members are worker "w-tp"'s, and lease B0 is worker "w-other"'s`);
    const moved = await refusal(() => store.seal("A0", source(bytes(0)), { set_id: "other-set", shard_index: 0, total_shards: 1 }));
    expect(moved).toMatchObject({ code: "conflict", field: "set_id" });
    expect(moved.message).toContain('holds them already as shard "llama-tp-0", shard_index 0 of 2 in set "llama-tp"');
    // None of them left anything behind; a retry of the member itself is the member.
    expect(store.list().map((s) => s.shard_id)).toEqual(["llama-tp-0"]);
    expect(await member("A0", 0)).toMatchObject({ created: false, shard: { shard_id: "llama-tp-0" } });
    expect(store.backend.memInfo(1).free).toBe(1 << 30);
  });

  test("two seals of one index at once: one is kept, the other refused and its VRAM freed", async () => {
    const { store } = setup();
    const opts = { set_id: "race", shard_index: 0, total_shards: 2 };
    const r = await Promise.allSettled([
      store.seal("A0", source(bytes(0)), { ...opts, shard_id: "r-a" }),
      store.seal("A1", source(bytes(5)), { ...opts, shard_id: "r-b" }),
    ]);
    expect(r.map((x) => x.status).sort()).toEqual(["fulfilled", "rejected"]);
    expect(store.sets.members("race").length).toBe(1);
    expect(store.backend.memInfo(0).free + store.backend.memInfo(1).free).toBe(2 * (1 << 30) - store.list()[0]!.vram_bytes);
  });

  test("execute-check of a ready set: each member verified when stale, and the set digest in the answer", async () => {
    const { store, member, check, clock } = setup();
    await member("A0", 0);
    await member("A1", 1);
    const fresh = await check();
    expect(fresh).toMatchObject({ ok: true, may_execute: true, set_id: "llama-tp", total_shards: 2 });
    expect(fresh.ok && fresh.members.map((m) => m.ok && m.verified_now)).toEqual([false, false]);
    expect(fresh.ok && fresh.set_digest).toBe(store.sets.status("llama-tp")!.set_digest!);
    clock.advance(1000);
    expect(setView(store.sets.status("llama-tp")!, clock.now(), 1000).stale).toEqual([0, 1]);
    const redone = await check();
    expect(redone.ok && redone.members.map((m) => m.ok && m.verified_now)).toEqual([true, true]);
    expect(store.list().map((s) => s.verifications)).toEqual([1, 1]);
  });

  test("one byte changed in one member's VRAM: the set's execute-check refuses, the set is failed naming it, a set event is critical", async () => {
    const { store, member, check, setEvents } = setup();
    await member("A0", 0);
    await member("A1", 1);
    store.corrupt("llama-tp-1", LEAF_BYTES + 7, 0x5a);
    const r = await check(0);
    expect(r).toMatchObject({ ok: false, may_execute: false, code: "seal_verification_failed", retryable: false, failed: [1] });
    expect(r.ok === false && r.members.map((m) => m.ok)).toEqual([true, false]);
    const set = store.sets.status("llama-tp")!;
    expect(set).toMatchObject({ state: "failed", missing: [], failed: [{ shard_index: 1, shard_id: "llama-tp-1" }] });
    expect(set.failed[0]!.failure).toContain("tree digest recomputed from VRAM differs");
    expect(setEvents().map((e) => e.event)).toEqual(["ShardSetReady", "ShardSetFailed"]);
    expect(setEvents()[1]!.fields).toMatchObject({ set_id: "llama-tp", shard_index: 1, severity: "CRITICAL", lease_id: "A1" });
    expect(await check(1_000_000)).toMatchObject({ ok: false, code: "seal_verification_failed", members: [] });
  });

  test("releasing a member, or its lease ending, makes the set incomplete again; the last one gone, the set is unknown", async () => {
    const { store, member, check, setEvents } = setup();
    await member("A0", 0);
    await member("A1", 1);
    store.release("llama-tp-0");
    expect(store.sets.status("llama-tp")).toMatchObject({ state: "incomplete", missing: [0], set_digest: null });
    expect(await check()).toMatchObject({ ok: false, code: "set_incomplete", retryable: true, missing: [0] });
    expect(setEvents().at(-1)).toEqual({
      event: "ShardSetIncomplete",
      fields: {
        set_id: "llama-tp",
        total_shards: 2,
        shard_id: "llama-tp-0",
        shard_index: 0,
        reason: "released",
        missing: [0],
        members_held: 1,
        lease_id: "A0",
        worker_id: "w-tp",
      },
    });
    store.releaseLease("A1", "expired");
    expect(store.sets.status("llama-tp")).toBeUndefined();
    expect(setEvents().at(-1)!.fields).toMatchObject({ missing: [0, 1], members_held: 0, reason: "lease expired" });
    expect((await refusal(() => check())).code).toBe("not_found");
  });

  test("the set's attestation carries the set digest and the members, signed over its canonical JSON; none while incomplete", async () => {
    const { store, member } = setup();
    const key = deriveKey("attest", "attest");
    await member("A1", 1);
    expect(setAttestation(store.sets.status("llama-tp")!, key, 0)).toBeNull();
    await member("A0", 0);
    const set = store.sets.status("llama-tp")!;
    const a = setAttestation(set, key, 1_700_000_000_000)!;
    expect(a.statement).toMatchObject({
      schema: "gpu-bridge-vram-set-attestation/v1",
      set_id: "llama-tp",
      set_digest: set.set_digest,
      set_digest_algorithm: "sha256-shard-set-v1",
      state: "ready",
      resident: true,
      issued_at: "2023-11-14T22:13:20.000Z",
    });
    expect(a.statement.members.map((m) => [m.shard_index, m.shard_id, m.gpu_device, m.digest])).toEqual([
      [0, "llama-tp-0", 0, sha(bytes(0))],
      [1, "llama-tp-1", 1, sha(bytes(1))],
    ]);
    expect(a.signature.value).toBe(createHmac("sha256", key).update(canonicalJson(a.statement)).digest("hex"));
  });
});
