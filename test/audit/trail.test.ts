/**
 * The audit trail: changes of the record written as chained lines; `verifyTrail` catching an
 * edited, removed or reordered line and a file removed from the middle; rotation with anchors,
 * retention that leaves a trail that still verifies; restart continuity and a torn tail.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalJson, GENESIS, trailFileName } from "../../src/audit/chain.ts";
import { AuditTrail, type AuditTrailOptions } from "../../src/audit/trail.ts";
import { verifyTrail } from "../../src/audit/verify.ts";
import { grantsInto, linesOf } from "./read.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { fillDisk, memoryLogger, smallTmpfs, tempFolder } from "../helpers.ts";

function setup(over: Partial<AuditTrailOptions> = {}, dir = join(tempFolder("audit-"), "audit")) {
  const { log, lines } = memoryLogger();
  const trail = AuditTrail.open({ dir, log, fileBytes: 64 * 1024, maxFiles: 100, fsync: "record", ...over });
  return { dir, trail, lines, ...grantsInto(trail, log) };
}

const first = (dir: string) => join(dir, trailFileName(1));

describe("AuditTrail", () => {
  test("writes each change as one canonical line chained to the one before", async () => {
    const { dir, trail, grant } = setup();
    for (let i = 1; i <= 3; i++) grant(i);
    await trail.close();
    const lines = linesOf(first(dir));
    expect(lines.length).toBe(3);
    const parsed = lines.map((l) => JSON.parse(l));
    expect(parsed.map((p) => p.id)).toEqual([1, 2, 3]);
    expect(parsed[0].prev).toBe(GENESIS);
    expect(parsed[1].prev).toBe(sha256Hex(lines[0]!));
    expect(parsed[2].prev).toBe(sha256Hex(lines[1]!));
    expect(lines[0]).toBe(canonicalJson(parsed[0]));
    expect(parsed[2]).toMatchObject({ type: "lease.granted", lease_id: "lease-3", source: "api", data: { mem_mb: 3 } });
    const v = verifyTrail(dir);
    expect(v).toMatchObject({ ok: true, changes: 3, firstId: 1, lastId: 3, lastHash: sha256Hex(lines[2]!) });
  });

  test("verify names an edited record by file and line", async () => {
    const { dir, trail, grant } = setup();
    for (let i = 1; i <= 5; i++) grant(i);
    await trail.close();
    const lines = linesOf(first(dir));
    // A plausible forgery: the memory changed, the line still canonical.
    const forged = JSON.parse(lines[2]!);
    forged.data.mem_mb = 999;
    lines[2] = canonicalJson(forged);
    writeFileSync(first(dir), lines.join("\n") + "\n");
    expect(verifyTrail(dir)).toMatchObject({ ok: false, file: trailFileName(1), line: 4 });
    expect((verifyTrail(dir) as { problem: string }).problem).toContain("chain is broken");
  });

  test("verify catches a removed record, a reordered pair, and a line made non-canonical", async () => {
    const { dir, trail, grant } = setup();
    for (let i = 1; i <= 5; i++) grant(i);
    await trail.close();
    const lines = linesOf(first(dir));
    writeFileSync(first(dir), [...lines.slice(0, 2), ...lines.slice(3)].join("\n") + "\n");
    expect(verifyTrail(dir)).toMatchObject({ ok: false, line: 3 });
    writeFileSync(first(dir), [lines[0], lines[2], lines[1], lines[3], lines[4]].join("\n") + "\n");
    expect(verifyTrail(dir)).toMatchObject({ ok: false, line: 2 });
    writeFileSync(first(dir), [lines[0], lines[1]!.replace(",", ", "), ...lines.slice(2)].join("\n") + "\n");
    expect(verifyTrail(dir)).toMatchObject({ ok: false, line: 2, problem: expect.stringContaining("canonical") });
    // The last line removed: the chain cannot see it, but the last hash and id say where it ends.
    writeFileSync(first(dir), lines.slice(0, 4).join("\n") + "\n");
    expect(verifyTrail(dir)).toMatchObject({ ok: true, lastId: 4, lastHash: sha256Hex(lines[3]!) });
  });

  test.each(["record", "batch"] as const)(
    "files rotate by size; each opens with an anchor; the chain runs across them (fsync per %s)",
    async (fsync) => {
      const { dir, trail, grant } = setup({ fileBytes: 1024, fsync });
      for (let i = 1; i <= 40; i++) grant(i);
      await trail.close();
      const files = readdirSync(dir).sort();
      expect(files.length).toBeGreaterThan(3);
      const second = linesOf(join(dir, files[1]!));
      const anchor = JSON.parse(second[0]!);
      const lastOfFirst = linesOf(join(dir, files[0]!)).at(-1)!;
      expect(anchor.anchor).toEqual({ file: files[0], last_id: JSON.parse(lastOfFirst).id });
      expect(anchor.prev).toBe(sha256Hex(lastOfFirst));
      expect(verifyTrail(dir)).toMatchObject({ ok: true, files: files.length, changes: 40, lastId: 40 });
    },
  );

  test("a file removed from the middle is named; the oldest removed still verifies from its anchor", async () => {
    const { dir, trail, grant } = setup({ fileBytes: 1024 });
    for (let i = 1; i <= 40; i++) grant(i);
    await trail.close();
    rmSync(join(dir, trailFileName(2)));
    expect(verifyTrail(dir)).toMatchObject({ ok: false, file: trailFileName(3), line: 1 });
    expect((verifyTrail(dir) as { problem: string }).problem).toContain(`${trailFileName(2)} is missing`);
    rmSync(join(dir, trailFileName(1)));
    expect(verifyTrail(dir)).toMatchObject({ ok: true, startsAfter: trailFileName(2), lastId: 40 });
  });

  test("retention keeps maxFiles files and what remains verifies", async () => {
    const { dir, trail, grant, lines } = setup({ fileBytes: 1024, maxFiles: 3 });
    for (let i = 1; i <= 60; i++) grant(i);
    await trail.close();
    expect(readdirSync(dir).length).toBe(3);
    expect(existsSync(first(dir))).toBe(false);
    expect(verifyTrail(dir)).toMatchObject({ ok: true, files: 3, lastId: 60 });
    expect(lines.some((l) => l.includes(`dropped ${trailFileName(1)}`))).toBe(true);
  });

  test("a restart continues the numbering and the chain from the trail's last record", async () => {
    const a = setup({ fileBytes: 1024 });
    for (let i = 1; i <= 7; i++) a.grant(i);
    await a.trail.close();
    const b = setup({ fileBytes: 1024 }, a.dir);
    expect(b.trail.lastId).toBe(7);
    expect(b.grant(8).id).toBe(8);
    await b.trail.close();
    expect(verifyTrail(a.dir)).toMatchObject({ ok: true, changes: 8, firstId: 1, lastId: 8 });
  });

  test("a torn tail is moved aside at start, and the trail goes on verifiable", async () => {
    const a = setup();
    for (let i = 1; i <= 3; i++) a.grant(i);
    await a.trail.close();
    appendFileSync(first(a.dir), '{"data":{"mem_mb":4},"id":4,"lea');
    expect(verifyTrail(a.dir)).toMatchObject({ ok: true, tornTail: 32 });
    const b = setup({}, a.dir);
    expect(b.trail.lastId).toBe(3);
    expect(b.lines.some((l) => l.includes("torn write"))).toBe(true);
    expect(readFileSync(first(a.dir) + ".torn", "utf8")).toBe('{"data":{"mem_mb":4},"id":4,"lea');
    b.grant(4);
    await b.trail.close();
    expect(verifyTrail(a.dir)).toMatchObject({ ok: true, changes: 4, lastId: 4, tornTail: null });
  });

  test("batch mode writes every line at once and syncs fewer times than it writes", async () => {
    const { dir, trail, grant } = setup({ fsync: "batch" });
    for (let i = 1; i <= 200; i++) grant(i);
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    expect(linesOf(first(dir)).length).toBe(200); // written at the end of the turn, before any sync
    await trail.flush();
    expect(trail.syncs).toBeLessThan(200);
    expect(trail.syncs).toBeGreaterThan(0);
    await trail.close();
    expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 200 });
  });

  test("changes that could not be written are declared by a gap line once writing works again", async () => {
    const fs = smallTmpfs(256);
    if (fs.path === null) {
      console.warn(`skipped: ${fs.reason}`);
      return;
    }
    try {
      const { dir, trail, grant, record, lines } = setup({}, join(fs.path, "audit"));
      grant(1);
      const full = fillDisk(fs.path);
      const kept = grant(2, 8192); // the change stands: the record has it whatever the trail could do
      grant(3, 8192);
      expect(record.lastId).toBe(3);
      expect(kept.id).toBe(2);
      expect(trail.failing).toBe(true);
      expect(trail.failures).toBe(2);
      expect(lines.filter((l) => l.includes("cannot write change 2")).length).toBe(1); // loud, once
      full.free();
      grant(4);
      await trail.close();
      const written = linesOf(first(dir)).map((l) => JSON.parse(l));
      expect(written.map((w) => w.id ?? w.gap)).toEqual([1, { from: 2, to: 3, error: expect.stringContaining("disk is full") }, 4]);
      expect(verifyTrail(dir)).toMatchObject({ ok: true, changes: 2, lastId: 4 });
    } finally {
      fs.cleanup();
    }
  });
});
