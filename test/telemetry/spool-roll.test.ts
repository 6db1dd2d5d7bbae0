/**
 * A forwarder that has caught up keeps seeing records when the spool moves to a new segment, at
 * every boundary: caught up exactly at the end, one record short, an empty segment, after a
 * restart, the segment dropped by the cap, a record half sent. Plus the spool's smaller
 * promises: a durable advance persists, the cap is "over", not "at", and the frame bound holds
 * both ways.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { acceptRecord, type TelemetryRecord } from "../../src/telemetry/record.ts";
import { MAX_FRAME_BODY, Spool } from "../../src/telemetry/spool.ts";
import { encodeCbor } from "../../src/util/cbor.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";
import { record } from "./helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-roll-")));
afterEach(() => dir.cleanup());

const open = (o: Partial<Parameters<typeof Spool.open>[0]> = {}) => {
  const m = memoryLogger();
  return { spool: Spool.open({ dir: dir.path, log: m.log, segmentBytes: 1, ...o }), lines: m.lines };
};
const accepted = (i: number) => {
  const r = acceptRecord(record(i), { model_id: "m" });
  if (!r.ok) throw new Error(r.message);
  return r.record;
};
const Q = { queenSeg: "q1", seq: 1, queenBytes: 0 };
/** What a forwarder sees from the current position on: it sends each record and advances. */
function drain(spool: Spool, max = 1000): number[] {
  const seen: number[] = [];
  for (let n = spool.next(); n !== null && seen.length < max; n = spool.next()) {
    seen.push((n.record as TelemetryRecord).token_count);
    spool.advance(Q, false);
  }
  return seen;
}
const segments = () => readdirSync(dir.path).filter((f) => f.endsWith(".spool")).sort();

describe("a caught-up forwarder follows the spool into a new segment", () => {
  test("caught up exactly at the end of a full segment", () => {
    const { spool } = open(); // every append fills its segment: the next one rolls
    spool.append([accepted(0)]);
    expect(drain(spool)).toEqual([100]);
    for (let i = 1; i <= 5; i++) {
      spool.append([accepted(i)]);
      expect(drain(spool)).toEqual([100 + i]);
    }
    expect(spool.stats().records).toBe(0);
    expect(segments().length).toBe(1); // forwarded segments are deleted as the position moves on
  });

  test("one record short of the end when the segment rolls", () => {
    const first = open({ segmentBytes: 10_000 });
    first.spool.append([accepted(0), accepted(1), accepted(2)]);
    expect(drain(first.spool, 2)).toEqual([100, 101]);
    first.spool.saveProgress({});
    first.spool.close();
    const { spool } = open({ segmentBytes: 1 }); // the same segment is now full
    spool.append([accepted(3)]); // rolls: the waiting record is in the old segment
    spool.append([accepted(4)]);
    expect(drain(spool)).toEqual([102, 103, 104]);
    spool.append([accepted(5)]);
    expect(drain(spool)).toEqual([105]);
  });

  test("an empty newest segment (a write that failed after the roll) is passed over", () => {
    const first = open({ segmentBytes: 10_000 });
    first.spool.append([accepted(0)]);
    expect(drain(first.spool)).toEqual([100]);
    first.spool.saveProgress({});
    first.spool.close();
    writeFileSync(join(dir.path, "seg-00000002.spool"), ""); // the file of a roll whose write failed
    const { spool } = open({ segmentBytes: 10_000 });
    spool.append([accepted(1)]);
    spool.append([accepted(2)]);
    expect(drain(spool)).toEqual([101, 102]);
  });

  test("after a restart while caught up at a segment's end", () => {
    const first = open();
    first.spool.append([accepted(0)]);
    expect(drain(first.spool)).toEqual([100]);
    first.spool.saveProgress({});
    first.spool.close();
    const { spool } = open();
    expect(spool.next()).toBeNull();
    spool.append([accepted(1)]);
    expect(drain(spool)).toEqual([101]);
  });

  test("while the cap drops segments and the forwarder is caught up", () => {
    const probe = open();
    probe.spool.append([accepted(0)]);
    const one = probe.spool.stats().bytes;
    probe.spool.close();
    dir.cleanup();
    dir = tempDir("gbh-roll-");
    const { spool } = open({ capBytes: one * 2 });
    spool.append([accepted(0)]);
    expect(drain(spool)).toEqual([100]);
    spool.append([accepted(1)]);
    spool.append([accepted(2)]); // over the cap: the oldest (forwarded or not) goes
    spool.append([accepted(3)]);
    const seen = drain(spool);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen).toEqual([101, 102, 103].slice(-seen.length)); // the newest, in order
    expect(spool.dropped + seen.length).toBe(3); // everything appended after catching up: forwarded or counted
    spool.append([accepted(4)]);
    expect(drain(spool)).toEqual([104]);
  });

  test("a record half sent when the segment rolls continues, then the next segment follows", () => {
    const { spool } = open();
    spool.append([accepted(0)]);
    spool.saveProgress({ chunk: 2, seq: 3, queenSeg: "q1" }, false);
    spool.append([accepted(1)]);
    const n = spool.next();
    expect((n!.record as TelemetryRecord).token_count).toBe(100);
    expect(n!.progress.chunk).toBe(2);
    spool.advance({ queenSeg: "q1", seq: 5, queenBytes: 300 }, false);
    expect(spool.progress.chunk).toBe(0);
    expect(drain(spool)).toEqual([101]);
  });
});

describe("spool promises", () => {
  test("a durable advance is on disk by itself", () => {
    const first = open({ segmentBytes: 10_000 });
    first.spool.append([accepted(0), accepted(1), accepted(2)]);
    first.spool.advance({ queenSeg: "q7", seq: 4, queenBytes: 99 }, true);
    first.spool.close(); // no saveProgress: the advance alone must have persisted
    const { spool } = open({ segmentBytes: 10_000 });
    expect(spool.progress).toMatchObject({ index: 1, queenSeg: "q7", seq: 4, queenBytes: 99 });
    expect(drain(spool)).toEqual([101, 102]);
  });

  test("dropping the segment of a half-sent record forgets its Queen segment; a whole one keeps it", () => {
    const probe = open();
    probe.spool.append([accepted(0)]);
    const one = probe.spool.stats().bytes;
    probe.spool.close();
    for (const chunk of [2, 0]) {
      dir.cleanup();
      dir = tempDir("gbh-roll-");
      const { spool, lines } = open({ capBytes: one * 2 });
      spool.append([accepted(0)]);
      spool.saveProgress({ chunk, seq: 3, queenSeg: "q1" }, false);
      spool.append([accepted(1)]);
      spool.append([accepted(2)]);
      expect(lines.some((l) => l.includes("dropped seg-00000001.spool"))).toBe(true);
      expect(spool.progress.queenSeg).toBe(chunk > 0 ? null : "q1");
      spool.close();
    }
  });

  test("the size cap drops only past it: a spool exactly at its cap keeps everything", () => {
    const probe = open();
    probe.spool.append([accepted(0)]);
    probe.spool.append([accepted(1)]);
    const two = probe.spool.stats().bytes;
    probe.spool.close();
    for (const [cap, dropped] of [[two, 0], [two - 1, 1]] as const) {
      dir.cleanup();
      dir = tempDir("gbh-roll-");
      const { spool } = open({ capBytes: cap });
      spool.append([accepted(0)]);
      spool.append([accepted(1)]);
      expect(spool.dropped).toBe(dropped);
      expect(spool.stats().records).toBe(2 - dropped);
      spool.close();
    }
  });

  test("a frame past the bound is not believed at start-up, one at the bound is, and append refuses what a scan would not believe", () => {
    const frame = (body: Uint8Array) => {
      const f = new Uint8Array(8 + body.length);
      const v = new DataView(f.buffer);
      v.setUint32(0, body.length, true);
      v.setUint32(4, crc32(body), true);
      f.set(body, 8);
      return f;
    };
    // A CBOR map (major type 5) holding one text string, padded to an exact size.
    const sized = (n: number) => {
      for (let pad = n - 16; pad < n; pad++) {
        const b = encodeCbor({ p: "x".repeat(pad) });
        if (b.length === n) return b;
      }
      throw new Error(`no CBOR of ${n} bytes`);
    };
    writeFileSync(join(dir.path, "seg-00000001.spool"), frame(sized(MAX_FRAME_BODY)));
    writeFileSync(join(dir.path, "seg-00000002.spool"), frame(sized(MAX_FRAME_BODY + 1)));
    const { spool, lines } = open({ segmentBytes: 1 << 20 });
    expect(spool.stats().records).toBe(1);
    expect(lines.some((l) => l.includes("seg-00000002.spool has a torn tail"))).toBe(true);
    expect(() => spool.append([{ p: "x".repeat(MAX_FRAME_BODY) }])).toThrow(/bound is 16384/);
    expect(spool.stats().records).toBe(1);
  });
});

describe("the age of the oldest record not yet forwarded", () => {
  test("counts from its arrival on the spool's clock, and is null once all is forwarded", () => {
    const clock = new FakeClock();
    const { spool } = open({ clock, segmentBytes: 10_000 });
    expect(spool.oldestWaitingMs()).toBeNull();
    spool.append([accepted(0)]);
    clock.advance(5000);
    spool.append([accepted(1)]);
    clock.advance(3000);
    expect(spool.oldestWaitingMs()).toBe(8000);
    spool.advance(Q, false);
    expect(spool.oldestWaitingMs()).toBe(3000);
    spool.advance(Q, false);
    expect(spool.oldestWaitingMs()).toBeNull();
  });
});

describe("a segment deleted from under the spool", () => {
  test("is counted as lost, forwarding goes on with the next one, and appends go to a file that exists", () => {
    const { spool, lines } = open();
    spool.append([accepted(0)]);
    spool.append([accepted(1)]);
    spool.append([accepted(2)]);
    rmSync(join(dir.path, "seg-00000001.spool"));
    expect(drain(spool, 1)).toEqual([101]); // not an endless ENOENT at every step
    expect(spool.dropped).toBe(1);
    expect(lines.some((l) => l.includes("seg-00000001.spool was deleted from under the spool: 1 unforwarded records lost"))).toBe(true);
    rmSync(join(dir.path, "seg-00000003.spool")); // the one being appended to
    spool.append([accepted(3)]);
    expect(spool.dropped).toBe(2);
    expect(drain(spool)).toEqual([103]);
    spool.saveProgress({});
    spool.close();
    const again = open();
    // The record appended after the deletion is in a file that exists (kept: it is the newest).
    expect([...again.spool.records()].map((r) => (r as TelemetryRecord).token_count)).toEqual([103]);
    expect(again.spool.next()).toBeNull();
    again.spool.close();
  });
});
