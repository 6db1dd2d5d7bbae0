/**
 * What a forwarder and an operator see of the spool: the batch it may put in flight, where it
 * resumes after a restart (and what a damaged or impossible progress.json does), the figures it
 * reports, and what start-up says about damage.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Spool } from "../../src/telemetry/spool.ts";
import { DiskWriteError } from "../../src/util/files.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-spool-fwd-")));
afterEach(() => dir.cleanup());

/** A spool rolling every 3 records: each record's frame is 14 bytes (an 8-byte header, 6 of CBOR). */
function open(extra: { readOnly?: boolean; clock?: FakeClock } = {}) {
  const m = memoryLogger();
  return { spool: Spool.open({ dir: dir.path, log: m.log, sync: false, segmentBytes: 36, ...extra }), lines: m.lines };
}
const tok = (r: unknown) => (r as { n: number }).n;
const record = (n: number) => ({ n });
const q = { queenSeg: "q1", seq: 2, queenBytes: 10 };
const segs = () => readdirSync(dir.path).filter((f) => f.endsWith(".spool")).sort();

/** Appends records `from`..`to`-1 one by one, so segments roll as they fill. */
function fill(spool: Spool, from: number, to: number) {
  for (let i = from; i < to; i++) spool.append([record(i)]);
}

describe("upcoming(): the batch a forwarder may put in flight", () => {
  test("from the current position on, across segments, each with its place, at most max", () => {
    const { spool } = open();
    fill(spool, 0, 8);
    expect(segs().length).toBeGreaterThan(2);
    spool.advance(q, false);
    const batch = [...spool.upcoming(5)];
    expect(batch.map((b) => tok(b.record))).toEqual([1, 2, 3, 4, 5]);
    expect(batch.map((b) => [b.seg, b.index])).toEqual([[1, 1], [1, 2], [2, 0], [2, 1], [2, 2]]);
    expect([...spool.upcoming(0)]).toEqual([]);
    expect([...spool.upcoming(100)].map((b) => tok(b.record))).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  test("a segment deleted by hand ends the batch there, without an error", () => {
    const { spool } = open();
    fill(spool, 0, 6);
    unlinkSync(join(dir.path, segs()[1]!));
    expect([...spool.upcoming(10)].map((b) => tok(b.record))).toEqual([0, 1, 2]);
  });
});

describe("where forwarding resumes after a restart", () => {
  test("a saved position mid-record is adopted as saved", () => {
    const { spool } = open();
    fill(spool, 0, 5);
    spool.advance(q, false);
    spool.saveProgress({ chunk: 2, seq: 7, queenBytes: 99, queenSeg: "q-9" });
    spool.close();
    const { spool: again, lines } = open();
    expect(again.progress).toEqual({ seg: 1, index: 1, chunk: 2, queenSeg: "q-9", seq: 7, queenBytes: 99 });
    expect(tok(again.next()!.record)).toBe(1);
    expect(lines.join("\n")).not.toContain("progress.json");
  });

  test("a position at the very end of the spool (all forwarded) is adopted, not taken as damage", () => {
    const { spool } = open();
    fill(spool, 0, 2);
    spool.advance(q);
    spool.advance(q);
    spool.close();
    const { spool: again, lines } = open();
    expect(again.next()).toBeNull();
    expect(again.stats().records).toBe(0);
    expect(lines.join("\n")).not.toContain("progress.json");
  });

  const restart = { seg: 1, index: 0, chunk: 0, queenSeg: null, seq: 1, queenBytes: 0 };
  const cases: [string, string, string][] = [
    ["not JSON", "{", "is unreadable ("],
    ["a Queen segment with a slash", JSON.stringify({ ...restart, queenSeg: "../x" }), "is damaged (queenSeg:"],
    ["segment 0", JSON.stringify({ ...restart, seg: 0 }), "is damaged (seg:"],
    ["seq 0", JSON.stringify({ ...restart, seq: 0 }), "is damaged (seq:"],
    ["a fraction", JSON.stringify({ ...restart, chunk: 1.5 }), "is damaged (chunk:"],
    ["an unknown field", JSON.stringify({ ...restart, extra: 1 }), "is damaged ("],
    ["a segment two past the last", JSON.stringify({ ...restart, seg: 4 }), "points past the spooled records (segment 4, record 0)"],
    ["an index one past the records", JSON.stringify({ ...restart, index: 4 }), "points past the spooled records (segment 1, record 4)"],
  ];
  for (const [what, text, says] of cases) {
    test(`${what}: forwarding restarts at the oldest record and the warning says why`, () => {
      const { spool } = open();
      fill(spool, 0, 5); // segments 1 (3 records) and 2 (2)
      spool.close();
      writeFileSync(join(dir.path, "progress.json"), text);
      const { spool: again, lines } = open();
      expect(again.progress).toEqual(restart);
      expect(again.stats().records).toBe(5);
      const warning = lines.find((l) => l.includes("progress.json"))!;
      expect(warning).toContain(says);
      expect(warning).toContain("forwarding restarts at the oldest spooled record");
    });
  }

  test("an index exactly at a segment's end is a valid position, adopted", () => {
    const { spool } = open();
    fill(spool, 0, 5);
    spool.close();
    writeFileSync(join(dir.path, "progress.json"), JSON.stringify({ ...restart, seg: 2, index: 2 }));
    const { spool: again, lines } = open();
    expect(again.stats().records).toBe(0);
    expect(lines.join("\n")).not.toContain("progress.json");
  });

  test("a position in a segment that is gone, between ones that exist, is refused", () => {
    const { spool } = open();
    fill(spool, 0, 8); // segments 1, 2, 3
    spool.close();
    unlinkSync(join(dir.path, segs()[1]!));
    writeFileSync(join(dir.path, "progress.json"), JSON.stringify({ ...restart, seg: 2 }));
    const { spool: again, lines } = open();
    expect(again.progress.seg).toBe(1);
    expect(lines.join("\n")).toContain("points past the spooled records (segment 2, record 0)");
  });

  test("a progress.json that is a folder is unreadable, and nothing is lost", () => {
    const { spool } = open();
    fill(spool, 0, 2);
    spool.close();
    mkdirSync(join(dir.path, "progress.json"));
    const { spool: again, lines } = open();
    expect(again.stats().records).toBe(2);
    expect(lines.join("\n")).toContain("is unreadable (");
  });
});

describe("the figures it reports", () => {
  test("stats() counts what waits from the position on, and every byte and segment still on disk", () => {
    const { spool } = open();
    fill(spool, 0, 7); // 3 + 3 + 1
    expect(spool.stats()).toEqual({ records: 7, bytes: expect.any(Number), segments: 3 });
    for (let i = 0; i < 4; i++) spool.advance(q, false);
    const s = spool.stats();
    expect(s.records).toBe(3);
    expect(s.segments).toBe(2);
    expect(s.bytes).toBe(segs().reduce((n, f) => n + statSync(join(dir.path, f)).size, 0));
  });

  test("oldestWaitingMs() follows the oldest record not yet forwarded, in the next segment too", () => {
    const clock = new FakeClock();
    const { spool } = open({ clock });
    fill(spool, 0, 3);
    clock.advance(5000);
    fill(spool, 3, 4);
    clock.advance(2000);
    expect(spool.oldestWaitingMs()).toBe(7000);
    for (let i = 0; i < 3; i++) spool.advance(q, false);
    expect(spool.oldestWaitingMs()).toBe(2000);
    spool.advance(q, false);
    expect(spool.oldestWaitingMs()).toBeNull();
  });

  test("records() lists every spooled record oldest first, forwarded or not, across segments", () => {
    const { spool } = open();
    fill(spool, 0, 7);
    spool.advance(q, false);
    expect([...spool.records()].map(tok)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});

describe("read-only and start-up", () => {
  test("a read-only spool refuses appends and leaves a torn tail on disk", () => {
    const { spool } = open();
    fill(spool, 0, 2);
    spool.close();
    const path = join(dir.path, segs()[0]!);
    const size = statSync(path).size;
    writeFileSync(path, new Uint8Array([...readFileSync(path), 5, 0, 0]));
    const { spool: ro } = open({ readOnly: true });
    expect([...ro.records()].map(tok)).toEqual([0, 1]);
    expect(() => ro.append([record(9)])).toThrow("read-only");
    expect(statSync(path).size).toBe(size + 3);
    const { spool: rw, lines } = open();
    expect(statSync(path).size).toBe(size);
    expect(lines.join("\n")).toContain(`has a torn tail of 3 bytes after 2 good records`);
    rw.close();
  });

  test("a read-only spool of a folder that does not exist is empty and creates nothing", () => {
    const m = memoryLogger();
    const ro = Spool.open({ dir: join(dir.path, "none"), log: m.log, readOnly: true });
    expect([...ro.records()]).toEqual([]);
    expect(readdirSync(dir.path)).toEqual([]);
  });

  test("damage between good frames is skipped: counted, sized and told, every good record kept", () => {
    const { spool } = open();
    fill(spool, 0, 3);
    spool.close();
    const path = join(dir.path, segs()[0]!);
    const bytes = readFileSync(path);
    const len = bytes.readUInt32LE(0);
    bytes[8 + Math.floor(len / 2)]! ^= 0xff; // inside the first record's body: its CRC fails
    writeFileSync(path, bytes);
    const { spool: again, lines } = open();
    expect([...again.records()].map(tok)).toEqual([1, 2]);
    expect(again.dropped).toBe(1);
    expect(again.damagedBytes).toBe(8 + len);
    expect(lines.join("\n")).toContain(`skipped ${8 + len} bytes in 1 place(s)`);
    expect(lines.join("\n")).toContain("kept 2 good records");
  });
});

describe("files removed or damaged by hand", () => {
  test("the segment being forwarded, deleted: its unforwarded records are counted lost and forwarding goes on", () => {
    const { spool, lines } = open();
    fill(spool, 0, 6); // segments 1 and 2
    spool.advance(q, false);
    unlinkSync(join(dir.path, segs()[0]!));
    expect(tok(spool.next()!.record)).toBe(3);
    expect(spool.dropped).toBe(2);
    expect(lines.join("\n")).toContain(
      "seg-00000001.spool was deleted from under the spool: 2 unforwarded records lost (2 dropped so far)",
    );
  });

  test("the segment being appended to, deleted: the next append goes to a new file that exists", () => {
    const { spool, lines } = open();
    fill(spool, 0, 2);
    unlinkSync(join(dir.path, segs()[0]!));
    spool.append([record(2)]);
    expect(segs()).toEqual(["seg-00000002.spool"]);
    expect([...spool.records()].map(tok)).toEqual([2]);
    expect(spool.dropped).toBe(2);
    expect(lines.join("\n")).toContain("2 unforwarded records lost");
  });

  test("a segment cut short by hand fails the read with a clear error", () => {
    const { spool } = open();
    fill(spool, 0, 2);
    const path = join(dir.path, segs()[0]!);
    writeFileSync(path, readFileSync(path).subarray(0, 16));
    spool.advance(q, false);
    expect(() => spool.next()).toThrow("spool: unexpected end of segment");
  });

  test("files that only look like segments are left alone", () => {
    const { spool } = open();
    fill(spool, 0, 1);
    spool.close();
    writeFileSync(join(dir.path, "xseg-00000009.spool"), "junk");
    writeFileSync(join(dir.path, "seg-00000009.spool.bak"), "junk");
    const { spool: again, lines } = open();
    again.append([record(1)]);
    expect([...again.records()].map(tok)).toEqual([0, 1]);
    expect(segs()).toEqual(["seg-00000001.spool", "xseg-00000009.spool"]);
    expect(lines.join("\n")).not.toContain("seg-00000009");
  });

  test("a folder in the way of a new segment fails the append as a disk write error", () => {
    const { spool } = open();
    fill(spool, 0, 3);
    mkdirSync(join(dir.path, "seg-00000002.spool"));
    expect(() => spool.append([record(3)])).toThrow(DiskWriteError);
  });
});

describe("the size cap", () => {
  test("drops exactly the oldest segment, counting the records not yet forwarded in it", () => {
    const m = memoryLogger();
    const spool = Spool.open({ dir: dir.path, log: m.log, sync: false, segmentBytes: 36, capBytes: 84 });
    fill(spool, 0, 6); // two full segments: 84 bytes, at the cap
    spool.advance(q, false);
    spool.append([record(6)]); // 98 bytes: the first segment goes
    expect(segs()).toEqual(["seg-00000002.spool", "seg-00000003.spool"]);
    expect(spool.dropped).toBe(2);
    expect(m.lines.join("\n")).toContain("dropped seg-00000001.spool with 2 unforwarded records (2 dropped so far)");
    expect(tok(spool.next()!.record)).toBe(3);
  });

  test("a segment past the forwarder's loses all its records", () => {
    const m = memoryLogger();
    const spool = Spool.open({ dir: dir.path, log: m.log, sync: false, segmentBytes: 36, capBytes: 42 });
    fill(spool, 0, 4);
    expect(m.lines.join("\n")).toContain("dropped seg-00000001.spool with 3 unforwarded records");
    expect(spool.dropped).toBe(3);
  });
});

describe("opening", () => {
  test("a new spool warns about nothing, and appending nothing writes nothing", () => {
    const { spool, lines } = open();
    spool.append([]);
    expect(segs()).toEqual([]);
    expect(lines).toEqual([]);
  });

  test("after a restart appends go on in the last segment until it is full", () => {
    const { spool } = open();
    fill(spool, 0, 1);
    spool.close();
    const { spool: again } = open();
    fill(again, 1, 3);
    expect(segs()).toEqual(["seg-00000001.spool"]);
    again.close();
    const { spool: third } = open();
    fill(third, 3, 4);
    expect(segs()).toEqual(["seg-00000001.spool", "seg-00000002.spool"]);
  });

  test("a damaged progress.json with no segment at all restarts at segment 1", () => {
    mkdirSync(dir.path, { recursive: true });
    writeFileSync(join(dir.path, "progress.json"), "{");
    const { spool } = open();
    expect(spool.progress.seg).toBe(1);
  });

  test("a forwarded segment left on disk is deleted at start-up, but never by a read-only open", () => {
    const { spool } = open();
    fill(spool, 0, 4);
    spool.close();
    writeFileSync(
      join(dir.path, "progress.json"),
      JSON.stringify({ seg: 2, index: 0, chunk: 0, queenSeg: null, seq: 1, queenBytes: 0 }),
    );
    const { spool: ro } = open({ readOnly: true });
    expect(segs()).toEqual(["seg-00000001.spool", "seg-00000002.spool"]);
    expect([...ro.records()].length).toBe(4);
    open();
    expect(segs()).toEqual(["seg-00000002.spool"]);
  });
});

describe("the age of the oldest record", () => {
  test("arrivals are kept to the second: records within a second share the first one's time", () => {
    const clock = new FakeClock();
    const { spool } = open({ clock });
    spool.append([record(0)]);
    clock.advance(500);
    spool.append([record(1)]);
    clock.advance(500);
    spool.append([record(2)]); // a second after the first: a new arrival
    spool.advance(q, false);
    clock.advance(2000);
    expect(spool.oldestWaitingMs()).toBe(3000);
    spool.advance(q, false);
    expect(spool.oldestWaitingMs()).toBe(2000);
  });

  test("records found at start-up are as old as their file's last change", () => {
    const { spool } = open();
    fill(spool, 0, 2);
    spool.close();
    const mtime = statSync(join(dir.path, segs()[0]!)).mtimeMs;
    const clock = new FakeClock(mtime + 60_000);
    const { spool: again } = open({ clock });
    expect(again.oldestWaitingMs()).toBe(60_000);
  });
});

describe("positions at the edges", () => {
  const at = (seg: number, index: number) => JSON.stringify({ seg, index, chunk: 0, queenSeg: null, seq: 1, queenBytes: 0 });

  test("just past the last segment (everything forwarded) is adopted, and the forwarded segments go", () => {
    const { spool } = open();
    fill(spool, 0, 5); // segments 1 and 2
    spool.close();
    writeFileSync(join(dir.path, "progress.json"), at(3, 0));
    const { spool: again, lines } = open();
    expect(lines.join("\n")).not.toContain("progress.json");
    expect(again.stats().records).toBe(0);
    expect(again.next()).toBeNull();
  });

  test("before the oldest segment (an older one already deleted) is adopted and moved to the oldest record", () => {
    const { spool } = open();
    fill(spool, 0, 8); // segments 1, 2, 3
    spool.close();
    unlinkSync(join(dir.path, segs()[0]!));
    writeFileSync(join(dir.path, "progress.json"), at(1, 2));
    const { spool: again, lines } = open();
    expect(lines.join("\n")).not.toContain("progress.json");
    expect(again.progress.seg).toBe(2);
    expect(tok(again.next()!.record)).toBe(3);
  });

  test("a segment deleted by hand under a half-sent record forgets its Queen segment; under a whole one it is kept", () => {
    for (const chunk of [1, 0]) {
      dir.cleanup();
      dir = tempDir("gbh-spool-fwd-");
      const { spool } = open();
      fill(spool, 0, 6);
      spool.saveProgress({ chunk, queenSeg: "q-7", seq: 3 }, false);
      unlinkSync(join(dir.path, segs()[0]!));
      expect(tok(spool.next()!.record)).toBe(3);
      expect(spool.progress.queenSeg).toBe(chunk > 0 ? null : "q-7");
    }
  });
});
