/**
 * The audit trail written on a worker thread (batch mode, as the bridge runs it): the same bytes
 * as the trail on the bridge's thread, rotation and retention included; a reader sees every
 * change made before it; the worker's log lines reach the bridge's logger; a full disk makes the
 * same gap line; a worker that cannot start or that dies loses nothing and writes nothing twice;
 * what waits for a slow worker stays bounded; an exit (called, or a crash) still writes all.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ThreadedTrail } from "../../src/audit/threaded.ts";
import { AuditTrail, type AuditTrailOptions } from "../../src/audit/trail.ts";
import { trailFileName } from "../../src/audit/chain.ts";
import { verifyTrail } from "../../src/audit/verify.ts";
import { grantsInto, linesOf } from "./read.ts";
import { fillDisk, memoryLogger, REPO, smallTmpfs, tempFolder, until } from "../helpers.ts";

const here = (file: string) => [new URL(`./${file}`, import.meta.url).href];

async function setup(over: Partial<AuditTrailOptions> = {}, places?: readonly string[], maxInFlight?: number) {
  const { log, lines } = memoryLogger();
  const dir = over.dir ?? join(tempFolder("audit-threaded-"), "audit");
  const o: AuditTrailOptions = { dir, log, fileBytes: 64 * 1024, maxFiles: 100, fsync: "batch", ...over };
  const trail = await ThreadedTrail.start(o, places, maxInFlight);
  return { dir, trail, lines, ...grantsInto(trail, log) };
}

const files = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".jsonl")).sort();
const turn = () => new Promise((r) => setImmediate(r));

describe("ThreadedTrail", () => {
  test("starts a worker, and writes the same bytes as the trail on this thread, across rotation and retention", async () => {
    const { dir, trail, record, grant, lines } = await setup({ fileBytes: 1024, maxFiles: 4 });
    expect(trail).toBeInstanceOf(ThreadedTrail);
    expect(lines.some((l) => l.includes(`the trail in ${dir} is written on a worker thread`))).toBe(true);
    const twin = join(tempFolder("audit-twin-"), "audit");
    const inline = AuditTrail.open({ dir: twin, log: memoryLogger().log, fileBytes: 1024, maxFiles: 4, fsync: "batch" });
    record.on((c) => inline.append(c));
    for (let i = 1; i <= 60; i++) {
      grant(i, i % 7 === 0 ? 300 : 0);
      if (i % 9 === 0) await turn(); // batches of different sizes
    }
    expect((trail as ThreadedTrail).onWorker).toBe(true);
    await Promise.all([trail.close(), inline.close()]);
    expect(lines.filter((l) => l.includes("ERROR") || l.includes("WARN"))).toEqual([]);
    expect(files(dir).length).toBe(4);
    expect(files(dir)).toEqual(files(twin));
    for (const f of files(dir)) expect(readFileSync(join(dir, f), "utf8")).toBe(readFileSync(join(twin, f), "utf8"));
    expect(verifyTrail(dir)).toMatchObject({ ok: true, lastId: 60 });
    // The worker's log lines reach this thread's logger.
    expect(lines.some((l) => l.includes(`dropped ${trailFileName(1)}`))).toBe(true);
  });

  test("a reader sees every change made before it: writePending waits for the worker", async () => {
    const { dir, trail, grant, lines } = await setup();
    for (let i = 1; i <= 300; i++) grant(i);
    trail.writePending(); // the same turn: nothing handed over yet until now
    expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 300 }); // all of it, in two files
    expect(trail.lastId).toBe(300);
    expect((trail as ThreadedTrail).inFlight).toBe(0);
    await trail.flush();
    expect(trail.syncs).toBeGreaterThan(0);
    await trail.close();
    expect(lines.filter((l) => l.includes("has not written"))).toEqual([]);
  });

  test("a restart on the same folder numbers on, whichever thread wrote before", async () => {
    const a = await setup();
    for (let i = 1; i <= 5; i++) a.grant(i);
    await a.trail.close();
    const b = await setup({ dir: a.dir, fsync: "record" }, ["file:///nowhere/trail-worker.ts"]);
    expect(b.trail).toBeInstanceOf(AuditTrail);
    expect(b.trail.lastId).toBe(5);
    b.grant(6);
    await b.trail.close();
    const c = await setup({ dir: a.dir });
    expect(c.trail.lastId).toBe(6);
    expect(c.grant(7).id).toBe(7);
    await c.trail.close();
    expect(verifyTrail(a.dir)).toMatchObject({ ok: true, changes: 7, firstId: 1, lastId: 7 });
  });

  test("a worker that cannot start: the trail is written on this thread, and says so", async () => {
    const { dir, trail, grant, lines } = await setup({}, ["file:///nowhere/trail-worker.ts"]);
    expect(trail).toBeInstanceOf(AuditTrail);
    expect(lines.some((l) => l.includes("worker thread did not start"))).toBe(true);
    for (let i = 1; i <= 3; i++) grant(i);
    await trail.close();
    expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 3 });
  });

  test("a worker that dies after writing a batch it never confirmed: every change once, the chain whole", async () => {
    const { dir, trail, grant, lines } = await setup({}, here("crashing-trail-worker.ts"));
    const t = trail as ThreadedTrail;
    expect(t.onWorker).toBe(true);
    for (let b = 0; b < 3; b++) {
      for (let i = 1; i <= 10; i++) grant(b * 10 + i);
      await turn();
    }
    await until(() => !t.onWorker, 5000, "the worker's death to be heard");
    expect(lines.some((l) => l.includes("worker thread failed") && l.includes("dies after writing"))).toBe(true);
    expect(t.lastId).toBe(30);
    // The trail goes on on this thread: a reader, a flush and more changes behave as before.
    for (let i = 31; i <= 40; i++) grant(i);
    trail.writePending();
    expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 40 });
    await trail.flush();
    const syncs = trail.syncs;
    for (let b = 4; b < 6; b++) {
      for (let i = 1; i <= 10; i++) grant(b * 10 + i);
      await turn();
    }
    await trail.close();
    expect(trail.syncs).toBeGreaterThan(syncs);
    expect(t.lastId).toBe(60);
    expect(lines.filter((l) => l.includes("comes after change"))).toEqual([]); // nothing written twice
    expect(trail.failures).toBe(0);
    const ids = files(dir).flatMap((f) => linesOf(join(dir, f)).map((l) => JSON.parse(l).id));
    expect(ids).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 60 });
  });

  test("a flush waiting for the worker when it dies is answered by the trail on this thread", async () => {
    const { dir, trail, grant } = await setup({}, here("crashing-trail-worker.ts"));
    for (let b = 0; b < 2; b++) {
      grant(b + 1);
      await turn();
    }
    grant(3); // the worker's third batch, which it dies on before it hears the flush
    await trail.flush();
    expect((trail as ThreadedTrail).onWorker).toBe(false);
    expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 3 });
    await trail.close();
  });

  test("a worker that dies while the trail cannot be opened on this thread: counted as failures, said, nothing thrown", async () => {
    const root = tempFolder("audit-gone-");
    const { dir, trail, grant, lines } = await setup({ dir: join(root, "audit") }, here("crashing-trail-worker.ts"));
    const t = trail as ThreadedTrail;
    for (let i = 1; i <= 2; i++) {
      grant(i);
      await turn();
    }
    trail.writePending();
    // The folder goes and a file takes its place: the trail cannot be opened here any more.
    renameSync(dir, join(root, "moved"));
    writeFileSync(dir, "not a folder");
    grant(3);
    await until(() => !t.onWorker, 5000, "the worker's death to be heard");
    grant(4);
    await trail.flush();
    await trail.close();
    expect(trail.failures).toBe(2);
    expect(lines.some((l) => l.includes("cannot open the trail on the bridge's thread"))).toBe(true);
    expect(verifyTrail(join(root, "moved"))).toMatchObject({ ok: true, changes: 3 }); // the third written by the worker before it died
  });

  test("what waits for a slow worker stays bounded: the changes' thread waits instead", async () => {
    const { dir, trail, grant } = await setup({}, here("slow-trail-worker.ts"), 100);
    const t = trail as ThreadedTrail;
    let most = 0;
    for (let b = 0; b < 10; b++) {
      for (let i = 1; i <= 60; i++) grant(b * 60 + i);
      await turn();
      most = Math.max(most, t.inFlight);
    }
    expect(most).toBeLessThanOrEqual(100);
    await trail.close();
    expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 600 });
  });

  test("one change alone is handed over at the end of its turn, without anyone asking", async () => {
    const { dir, trail, grant } = await setup();
    grant(1);
    await until(() => existsSync(join(dir, trailFileName(1))) && linesOf(join(dir, trailFileName(1))).length === 1, 2000, "the line");
    await trail.close();
  });

  test("a change out of order is refused here, counted and said, and the trail goes on", async () => {
    const { dir, trail, record, grant, lines } = await setup();
    const first = grant(1);
    trail.append(first); // again: a second record feeding the same trail, say
    expect(trail.failures).toBe(1);
    expect(lines.filter((l) => l.includes("change 1 (lease.granted) comes after change 1")).length).toBe(1);
    grant(2);
    await trail.close();
    expect(record.lastId).toBe(2);
    expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 2, lastId: 2 });
  });

  test("written() resolves once the worker has written every change taken, without blocking the thread", async () => {
    const { dir, trail, grant } = await setup({}, here("slow-trail-worker.ts"));
    for (let i = 1; i <= 5; i++) grant(i);
    await trail.written();
    expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 5 });
    await trail.written(); // nothing new: at once
    await trail.close();
  });

  test("a reader that cannot wait any longer reads what is written, and says so", async () => {
    const { dir, trail, grant, lines } = await setup({}, here("slow-trail-worker.ts"));
    for (let i = 1; i <= 5; i++) grant(i);
    await turn();
    for (let i = 6; i <= 10; i++) grant(i);
    (trail as ThreadedTrail).writePending(1);
    expect(lines.filter((l) => l.includes("has not written the last") && l.includes("within 1 ms")).length).toBe(1);
    trail.writePending();
    expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 10 });
    expect(lines.filter((l) => l.includes("has not written")).length).toBe(1);
    await trail.close();
  });

  test("close lets go of the trail's file; flush and close after it answer at once", async () => {
    const fds = () => readdirSync("/proc/self/fd").length;
    const before = fds();
    const { trail, grant } = await setup();
    for (let i = 1; i <= 3; i++) grant(i);
    await trail.close();
    expect(fds()).toBe(before);
    expect((trail as ThreadedTrail).onWorker).toBe(false);
    await trail.flush();
    await trail.close();
  });

  test("a full disk: the worker counts and says it, and a gap line declares what is missing", async () => {
    const fs = smallTmpfs(256);
    if (fs.path === null) {
      console.warn(`skipped: ${fs.reason}`);
      return;
    }
    try {
      const { dir, trail, grant, lines } = await setup({ dir: join(fs.path, "audit") });
      grant(1);
      trail.writePending();
      const full = fillDisk(fs.path);
      grant(2, 8192);
      grant(3, 8192);
      trail.writePending();
      expect(trail.failing).toBe(true);
      expect(trail.failures).toBe(2);
      full.free();
      grant(4);
      await trail.flush();
      expect(trail.failing).toBe(false);
      expect(lines.filter((l) => l.includes("cannot write change 2")).length).toBe(1);
      await trail.close();
      const written = linesOf(join(dir, trailFileName(1))).map((l) => JSON.parse(l));
      expect(written.map((w) => w.id ?? w.gap)).toEqual([1, { from: 2, to: 3, error: expect.stringContaining("disk is full") }, 4]);
      expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 2, lastId: 4 });
    } finally {
      fs.cleanup();
    }
  });

  for (const how of ["exit", "throw"] as const) {
    test(`changes made just before the process ends (${how === "exit" ? "process.exit" : "an uncaught error"}) are all written`, () => {
      const dir = join(tempFolder("audit-exit-"), "audit");
      const r = Bun.spawnSync([process.execPath, join(REPO, "test", "audit", "exit-child.ts"), dir, how], { stderr: "pipe" });
      expect(r.exitCode).toBe(how === "exit" ? 3 : 1);
      expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 500, lastId: 500 });
    });
  }
});
