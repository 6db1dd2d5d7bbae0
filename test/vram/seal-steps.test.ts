/**
 * The seal's steps on host memory: its stamps come from the store's Clock, and a copy in VRAM
 * that differs from the bytes received is never sealed: the error names both tree digests, the
 * VRAM is freed and the lease's room comes back.
 */
import { afterAll, expect, test } from "bun:test";
import { VramAudit } from "../../src/vram/audit.ts";
import type { VramBackend, VramBuffer } from "../../src/vram/backend.ts";
import { HostMemoryVram } from "../../src/vram/host-backend.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { ShardStore, VramError } from "../../src/vram/shards.ts";
import { hex, treeDigest } from "../../src/vram/tree.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { activeLease, FakeClock, memoryLogger } from "../helpers.ts";
import { pattern, source } from "./vectors.ts";

const pool = TreePool.create(0);
afterAll(() => pool.close());

const lease = activeLease({ id: "L", gpu_id: "G", mem_mb: 1 });

function store(backend: VramBackend, extra: { clock?: FakeClock } = {}) {
  const { log, lines } = memoryLogger();
  const s = new ShardStore({
    backend,
    audit: new VramAudit(null, log),
    key: deriveKey("k", "k"),
    lease: () => lease,
    ordinalOf: () => 0,
    pool,
    ...extra,
  });
  return { store: s, lines };
}

test("ShardStore stamps seals and verifications with its Clock", async () => {
  const clock = new FakeClock(1_700_000_123_456);
  const { store: s } = store(new HostMemoryVram(() => 1 << 30, pool), { clock });
  const { shard } = await s.seal("L", source(pattern(1000)), { shard_id: "a" });
  expect(shard.sealed_at).toBe(1_700_000_123_000); // whole seconds: the signature carries seconds
  expect(shard.verified_at).toBe(1_700_000_123_456);
  expect(shard.evidence.checked_at).toBe(1_700_000_123_456);
  clock.advance(5000);
  expect(await s.verify("a")).toMatchObject({ ok: true });
  expect(s.get("a")!.verified_at).toBe(1_700_000_128_456);
});

test("a copy in VRAM that differs from the bytes received is not sealed; the VRAM is freed and the room comes back", async () => {
  const inner = new HostMemoryVram(() => 1 << 30, pool);
  const freed: VramBuffer[] = [];
  // A bit flipped in (mock) VRAM after the copy, before the tree is recomputed from it.
  const flaky: VramBackend = {
    kind: inner.kind,
    note: inner.note,
    memInfo: (o) => inner.memInfo(o),
    alloc: (o, n) => inner.alloc(o, n),
    free: (buf) => (freed.push(buf), inner.free(buf)),
    write: (buf, at, src) => inner.write(buf, at, src),
    read: (buf, at, dst) => inner.read(buf, at, dst),
    memset: (buf, at, value, count) => inner.memset(buf, at, value, count),
    treeDigest: (buf, length) => {
      inner.memset(buf, 7, 0xff, 1);
      return inner.treeDigest(buf, length);
    },
    pointerEvidence: () => inner.pointerEvidence(),
    deviceEvidence: () => inner.deviceEvidence(),
    exportFd: (buf) => inner.exportFd(buf),
    close: () => inner.close(),
  };
  const { store: s, lines } = store(flaky);
  const data = pattern(1000);
  const corrupted = data.slice();
  corrupted[7] = 0xff;
  const received = hex(treeDigest(data));
  const fromVram = hex(treeDigest(corrupted));
  const room = s.leaseRoom(lease);
  const error = await s.seal("L", source(data), { shard_id: "b" }).catch((e) => e);
  expect(error).toBeInstanceOf(VramError);
  expect(error.code).toBe("seal_verification_failed");
  expect(error.message).toContain(`tree digest ${fromVram} from VRAM, ${received} received`);
  expect(error.message).toContain("nothing was sealed");
  expect(s.list()).toEqual([]);
  expect(freed.length).toBe(1);
  expect(s.leaseRoom(lease)).toBe(room);
  expect(s.usedBytes(0)).toEqual({ sealed: 0, reserved: 0, shards: 0 });
  expect(lines.some((l) => l.includes('"event":"SealVerificationFailed"') && l.includes(fromVram))).toBe(true);
});
