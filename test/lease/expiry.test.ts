/**
 * Lease expiry through the manager's public calls, on a FakeClock: renewal (its TTL, its
 * range, a shorter deadline re-arming the one timer), restore from a journal (what it adopts,
 * refuses, releases and re-arms), the release bookkeeping, the heap of stale deadlines, and
 * the one timer for the earliest deadline.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { LeaseManager } from "../../src/lease/manager.ts";
import { MAX_TTL_S } from "../../src/config/limits.ts";
import type { Lease, LeaseEvent } from "../../src/lease/types.ts";
import { refusal, requests } from "./helpers.ts";
import { FakeClock } from "../helpers.ts";

const gpus = [{ id: "GPU-0", memory_mb: 24576 }, { id: "GPU-1", memory_mb: 8192 }];
let clock: FakeClock;
let mgr: LeaseManager;
let events: LeaseEvent[];
let n = 0;
const req = requests();
/** A journal record as the previous run wrote it. */
const journalled = (o: Partial<Lease> = {}): Lease => ({
  id: `j-${++n}`,
  gpu_id: "GPU-0",
  worker_id: `jw${n}`,
  mem_mb: 1024,
  streams: 1,
  ttl_s: 60,
  priority: 5,
  state: "ACTIVE",
  granted_at: clock.now() - 1000,
  expires_at: clock.now() + 30_000,
  ...o,
});

beforeEach(() => {
  clock = new FakeClock();
  mgr = new LeaseManager({ gpus: () => gpus, clock, maxStreamsPerGpu: 8 });
  events = [];
  mgr.on((e) => events.push(e));
});

describe("renew()", () => {
  test("without a TTL, the lease's own TTL from now; with one, that TTL from now; the event carries the lease", () => {
    const a = mgr.grant(req({ ttl_s: 10 }));
    clock.advance(3000);
    expect(mgr.renew(a.id).expires_at).toBe(clock.now() + 10_000);
    expect(mgr.renew(a.id, 42).expires_at).toBe(clock.now() + 42_000);
    expect(a.ttl_s).toBe(10); // renewal extends; it does not change the terms
    expect(events.at(-1)).toEqual({ type: "renewed", lease: a });
  });

  test("a TTL of 1 to MAX_TTL_S is taken; 0, a fraction and MAX_TTL_S + 1 are refused naming ttl_s", () => {
    const a = mgr.grant(req());
    expect(mgr.renew(a.id, 1).expires_at).toBe(clock.now() + 1000);
    expect(mgr.renew(a.id, MAX_TTL_S).expires_at).toBe(clock.now() + MAX_TTL_S * 1000);
    for (const bad of [0, 1.5, MAX_TTL_S + 1, -1]) {
      expect(refusal(() => mgr.renew(a.id, bad))).toEqual({
        code: "invalid",
        message: `ttl_s must be an integer from 1 to ${MAX_TTL_S}, got ${bad}`,
        field: "ttl_s",
      });
    }
    expect(a.expires_at).toBe(clock.now() + MAX_TTL_S * 1000); // a refused renewal changes nothing
  });

  test("renewing to a shorter TTL re-arms the one timer for the earlier deadline", () => {
    const a = mgr.grant(req({ ttl_s: 100 }));
    mgr.renew(a.id, 2);
    expect(clock.nextAt()).toBe(clock.now() + 2000);
    clock.advance(1999);
    expect(a.state).toBe("ACTIVE");
    clock.advance(1);
    expect(a).toMatchObject({ state: "RELEASED", released_reason: "expired" });
    // The stale 100 s deadline surfaces later and ends nothing twice.
    clock.advance(200_000);
    expect(events.map((e) => e.type)).toEqual(["granted", "renewed", "released"]);
    expect(clock.pending).toBe(0);
  });

  test("an unknown lease is not_found; an ended one is a permission error naming why it ended", () => {
    expect(refusal(() => mgr.renew("nope"))).toEqual({ code: "not_found", message: 'Unknown lease "nope"', field: "id" });
    const a = mgr.grant(req({ ttl_s: 1 }));
    clock.advance(1000);
    expect(refusal(() => mgr.renew(a.id))).toMatchObject({
      code: "permission",
      message: `Lease ${a.id} has ended (expired); take a new lease`,
    });
  });
});

describe("expiry", () => {
  test("many leases with one deadline share one timer, set once; they all end at it", () => {
    const before = clock.timersSet;
    const leases = Array.from({ length: 8 }, () => mgr.grant(req({ mem_mb: 10, ttl_s: 30, gpu_id: "GPU-1" })).id);
    expect(clock.timersSet - before).toBe(1);
    clock.advance(30_000);
    for (const id of leases) expect(mgr.get(id)!.state).toBe("RELEASED");
  });

  test("a lease ends exactly at its deadline; the timer then waits for the next one", () => {
    const a = mgr.grant(req({ ttl_s: 5 }));
    clock.advance(2000);
    const b = mgr.grant(req({ ttl_s: 5 }));
    clock.advance(3000);
    expect([a.state, b.state]).toEqual(["RELEASED", "ACTIVE"]);
    expect(clock.nextAt()).toBe(b.expires_at);
    expect(mgr.liveCount).toBe(1);
    clock.advance(2000);
    expect(b.state).toBe("RELEASED");
    expect(clock.nextAt()).toBeNull();
  });

  test("a lease released early ends once; its deadline passing later releases nothing", () => {
    const a = mgr.grant(req({ ttl_s: 5 }));
    const b = mgr.grant(req({ ttl_s: 10 }));
    mgr.release(a.id, "done");
    clock.advance(5000);
    expect(a.released_reason).toBe("done");
    expect(b.state).toBe("ACTIVE");
    expect(events.filter((e) => e.type === "released").length).toBe(1);
  });

  test("the deadline of a lease released and already forgotten passes without harm", () => {
    const m = new LeaseManager({ gpus: () => gpus, clock, keepReleased: 1 });
    const a = m.grant(req({ ttl_s: 5 }));
    m.release(a.id, "done");
    m.release(m.grant(req({ ttl_s: 5 })).id, "done"); // a is forgotten now
    const c = m.grant(req({ ttl_s: 6 }));
    expect(m.get(a.id)).toBeUndefined();
    clock.advance(5000);
    expect(c.state).toBe("ACTIVE");
    clock.advance(1000);
    expect(c.state).toBe("RELEASED");
  });

  test("close() stops the timer: nothing expires after it", () => {
    const a = mgr.grant(req({ ttl_s: 1 }));
    mgr.close();
    expect(clock.pending).toBe(0);
    clock.advance(5000);
    expect(a.state).toBe("ACTIVE");
  });

  test("stale deadlines are compacted away without losing a live one (thousands of short leases beside a long one)", () => {
    const long = mgr.grant(req({ ttl_s: 100, gpu_id: "GPU-1" }));
    mgr.renew(long.id, 90); // its first deadline is stale now, its second current
    for (let i = 0; i < 2100; i++) mgr.release(mgr.grant(req({ ttl_s: 50 })).id, "done");
    clock.advance(89_999);
    expect(long.state).toBe("ACTIVE");
    clock.advance(1);
    expect(long).toMatchObject({ state: "RELEASED", released_reason: "expired" });
  });
});

describe("release bookkeeping", () => {
  test("an ended lease gives back its memory and streams, and its worker may lease again", () => {
    const a = mgr.grant(req({ worker_id: "same", mem_mb: 24576, streams: 8, ttl_s: 1 }));
    expect(refusal(() => mgr.grant(req({ mem_mb: 1 })))).toMatchObject({ code: "insufficient", field: "mem_mb" });
    clock.advance(1000);
    expect(a.state).toBe("RELEASED");
    expect(mgr.live("GPU-0")).toEqual([]);
    expect(mgr.ofWorker("GPU-0", "same")).toBeUndefined();
    expect(mgr.grant(req({ worker_id: "same", mem_mb: 24576, streams: 8 })).state).toBe("ACTIVE");
  });

  test("released leases are kept for lookups up to keepReleased, the oldest forgotten first", () => {
    const m = new LeaseManager({ gpus: () => gpus, clock, keepReleased: 2 });
    const ids = [1, 2, 3].map(() => m.grant(req()).id);
    for (const id of ids) m.release(id, "done");
    expect(ids.map((id) => m.get(id)?.state)).toEqual([undefined, "RELEASED", "RELEASED"]);
  });
});

describe("restore()", () => {
  test("adopts live leases as copies, re-armed; no granted events; the worker's lease blocks a second grant", () => {
    const rec = journalled({ worker_id: "back" });
    const { restored, expired, refused } = mgr.restore([rec]);
    expect(refused).toEqual([]);
    expect(expired).toEqual([]);
    expect(restored).toEqual([rec]);
    expect(restored[0]).not.toBe(rec);
    expect(mgr.get(rec.id)).toBe(restored[0]);
    expect(mgr.live("GPU-0").map((l) => l.id)).toEqual([rec.id]);
    expect(mgr.liveCount).toBe(1);
    expect(mgr.ofWorker("GPU-0", "back")?.id).toBe(rec.id);
    expect(refusal(() => mgr.grant(req({ worker_id: "back" })))).toMatchObject({ code: "conflict" });
    expect(events).toEqual([]);
    expect(clock.nextAt()).toBe(rec.expires_at);
    clock.advance(30_000);
    expect(mgr.get(rec.id)).toMatchObject({ state: "RELEASED", released_reason: "expired" });
    expect(rec.state).toBe("ACTIVE"); // the journal's record is not changed
  });

  test("a deadline reached exactly at start-up, or before, is released now as expired, with its memory given back", () => {
    const now = journalled({ expires_at: clock.now(), mem_mb: 24576 });
    const past = journalled({ expires_at: clock.now() - 1, gpu_id: "GPU-1" });
    const live = journalled({ expires_at: clock.now() + 1, gpu_id: "GPU-1" });
    const { restored, expired } = mgr.restore([now, past, live]);
    expect(expired.map((l) => [l.id, l.state, l.released_reason])).toEqual([[now.id, "RELEASED", "expired"], [
      past.id,
      "RELEASED",
      "expired",
    ]]);
    expect(restored.map((l) => l.id)).toEqual([live.id]);
    expect(events.map((e) => e.type)).toEqual(["released", "released"]);
    expect(mgr.grant(req({ mem_mb: 24576 })).state).toBe("ACTIVE");
  });

  test("a deadline further off than the TTL (a clock behind the journal's) is cut to the TTL from now", () => {
    const rec = journalled({ ttl_s: 60, expires_at: clock.now() + 3_600_000 });
    const [adopted] = mgr.restore([rec]).restored;
    expect(adopted!.expires_at).toBe(clock.now() + 60_000);
    clock.advance(60_000);
    expect(adopted!.state).toBe("RELEASED");
    const exact = journalled({ ttl_s: 60, expires_at: clock.now() + 60_000 });
    expect(mgr.restore([exact]).restored[0]!.expires_at).toBe(clock.now() + 60_000);
  });

  test("ended records and ids already known are passed over", () => {
    const held = mgr.grant(req());
    const ended = journalled({ state: "RELEASED" });
    const { restored, expired, refused } = mgr.restore([ended, { ...held, worker_id: "other" }]);
    expect([restored, expired, refused]).toEqual([[], [], []]);
    expect(mgr.get(ended.id)).toBeUndefined();
    expect(mgr.get(held.id)!.worker_id).toBe(held.worker_id);
  });

  test("records a grant would refuse are refused, each with why, and nothing of them is held", () => {
    const base = mgr.grant(req({ worker_id: "taken", gpu_id: "GPU-1", mem_mb: 4096, streams: 6 }));
    const cases: [Partial<Lease>, string][] = [
      [{ gpu_id: "GPU-9" }, 'unknown GPU "GPU-9"'],
      [{ worker_id: "has space" }, 'worker_id must be 1-64 characters of A-Z a-z 0-9 . _ -, got "has space"'],
      [{ ttl_s: 0 }, `ttl_s must be an integer from 1 to ${MAX_TTL_S}, got 0`],
      [{ gpu_id: "GPU-1", worker_id: "taken" }, `taken already holds lease ${base.id} on GPU-1`],
      [{ gpu_id: "GPU-1", mem_mb: 4097 }, "insufficient memory on GPU-1: 4097 MiB, 4096 MiB unleased"],
      [{ gpu_id: "GPU-1", streams: 3 }, "insufficient streams on GPU-1"],
    ];
    for (const [o, why] of cases) {
      const rec = journalled(o);
      expect(mgr.restore([rec])).toEqual({ restored: [], expired: [], refused: [{ lease: rec, why }] });
      expect(mgr.get(rec.id)).toBeUndefined();
    }
    // What fits exactly is adopted.
    expect(mgr.restore([journalled({ gpu_id: "GPU-1", mem_mb: 4096, streams: 2 })]).restored.length).toBe(1);
  });
});
