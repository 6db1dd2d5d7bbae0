/**
 * The spool's hold on its files: every descriptor it opens (a start-up scan, progress.json, a
 * read, the segment it appends to) is closed again, at a roll and at close() included, so a
 * long-running bridge does not run out of descriptors; and only ENOENT counts as "deleted by
 * hand": a segment that cannot be read or deleted for another reason is an error naming it, not
 * passed over as gone.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DiskWriteError } from "../../src/util/files.ts";
import { accepted, spoolFolder, tokenOf } from "./helpers.ts";

const dir = spoolFolder("gbh-spool-files-");
const { open, segment } = dir;
const Q = { queenSeg: "q1", seq: 1, queenBytes: 0 };
const token = tokenOf;

/**
 * Descriptors this process holds on files in the spool's folder (Linux: /proc/self/fd), so that
 * descriptors other tests or the runtime open or close meanwhile do not count.
 */
function openFds(): number {
  return readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${realpathSync(dir.path)}/`);
    } catch {
      return false; // closed since the listing
    }
  }).length;
}
/** How many more descriptors are open after `rounds` runs of `step` than before them (one warm-up run first). */
function fdsLeft(step: () => void, rounds = 8): number {
  step();
  const before = openFds();
  for (let i = 0; i < rounds; i++) step();
  return openFds() - before;
}
const linux = existsSync("/proc/self/fd");

describe.skipIf(!linux)("every descriptor the spool opens is closed again", () => {
  test("close() releases the segment being appended to", () => {
    let i = 0;
    expect(fdsLeft(() => {
      const { spool } = open();
      spool.append([accepted(i++)]);
      spool.close();
    })).toBe(0);
    expect(openFds()).toBe(0);
  });

  test("a roll to a new segment closes the full one", () => {
    const { spool } = open({ segmentBytes: 1 }); // every append fills its segment
    let i = 0;
    expect(fdsLeft(() => spool.append([accepted(i++)]))).toBe(0);
    expect(readdirSync(dir.path).filter((f) => f.endsWith(".spool")).length).toBe(9);
    expect(openFds()).toBe(1); // the newest segment's
    spool.close();
    expect(openFds()).toBe(0);
  });

  test("reading records (next, upcoming, records) closes each segment read", () => {
    const { spool } = open({ segmentBytes: 1 });
    for (let i = 0; i < 3; i++) spool.append([accepted(i)]);
    expect(fdsLeft(() => {
      expect(token(spool.next()!.record)).toBe(100);
      expect([...spool.upcoming(10)].map((u) => token(u.record))).toEqual([100, 101, 102]);
      expect([...spool.records()].map(token)).toEqual([100, 101, 102]);
    })).toBe(0);
    spool.close();
  });

  test("a start-up scan closes every segment it checked", () => {
    const first = open({ segmentBytes: 1 });
    for (let i = 0; i < 4; i++) first.spool.append([accepted(i)]);
    first.spool.close();
    expect(fdsLeft(() => expect(open({ readOnly: true }).spool.stats().segments).toBe(4))).toBe(0);
  });

  test("loading progress.json closes it", () => {
    writeFileSync(join(dir.path, "progress.json"), JSON.stringify({ seg: 1, index: 0, chunk: 0, queenSeg: "q1", seq: 4, queenBytes: 0 }));
    expect(fdsLeft(() => expect(open({ readOnly: true }).spool.progress.seq).toBe(4))).toBe(0);
  });
});

describe("only a segment that is gone counts as deleted by hand", () => {
  test("a segment that cannot be read (a folder in its place) stops upcoming() and records() with an error naming it", () => {
    const { spool } = open({ segmentBytes: 1 });
    spool.append([accepted(0)]);
    spool.append([accepted(1)]);
    rmSync(segment(2));
    mkdirSync(segment(2));
    expect(() => [...spool.upcoming(10)]).toThrow(`Cannot read ${segment(2)}: it is not a regular file`);
    expect(() => [...spool.records()]).toThrow(`Cannot read ${segment(2)}: it is not a regular file`);
    expect(spool.dropped).toBe(0); // not counted as lost either
    spool.close();
  });

  test("a forwarded segment that cannot be deleted is an error naming it, not taken as already gone", () => {
    const { spool } = open({ segmentBytes: 1 });
    spool.append([accepted(0)]);
    spool.append([accepted(1)]);
    expect(token(spool.next()!.record)).toBe(100);
    rmSync(segment(1));
    mkdirSync(segment(1)); // unlink(2) refuses a folder: EISDIR
    expect(() => spool.advance(Q, false)).toThrow(/EISDIR.*seg-00000001\.spool|seg-00000001\.spool.*EISDIR/);
    spool.close();
  });

  test("a forwarded segment an operator already deleted is passed over quietly", () => {
    const { spool, lines } = open({ segmentBytes: 1 });
    spool.append([accepted(0)]);
    spool.append([accepted(1)]);
    expect(token(spool.next()!.record)).toBe(100);
    rmSync(segment(1)); // deleted by hand between sending its last record and the acknowledgement
    spool.advance(Q, false);
    expect(token(spool.next()!.record)).toBe(101);
    expect(spool.dropped).toBe(0);
    expect(lines).toEqual([]); // no warning: nothing was lost
    spool.close();
  });

  test("a segment file that cannot be created fails the append with its cause and lists no segment for it", () => {
    const { spool } = open({ segmentBytes: 1 });
    spool.append([accepted(0)]);
    mkdirSync(segment(2)); // where the roll would create its file
    expect(() => spool.append([accepted(1)])).toThrow(DiskWriteError);
    expect(() => spool.append([accepted(1)])).toThrow(/seg-00000002\.spool.*EISDIR|EISDIR.*seg-00000002\.spool/);
    expect(spool.stats().segments).toBe(1);
    rmSync(segment(2), { recursive: true });
    spool.append([accepted(2)]);
    expect([...spool.records()].map(token)).toEqual([100, 102]);
    spool.close();
  });
});
