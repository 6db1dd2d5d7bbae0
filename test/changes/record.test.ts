/**
 * The record of changes: numbering (continued after a trail), the kept window and what `since`
 * says of what is not kept, who caused a change (the context, however deep and across awaits),
 * listeners in order with a failing one contained, and only known types.
 */
import { describe, expect, test } from "bun:test";
import { type Change, ChangeRecord, within } from "../../src/changes/record.ts";
import { CHANGE_KINDS, registerChangeKinds } from "../../src/changes/types.ts";
import { FakeClock, memoryLogger } from "../helpers.ts";
import { systemClock } from "../../src/util/clock.ts";

const record = (keep = 4, firstId?: number) => {
  const clock = new FakeClock(Date.UTC(2026, 11, 5, 12, 0, 0));
  const { log, lines } = memoryLogger();
  return { r: new ChangeRecord({ clock, log, keep, ...(firstId !== undefined && { firstId }) }), clock, lines };
};
const grant = (lease: string) => ({ type: "lease.granted", lease_id: lease, gpu_id: "GPU-0" });

describe("numbering and time", () => {
  test("ids count up from 1, stamped on the clock in RFC 3339", () => {
    const { r, clock } = record();
    expect(r.lastId).toBe(0);
    const a = r.append(grant("a"));
    clock.advance(1500);
    const b = r.append(grant("b"));
    expect([a.id, b.id, r.lastId]).toEqual([1, 2, 2]);
    expect(a.time).toBe("2026-12-05T12:00:00.000Z");
    expect(b.time).toBe("2026-12-05T12:00:01.500Z");
  });

  test("a record started after a trail continues its numbering", () => {
    const { r } = record(4, 1001);
    expect(r.lastId).toBe(1000);
    expect(r.append(grant("a")).id).toBe(1001);
  });

  test("defaults: source daemon, severity info, empty data, no actor", () => {
    const { r } = record();
    const c = r.append({ type: "gpu.health", gpu_id: "GPU-1" });
    expect(c).toEqual({ id: 1, time: c.time, type: "gpu.health", source: "daemon", severity: "info", gpu_id: "GPU-1", data: {} });
  });

  test("only a type in the table can be recorded; the table refuses a bad or repeated name", () => {
    const { r } = record();
    expect(() => r.append({ type: "lease.granted_typo" })).toThrow(/not in CHANGE_KINDS/);
    expect(r.lastId).toBe(0);
    expect(() => registerChangeKinds([{ type: "Lease", when: "x", streamed: true }])).toThrow(/dotted lower case/);
    expect(() => registerChangeKinds([{ type: "lease.granted", when: "x", streamed: true }])).toThrow(/twice/);
    registerChangeKinds([{ type: "test.only_here", when: "a test's own kind", streamed: false }]);
    expect(CHANGE_KINDS.get("test.only_here")?.streamed).toBe(false);
    expect(r.append({ type: "test.only_here" }).id).toBe(1);
  });
});

describe("since: the kept window", () => {
  test("after an id still kept: the rest, no gap", () => {
    const { r } = record(4);
    for (const l of ["a", "b", "c"]) r.append(grant(l));
    const s = r.since(1);
    expect(s.changes.map((c) => c.id)).toEqual([2, 3]);
    expect(s.gap).toBeNull();
    expect(r.since(3)).toEqual({ changes: [], gap: null });
    expect(r.since(0).changes.map((c) => c.id)).toEqual([1, 2, 3]);
  });

  test("after an id no longer kept: what is kept, and the evicted ids named", () => {
    const { r } = record(4);
    for (let i = 0; i < 10; i++) r.append(grant(`l${i}`));
    const s = r.since(2);
    expect(s.changes.map((c) => c.id)).toEqual([7, 8, 9, 10]);
    expect(s.gap).toEqual({ from: 3, to: 6, why: "evicted" });
    // Exactly at the edge: the id before the oldest kept misses nothing.
    expect(r.since(6).gap).toBeNull();
    expect(r.since(5).gap).toEqual({ from: 6, to: 6, why: "evicted" });
  });

  test("an id ahead of the newest is not this record's: a gap, nothing else", () => {
    const { r } = record(4);
    r.append(grant("a"));
    expect(r.since(50)).toEqual({ changes: [], gap: { from: 2, to: 50, why: "unknown_id" } });
  });

  test("a record that continues a trail keeps nothing from before its start", () => {
    const { r } = record(4, 101);
    expect(r.since(100)).toEqual({ changes: [], gap: null });
    expect(r.since(90).gap).toEqual({ from: 91, to: 100, why: "evicted" });
    r.append(grant("a"));
    expect(r.since(100).changes.map((c) => c.id)).toEqual([101]);
  });
});

describe("who caused it", () => {
  test("the context gives source and actor, however deep and across awaits; the producer's fields win", async () => {
    const { r } = record();
    const seen: Change[] = [];
    r.on((c) => seen.push(c));
    const deep = async () => {
      await Promise.resolve();
      await new Promise((resolve) => setTimeout(resolve, 1));
      r.append(grant("a"));
      r.append({ ...grant("b"), source: "k8s", actor: { worker_id: "k8s/GPU-0" } });
    };
    await within({ source: "api", actor: { principal: "ops", route: "POST /v1/leases" } }, deep);
    r.append(grant("c"));
    expect(seen.map((c) => [c.source, c.actor])).toEqual([
      ["api", { principal: "ops", route: "POST /v1/leases" }],
      ["k8s", { principal: "ops", route: "POST /v1/leases", worker_id: "k8s/GPU-0" }],
      ["daemon", undefined],
    ]);
  });

  test("a timer armed on the system clock while serving a request fires as the daemon's (a lease's TTL)", async () => {
    const { r } = record();
    const fired = new Promise<Change>((resolve) =>
      within({ source: "api", actor: { route: "POST /v1/leases" } }, () => {
        systemClock.setTimer(1, () => resolve(r.append({ type: "lease.expired", lease_id: "a" })));
      })
    );
    const c = await fired;
    expect([c.source, c.actor]).toEqual(["daemon", undefined]);
  });

  test("contexts do not leak between concurrent requests", async () => {
    const { r } = record(16);
    const seen: Change[] = [];
    r.on((c) => seen.push(c));
    const request = (who: string, wait: number) =>
      within({ source: "api", actor: { principal: who } }, async () => {
        await new Promise((resolve) => setTimeout(resolve, wait));
        r.append(grant(who));
      });
    await Promise.all([request("slow", 5), request("fast", 0)]);
    expect(seen.map((c) => [c.lease_id, c.actor?.principal])).toEqual([["fast", "fast"], ["slow", "slow"]]);
  });
});

describe("listeners", () => {
  test("all hear every change in order; a failing one is logged and the rest still hear it", () => {
    const { r, lines } = record();
    const heard: string[] = [];
    r.on((c) => heard.push(`first ${c.id}`));
    r.on(() => {
      throw new Error("disk gone");
    });
    const stop = r.on((c) => heard.push(`third ${c.id}`));
    r.append(grant("a"));
    stop();
    r.append(grant("b"));
    expect(heard).toEqual(["first 1", "third 1", "first 2"]);
    expect(lines.filter((l) => l.includes("disk gone"))).toHaveLength(2);
    expect(lines.join("\n")).toContain("a reader of change 1 (lease.granted) failed: disk gone");
  });

  test("counts per type", () => {
    const { r } = record();
    r.append(grant("a"));
    r.append(grant("b"));
    r.append({ type: "lease.expired", lease_id: "a" });
    expect([...r.counts()]).toEqual([["lease.granted", 2], ["lease.expired", 1]]);
  });

  test("keep must be a positive integer", () => {
    const { log } = memoryLogger();
    expect(() => new ChangeRecord({ clock: new FakeClock(), log, keep: 0 })).toThrow(/keep must be a positive integer, got 0/);
  });
});
