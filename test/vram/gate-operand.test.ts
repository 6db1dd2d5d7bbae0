/**
 * A sealed shard read as a job's operand b (src/vram/operand.ts, ShardStore.readChecked), on host
 * memory: only the lease's own shard (another lease's is refused in the words an unknown id gets),
 * verified in the gate's mode, then copied and the copy checked against the seal, so a change the
 * verification did not see (a leaf a sampled check skipped) still fails the job and the shard.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { Lease } from "../../src/lease/types.ts";
import { VramAudit } from "../../src/vram/audit.ts";
import { HostMemoryVram } from "../../src/vram/host-backend.ts";
import type { VramBackend } from "../../src/vram/backend.ts";
import { readOperand } from "../../src/vram/operand.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { ShardStore, VramError } from "../../src/vram/shards.ts";
import { LEAF_BYTES } from "../../src/vram/tree.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { bunFfi } from "../../ffi/bun.ts";
import { UnixShare } from "../../ffi/unix-share.ts";
import { activeLease, memoryLogger } from "../helpers.ts";
import { pattern, source } from "./vectors.ts";

const pool = TreePool.create(1);
afterAll(() => pool.close());

function setup(
  extra: { gateMode?: "full" | "sampled"; sampleLeaves?: number; random?: (n: number) => number; backend?: VramBackend } = {},
) {
  const leases = new Map<string, Lease>([["L1", activeLease({ id: "L1", worker_id: "w1" })], [
    "L2",
    activeLease({ id: "L2", worker_id: "w2" }),
  ]]);
  const failed: string[] = [];
  const { log, lines } = memoryLogger();
  const audit = () => lines.filter((l) => l.includes("audit {")).map((l) => JSON.parse(l.slice(l.indexOf("audit {") + 6)));
  let now = Date.parse("2026-12-06T03:00:00Z");
  const store = new ShardStore({
    backend: new HostMemoryVram(() => 1 << 30, pool),
    audit: new VramAudit(null, log),
    key: deriveKey("secret", "test"),
    lease: (id) => leases.get(id),
    ordinalOf: () => 0,
    onFailure: (s) => failed.push(s.shard_id),
    clock: { now: () => (now += 1000), setTimer: () => 0, clearTimer: () => {} },
    ...extra,
  });
  return { store, failed, audit };
}

describe("a shard as a job's operand", () => {
  test("the lease's own sealed shard: its bytes, and the record of the verification it passed", async () => {
    const { store } = setup();
    const data = pattern(2 * LEAF_BYTES + 12);
    const { shard } = await store.seal("L1", source(data), { shard_id: "b" });
    const r = await readOperand(store, "L1", "b", "full");
    if (!r.ok || !("bytes" in r)) throw new Error("expected a copy");
    expect(Buffer.from(r.bytes).equals(Buffer.from(data))).toBe(true);
    expect(r.read).toEqual({
      shard_id: "b",
      digest: shard.digest,
      vram_bytes: data.length,
      verified_at: store.get("b")!.verified_at!,
      mode: "full",
      path: "cpu",
      access: "copy",
    });
    expect(store.get("b")!.verifications).toBe(1);
  });

  test("another lease's shard is refused exactly like an id nobody sealed", async () => {
    const { store } = setup();
    await store.seal("L2", source(pattern(100)), { shard_id: "theirs" });
    const theirs = await readOperand(store, "L1", "theirs", "full");
    const nobody = await readOperand(store, "L1", "nobody", "full");
    expect(theirs).toEqual({ ok: false, detail: "NOT-SEALED", message: "shard theirs: no shard with that id is sealed under this lease" });
    expect(nobody).toEqual({ ok: false, detail: "NOT-SEALED", message: "shard nobody: no shard with that id is sealed under this lease" });
    expect(store.get("theirs")!.verifications).toBe(0); // not even verified for a stranger
  });

  test("a one-byte corruption fails the job and marks the shard FAILED (full gate)", async () => {
    const { store, failed, audit } = setup();
    await store.seal("L1", source(pattern(3 * LEAF_BYTES)), { shard_id: "b" });
    store.corrupt("b", LEAF_BYTES + 3, 0x42);
    expect(await readOperand(store, "L1", "b", "full")).toEqual({
      ok: false,
      detail: "SEAL-VERIFICATION-FAILED",
      message: "shard b: the tree digest recomputed from VRAM differs from the sealed one",
    });
    expect(store.get("b")!.state).toBe("FAILED");
    expect(failed).toEqual(["b"]);
    expect(audit().filter((e) => e.event === "SealVerificationFailed").map((e) => e.shard_id)).toEqual(["b"]);
  });

  test("a corruption the sampled gate does not see is caught when the copy is checked against the seal", async () => {
    // Sampled: the last leaf only (k = 1); the corruption is in leaf 0.
    const { store, failed, audit } = setup({ gateMode: "sampled", sampleLeaves: 1 });
    const data = pattern(3 * LEAF_BYTES);
    const { shard } = await store.seal("L1", source(data), { shard_id: "b" });
    store.corrupt("b", 5, 0x42);
    expect((await store.verify("b", "sampled")).ok).toBe(true); // the sampled check alone lets it through
    const r = await readOperand(store, "L1", "b", "sampled");
    expect(r).toEqual({
      ok: false,
      detail: "SEAL-VERIFICATION-FAILED",
      message: "shard b: the bytes copied from VRAM for a job differ from the sealed SHA-256",
    });
    expect(store.get("b")!.state).toBe("FAILED");
    expect(failed).toEqual(["b"]);
    const record = audit().find((e) => e.event === "SealVerificationFailed")!;
    expect(record.expected_digest).toBe(shard.digest);
    expect(record.mode).toBe("full"); // every byte was hashed, not a sample
    const corrupted = Buffer.from(data);
    corrupted[5] = 0x42;
    expect(record.actual_digest).toBe(sha256Hex(corrupted));
  });

  test("a shard that failed earlier is refused without reading it", async () => {
    const { store } = setup();
    await store.seal("L1", source(pattern(100)), { shard_id: "b" });
    store.corrupt("b", 0, 0xff);
    await store.verify("b");
    expect(store.readChecked("b")).toEqual({
      ok: false,
      reason: "the shard failed verification earlier: the tree digest recomputed from VRAM differs from the sealed one",
    });
    expect((await readOperand(store, "L1", "b", "full")).ok).toBe(false);
  });

  test("with a runner that maps descriptors, a shareable shard is handed over as its descriptor (verified first), never copied", async () => {
    const { store } = setup({ backend: new HostMemoryVram(() => 1 << 30, pool, UnixShare.open(bunFfi)) });
    await store.seal("L1", source(pattern(100)), { shard_id: "b" });
    const r = await readOperand(store, "L1", "b", "full", true);
    if (!r.ok || !("mapping" in r)) throw new Error("expected a mapping");
    expect(r.mapping).toMatchObject({ fd: store.exportFd("b").fd, mappedBytes: 2 * 1024 * 1024, bytes: 100 });
    expect(r.read).toMatchObject({ shard_id: "b", mode: "full", access: "read-only-mapping" });
    expect(store.get("b")!.verifications).toBe(1);
    r.mapping.release(); // the host backend's own descriptor: kept open
    expect(store.exportFd("b").fd).toBe(r.mapping.fd);
    // A corrupted shard is not handed over.
    store.corrupt("b", 0, 0xee);
    expect(await readOperand(store, "L1", "b", "full", true)).toMatchObject({ ok: false, detail: "SEAL-VERIFICATION-FAILED" });
  });

  test("a shard that cannot be shared is copied and checked even for a runner that maps", async () => {
    const { store } = setup(); // no memfd: unshareable
    await store.seal("L1", source(pattern(100)), { shard_id: "b" });
    expect(store.shareRefusal("b")).not.toBeNull();
    const r = await readOperand(store, "L1", "b", "full", true);
    expect(r.ok && r.read.access).toBe("copy");
    expect(r.ok && "bytes" in r && r.bytes.length).toBe(100);
  });

  test("a shard released before the copy is not_sealed, naming it", () => {
    const { store } = setup();
    let error: VramError | null = null;
    try {
      store.readChecked("gone");
    } catch (e) {
      error = e as VramError;
    }
    expect(error).toBeInstanceOf(VramError);
    expect({ code: error!.code, field: error!.field, message: error!.message }).toEqual({
      code: "not_sealed",
      field: "id",
      message: 'Unknown shard "gone": no shard with that id is sealed',
    });
  });

  test("VRAM that cannot be read back for the copy fails the shard, as a verification would", async () => {
    const inner = new HostMemoryVram(() => 1 << 30, pool);
    let broken = false;
    const backend = new Proxy(inner, {
      get(target, key) {
        const real = Reflect.get(target, key, target);
        if (key === "read" && broken) {
          return () => {
            throw new Error("device lost");
          };
        }
        return typeof real === "function" ? real.bind(target) : real;
      },
    });
    const { store, failed, audit } = setup({ backend });
    await store.seal("L1", source(pattern(100)), { shard_id: "b" });
    broken = true;
    expect(store.readChecked("b")).toEqual({
      ok: false,
      reason: "VRAM could not be read back: device lost",
    });
    expect(store.get("b")!.state).toBe("FAILED");
    expect(failed).toEqual(["b"]);
    expect(audit().find((e) => e.event === "SealVerificationFailed")).toMatchObject({
      shard_id: "b",
      reason: "VRAM could not be read back: device lost",
      expected_digest: store.get("b")!.digest,
      actual_digest: "(unreadable)",
      mode: "full",
    });
  });

  test("a full verification moves the shard's last full verification; a sampled one does not", async () => {
    const { store } = setup();
    await store.seal("L1", source(pattern(2 * LEAF_BYTES)), { shard_id: "b" });
    const sealedFull = store.get("b")!.full_verified_at;
    await readOperand(store, "L1", "b", "sampled");
    expect(store.get("b")!.full_verified_at).toBe(sealedFull);
    expect(store.get("b")!.verified_at).toBeGreaterThan(sealedFull);
    await readOperand(store, "L1", "b", "full");
    expect(store.get("b")!.full_verified_at).toBe(store.get("b")!.verified_at!);
    expect(store.get("b")!.full_verified_at).toBeGreaterThan(sealedFull);
  });

  test("the sampled gate's mode is what the record says", async () => {
    const { store } = setup({ gateMode: "sampled", random: () => 0 });
    await store.seal("L1", source(pattern(2 * LEAF_BYTES)), { shard_id: "b" });
    const r = await readOperand(store, "L1", "b", "sampled");
    expect(r.ok && r.read.mode).toBe("sampled");
  });
});
