/**
 * Where records go and where forwarding resumes at the spool's edges: a cap smaller than one
 * segment, a segment exactly at its size, the newest segment deleted by hand while an older one
 * has room, a segment deleted after a restart, and a saved position past segments still on disk
 * (their deletion lost, or the folder restored from a copy).
 */
import { describe, expect, test } from "bun:test";
import { rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Progress, Spool } from "../../src/telemetry/spool.ts";
import { accepted, spoolFolder, tokenOf } from "./helpers.ts";

const dir = spoolFolder("gbh-spool-pos-");
const { open, segment, segments } = dir;
const Q = { queenSeg: "q1", seq: 1, queenBytes: 0 };
const token = tokenOf;
/** What a forwarder sees from the current position on: it sends each record and advances. */
function drain(spool: Spool): number[] {
  const seen: number[] = [];
  for (let n = spool.next(); n !== null; n = spool.next()) {
    seen.push(token(n.record));
    spool.advance(Q, false);
  }
  return seen;
}
const saveProgressFile = (p: Progress) => writeFileSync(join(dir.path, "progress.json"), JSON.stringify(p));

describe("the size cap and the segment size", () => {
  test("a cap smaller than one segment never drops the segment being written", () => {
    const { spool, lines } = open({ capBytes: 1, segmentBytes: 1 << 20 });
    for (let i = 0; i < 3; i++) spool.append([accepted(i)]);
    expect(spool.dropped).toBe(0);
    expect(lines).toEqual([]);
    expect([...spool.records()].map(token)).toEqual([100, 101, 102]);
    expect(drain(spool)).toEqual([100, 101, 102]);
    spool.close();
  });

  test("a segment exactly at its size rolls: no segment file grows past segmentBytes, restart or not", () => {
    const probe = open();
    probe.spool.append([accepted(0)]);
    const frame = probe.spool.stats().bytes; // one record's frame
    probe.spool.close();
    dir.reset();
    const first = open({ segmentBytes: frame });
    first.spool.append([accepted(0)]);
    first.spool.append([accepted(0)]); // the first segment is exactly full: a new one
    first.spool.close();
    const again = open({ segmentBytes: frame });
    again.spool.append([accepted(0)]); // after a restart too
    again.spool.close();
    expect(segments()).toEqual(["seg-00000001.spool", "seg-00000002.spool", "seg-00000003.spool"]);
    for (const f of segments()) expect(statSync(join(dir.path, f)).size).toBe(frame);
  });
});

describe("the newest segment deleted from under the spool", () => {
  /**
   * Segments 1 (two records, the forwarder halfway through the second's chunks), 2, 3 and 4 of a
   * spool that rolled at every append, reopened with room to spare: the next append goes to 4.
   */
  function fourSegments() {
    const first = open({ segmentBytes: 1 });
    first.spool.append([accepted(0), accepted(1)]);
    for (let i = 2; i <= 4; i++) first.spool.append([accepted(i)]);
    expect(token(first.spool.next()!.record)).toBe(100);
    first.spool.advance(Q, false);
    first.spool.saveProgress({ chunk: 2, queenSeg: "q1", seq: 3, queenBytes: 40 });
    first.spool.close();
    return open({ segmentBytes: 1 << 20 });
  }

  test("the next record goes after the older ones, in order, readable; only the deleted file's records are lost", () => {
    const { spool, lines } = fourSegments();
    spool.append([accepted(5)]); // into segment 4, which has room now
    rmSync(segment(4));
    spool.append([accepted(6)]); // segment 4 is gone: segment 3 has room
    expect(spool.dropped).toBe(2); // records 4 and 5, neither forwarded
    expect(
      lines.some((l) => l.includes("seg-00000004.spool was deleted from under the spool: 2 unforwarded records lost (2 dropped so far)")),
    )
      .toBe(true);
    expect([...spool.records()].map(token)).toEqual([100, 101, 102, 103, 106]); // 100: forwarded, its segment not done
    // The record half sent (in segment 1) goes on in the same Queen segment: it lost nothing.
    expect(spool.progress).toMatchObject({ seg: 1, index: 1, chunk: 2, queenSeg: "q1", seq: 3 });
    expect(drain(spool)).toEqual([101, 102, 103, 106]);
    spool.close();
  });

  test("after a restart (nothing open for appending), the only segment deleted is counted lost and the spool goes on", () => {
    const first = open();
    first.spool.append([accepted(0), accepted(1)]);
    first.spool.saveProgress({ queenSeg: "q1", seq: 2 });
    first.spool.close();
    const { spool, lines } = open();
    rmSync(segment(1));
    expect(spool.next()).toBeNull();
    expect(spool.dropped).toBe(2);
    expect(lines.some((l) => l.includes("seg-00000001.spool was deleted from under the spool: 2 unforwarded records lost"))).toBe(true);
    expect(spool.progress.queenSeg).toBe("q1"); // no record was half sent
    spool.append([accepted(2)]);
    expect(drain(spool)).toEqual([102]);
    spool.close();
  });
});

describe("a saved position past segments still on disk", () => {
  /** Segments 1 and 2 of one record each and 3 of `last` records, as a spool that rolled writes them. */
  function threeSegments(last: number) {
    const first = open({ segmentBytes: 1 });
    first.spool.append([accepted(0)]);
    first.spool.append([accepted(1)]);
    first.spool.append(Array.from({ length: last }, (_, i) => accepted(2 + i)));
    first.spool.close();
  }

  test("resumes at the saved record and deletes the segments before it, resending nothing", () => {
    threeSegments(2);
    saveProgressFile({ seg: 3, index: 1, chunk: 0, queenSeg: "q1", seq: 5, queenBytes: 10 });
    const { spool, lines } = open();
    expect(lines).toEqual([]);
    expect(segments()).toEqual(["seg-00000003.spool"]);
    expect(spool.progress).toMatchObject({ seg: 3, index: 1, queenSeg: "q1", seq: 5 });
    expect(drain(spool)).toEqual([103]);
    spool.close();
  });

  test("just past the newest: every segment on disk was forwarded, and the next record is forwarded", () => {
    threeSegments(1);
    saveProgressFile({ seg: 4, index: 0, chunk: 0, queenSeg: "q1", seq: 5, queenBytes: 10 });
    const { spool, lines } = open({ segmentBytes: 1 << 20 });
    expect(lines).toEqual([]);
    expect(spool.next()).toBeNull();
    expect(spool.stats().records).toBe(0);
    expect(segments()).toEqual([]);
    // Not appended to segment 3 (behind the position, so never forwarded): a new segment 4.
    spool.append([accepted(9)]);
    expect(segments()).toEqual(["seg-00000004.spool"]);
    expect(drain(spool)).toEqual([109]);
    spool.close();
  });

  test("a folder holding only progress.json (every segment deleted by hand) opens and keeps its Queen segment", () => {
    saveProgressFile({ seg: 1, index: 0, chunk: 0, queenSeg: "q1", seq: 7, queenBytes: 100 });
    expect([...open({ readOnly: true }).spool.records()]).toEqual([]);
    const { spool, lines } = open();
    expect(lines).toEqual([]);
    expect(spool.progress).toMatchObject({ seg: 1, index: 0, queenSeg: "q1", seq: 7 });
    spool.append([accepted(0)]);
    expect(drain(spool)).toEqual([100]);
    spool.close();
  });
});
