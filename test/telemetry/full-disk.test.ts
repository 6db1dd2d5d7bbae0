/**
 * The spool on a full disk (a small real tmpfs): an append either lands whole or fails, so
 * nothing acknowledged is lost and nothing partial is indexed; progress.json keeps its last good
 * copy. Skipped, with the reason, where a tmpfs cannot be mounted (not root).
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { acceptRecord, type TelemetryRecord } from "../../src/telemetry/record.ts";
import { Spool } from "../../src/telemetry/spool.ts";
import { DiskWriteError } from "../../src/util/files.ts";
import { memoryLogger, smallTmpfs } from "../helpers.ts";
import { record } from "./helpers.ts";

const fs = smallTmpfs(256);
if (fs.path === null) console.warn(`SKIPPED full-disk spool tests: ${fs.reason}`);
const maybe = fs.path === null ? test.skip : test;
if (fs.path !== null) fs.cleanup();

let disk: { path: string; cleanup: () => void };
beforeEach(() => {
  const d = smallTmpfs(256);
  if (d.path === null) return;
  disk = d;
});
afterEach(() => disk?.cleanup());

const accepted = (i: number, pad = 0) => {
  const r = acceptRecord(record(i, pad > 0 ? { feedback_flags: Array.from({ length: Math.ceil(pad / 60) }, () => "x".repeat(60)) } : {}), {
    model_id: "m",
  });
  if (!r.ok) throw new Error(r.message);
  return r.record;
};
/** Fills the disk but for about `leave` bytes, with a file that can be removed later. */
function fill(leave: number): string {
  const filler = join(disk.path, "filler");
  const free = () => {
    const s = Bun.spawnSync(["df", "-B1", "--output=avail", disk.path]).stdout.toString().trim().split("\n")[1];
    return Number(s);
  };
  writeFileSync(filler, new Uint8Array(Math.max(0, free() - leave)));
  return filler;
}

describe("the spool on a full disk", () => {
  maybe("appends until the disk is full: every acknowledged record survives a restart, no refused one is indexed", () => {
    const dir = join(disk.path, "telemetry");
    const { log } = memoryLogger();
    let spool = Spool.open({ dir, log }); // one segment: the disk fills mid-page, not at a roll
    const filler = fill(40 * 1024);
    const acked: number[] = [];
    let refused = 0;
    let i = 0;
    // Batches of mixed sizes, so a write is cut short part-way through a frame.
    for (let attempt = 0; attempt < 400 && refused < 20; attempt++) {
      const batch = Array.from({ length: 1 + (attempt % 5) }, () => accepted(i++, (i * 37) % 900));
      try {
        spool.append(batch);
        acked.push(...batch.map((r) => r.token_count));
      } catch (error) {
        expect(error).toBeInstanceOf(DiskWriteError);
        expect((error as DiskWriteError).code).toBe("ENOSPC");
        expect((error as Error).message).toContain(dir);
        refused++;
      }
      expect(spool.stats().records).toBe(acked.length); // nothing refused is indexed
    }
    expect(refused).toBeGreaterThan(0);
    expect(acked.length).toBeGreaterThan(0);
    // Space comes back: appends land after the last whole frame, not after a hole.
    rmSync(filler);
    const late = [accepted(i++), accepted(i++)];
    spool.append(late);
    acked.push(...late.map((r) => r.token_count));
    spool.close();

    const reopened = memoryLogger();
    spool = Spool.open({ dir, log: reopened.log });
    const found = [...spool.records()].map((r) => (r as TelemetryRecord).token_count);
    expect(found).toEqual(acked);
    expect(spool.dropped).toBe(0);
    expect(reopened.lines.filter((l) => /torn tail|damaged/.test(l))).toEqual([]);
    spool.close();
  });

  maybe("progress.json that cannot be written keeps its last good copy; the position in memory stays right", () => {
    const dir = join(disk.path, "telemetry");
    const { log } = memoryLogger();
    const spool = Spool.open({ dir, log });
    spool.append([accepted(0), accepted(1), accepted(2)]);
    spool.advance({ queenSeg: "q1", seq: 2, queenBytes: 100 }, true);
    const good = readFileSync(join(dir, "progress.json"), "utf8");
    fill(0);
    // Fill whatever the filler's rounding left, so the temporary copy cannot be written.
    for (let n = 0; n < 64; n++) {
      try {
        writeFileSync(join(disk.path, `crumb-${n}`), new Uint8Array(4096));
      } catch {
        break;
      }
    }
    expect(() => spool.advance({ queenSeg: "q1-with-a-longer-name-so-it-needs-more-room", seq: 3, queenBytes: 200 }, true)).toThrow(
      DiskWriteError,
    );
    expect(spool.progress.index).toBe(2);
    expect(readFileSync(join(dir, "progress.json"), "utf8")).toBe(good);
    expect(readdirSync(dir).filter((f) => f.includes("tmp"))).toEqual([]);
    spool.close();
    const reopened = memoryLogger();
    const again = Spool.open({ dir, log: reopened.log });
    expect(again.progress).toMatchObject({ index: 1, queenSeg: "q1", seq: 2 });
    expect(reopened.lines.filter((l) => l.includes("progress.json"))).toEqual([]);
    expect(statSync(join(dir, "progress.json")).size).toBe(good.length);
    again.close();
  });
});
