/**
 * What the spool promises about its position, its cap and its frame bound, each checked on its
 * own: the production call pattern (`advance(..., false)`) apart from the durable one, the cap
 * at its exact byte, and the Queen segment given up when a half-sent record is lost.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { TelemetryRecord } from "../../src/telemetry/record.ts";
import { MAX_FRAME_BODY, Spool } from "../../src/telemetry/spool.ts";
import { encodeCbor } from "../../src/util/cbor.ts";
import { memoryLogger, tempDir } from "../helpers.ts";
import { accepted, spoolFolder } from "./helpers.ts";

const dir = spoolFolder("gbh-spool-promise-");
const { open, segments } = dir;
const tokens = (s: Spool) => [...s.records()].map((r) => (r as TelemetryRecord).token_count - 100);
/** One frame on disk: the 8-byte header and the record's CBOR. */
const frameBytes = (r: unknown) => 8 + encodeCbor(r).length;
const QUEEN = { queenSeg: "seg-000004", seq: 9, queenBytes: 300 };

describe("advance(): durable and not", () => {
  test("a durable advance is on disk when it returns: a reopened spool resumes after the record", () => {
    const { spool } = open();
    spool.append([accepted(0), accepted(1), accepted(2)]);
    spool.advance(QUEEN);
    spool.close(); // no saveProgress: only the advance itself may have written progress.json
    const again = open().spool;
    expect(again.progress).toMatchObject({ index: 1, chunk: 0, ...QUEEN });
    expect((again.next()!.record as TelemetryRecord).token_count).toBe(101);
  });

  test("advance(..., false), as the forwarder calls it: moves on in memory only; after a restart the record is sent again", () => {
    const { spool } = open();
    spool.append([accepted(0), accepted(1), accepted(2)]);
    spool.advance(QUEEN, false);
    expect(spool.progress).toMatchObject({ index: 1, ...QUEEN });
    expect((spool.next()!.record as TelemetryRecord).token_count).toBe(101);
    spool.close();
    const again = open().spool;
    // Nothing is lost: the record is resent (the Queen drops seqs it has).
    expect(again.progress).toMatchObject({ index: 0, queenSeg: null });
    expect((again.next()!.record as TelemetryRecord).token_count).toBe(100);
  });
});

describe("the size cap", () => {
  test("a spool of exactly its cap keeps every segment; one byte over drops the oldest", () => {
    const r = accepted(1);
    const frame = frameBytes(r);
    // segmentBytes 1: every append opens a segment of its own.
    const { spool, lines } = open({ segmentBytes: 1, capBytes: 2 * frame });
    spool.append([r]);
    spool.append([r]);
    expect(spool.stats()).toEqual({ records: 2, bytes: 2 * frame, segments: 2 });
    expect(spool.dropped).toBe(0);
    expect(lines.join("\n")).not.toContain("cap");
    spool.append([r]);
    expect(spool.stats()).toEqual({ records: 2, bytes: 2 * frame, segments: 2 });
    expect(spool.dropped).toBe(1);
    expect(lines.join("\n")).toContain(`over its ${2 * frame}-byte cap; dropped seg-00000001.spool with 1 unforwarded records`);

    const tight = tempDir("gbh-spool-cap-");
    try {
      const small = Spool.open({ dir: tight.path, log: memoryLogger().log, sync: false, segmentBytes: 1, capBytes: 2 * frame - 1 });
      small.append([r]);
      small.append([r]);
      expect(small.stats().segments).toBe(1);
      expect(small.dropped).toBe(1);
    } finally {
      tight.cleanup();
    }
  });

  test("a half-sent record dropped by the cap gives up its Queen segment (its chunks there are incomplete)", () => {
    const r = accepted(1);
    const { spool } = open({ segmentBytes: 1, capBytes: 2 * frameBytes(r) });
    spool.append([r]);
    spool.append([r]);
    spool.saveProgress({ ...QUEEN, chunk: 2 }, false); // two chunks of the first record reached the Queen
    spool.append([r]);
    expect(segments()).toEqual(["seg-00000002.spool", "seg-00000003.spool"]);
    expect(spool.progress).toMatchObject({ seg: 2, index: 0, chunk: 0, queenSeg: null });
  });

  test("a record not yet started keeps the Queen segment when the cap drops its segment", () => {
    const r = accepted(1);
    const { spool } = open({ segmentBytes: 1, capBytes: 2 * frameBytes(r) });
    spool.append([r]);
    spool.append([r]);
    spool.saveProgress({ ...QUEEN, chunk: 0 }, false);
    spool.append([r]);
    expect(spool.progress).toMatchObject({ seg: 2, index: 0, chunk: 0, queenSeg: QUEEN.queenSeg });
  });

  test("a half-sent record whose segment is deleted by hand gives up its Queen segment too", () => {
    const r = accepted(1);
    const { spool, lines } = open({ segmentBytes: 1 });
    spool.append([r]);
    spool.append([r]);
    spool.saveProgress({ ...QUEEN, chunk: 1 }, false);
    unlinkSync(join(dir.path, "seg-00000001.spool"));
    expect(spool.next()).not.toBeNull();
    expect(spool.progress).toMatchObject({ seg: 2, index: 0, chunk: 0, queenSeg: null });
    expect(lines.join("\n")).toContain("seg-00000001.spool was deleted from under the spool: 1 unforwarded records lost");
  });
});

describe("the frame bound", () => {
  /** A record whose CBOR is `bytes` long: a one-key map holding a string. */
  const overhead = encodeCbor({ s: "x".repeat(1000) }).length - 1000;
  const sized = (bytes: number) => {
    const r = { s: "x".repeat(bytes - overhead) };
    expect(encodeCbor(r).length).toBe(bytes);
    return r;
  };

  test("a record over the bound is refused before anything is written; one at the bound survives a restart", () => {
    const { spool } = open();
    expect(() => spool.append([accepted(0), sized(MAX_FRAME_BODY + 1)])).toThrow(
      `Cannot spool a record of ${MAX_FRAME_BODY + 1} bytes of CBOR: the bound is ${MAX_FRAME_BODY}`,
    );
    expect(spool.stats().records).toBe(0);
    spool.append([sized(MAX_FRAME_BODY)]);
    spool.close();
    const again = open().spool;
    expect([...again.records()]).toEqual([sized(MAX_FRAME_BODY)]);
  });

  test("a scan does not believe a frame longer than the bound, even with a matching CRC", () => {
    const body = encodeCbor(sized(MAX_FRAME_BODY + 1));
    const big = new Uint8Array(8 + body.length);
    new DataView(big.buffer).setUint32(0, body.length, true);
    new DataView(big.buffer).setUint32(4, crc32(body), true);
    big.set(body, 8);
    const { spool } = open();
    spool.append([accepted(5)]);
    spool.close();
    const path = join(dir.path, segments()[0]!);
    writeFileSync(path, Buffer.concat([big, readFileSync(path)]));
    const { spool: again, lines } = open();
    expect(tokens(again)).toEqual([5]);
    expect(again.damagedBytes).toBe(big.length);
    expect(lines.join("\n")).toContain("is damaged");
  });
});
