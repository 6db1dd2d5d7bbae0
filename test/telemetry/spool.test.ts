import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chunkRecord, envelope } from "../../src/telemetry/forward.ts";
import { acceptRecord, encodeRecord, type TelemetryRecord } from "../../src/telemetry/record.ts";
import { Spool } from "../../src/telemetry/spool.ts";
import { memoryLogger, tempDir } from "../helpers.ts";
import { record } from "./helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-spool-")));
afterEach(() => dir.cleanup());
const open = (o: Partial<Parameters<typeof Spool.open>[0]> = {}) => {
  const m = memoryLogger();
  return { spool: Spool.open({ dir: dir.path, log: m.log, ...o }), lines: m.lines };
};
const accepted = (i: number) => {
  const r = acceptRecord(record(i), { model_id: "m" });
  if (!r.ok) throw new Error(r.message);
  return r.record;
};

describe("chunkRecord()", () => {
  test("cuts a record into envelopes that each fit one 128-byte ECHO and reassemble exactly", () => {
    const text = encodeRecord(accepted(3)) + "\n";
    const chunks = chunkRecord(text, 1);
    expect(chunks.join("")).toBe(text);
    chunks.forEach((c, i) => expect(new TextEncoder().encode(envelope(1 + i, c)).length).toBeLessThanOrEqual(128));
    expect(chunkRecord(text, 1)).toEqual(chunks); // deterministic
    expect(JSON.parse(envelope(7, 'a"b\n'))).toEqual({
      schema: "cohsh-telemetry-push/v1",
      seq: 7,
      mime: "application/x-ndjson",
      payload: 'a"b\n',
    });
  });
});

describe("Spool", () => {
  test("appends, reads in order, advances and deletes consumed segments", () => {
    const { spool } = open({ segmentBytes: 300 });
    spool.append([accepted(0), accepted(1)]);
    spool.append([accepted(2), accepted(3), accepted(4)]);
    expect(readdirSync(dir.path).filter((f) => f.endsWith(".spool")).length).toBeGreaterThan(1);
    const seen: number[] = [];
    for (let n = spool.next(); n !== null; n = spool.next()) {
      seen.push((n.record as TelemetryRecord).token_count);
      spool.advance({ queenSeg: "seg-000001", seq: 1, queenBytes: 0 });
    }
    expect(seen).toEqual([100, 101, 102, 103, 104]);
    expect(spool.stats().records).toBe(0);
    expect(readdirSync(dir.path).filter((f) => f.endsWith(".spool")).length).toBe(1); // only the one being written
    expect(spool.syncs).toBeGreaterThanOrEqual(2);
  });

  test("keeps its forwarding position, down to the chunk, across a reopen", () => {
    const { spool } = open();
    spool.append([accepted(0), accepted(1), accepted(2)]);
    spool.advance({ queenSeg: "seg-000004", seq: 9, queenBytes: 300 });
    spool.saveProgress({ chunk: 2, seq: 11 });
    spool.close();
    const again = open().spool;
    expect(again.progress).toMatchObject({ index: 1, chunk: 2, seq: 11, queenSeg: "seg-000004", queenBytes: 300 });
    again.saveProgress({ chunk: 5, seq: 14 }, false); // in memory only
    again.close();
    expect(open().spool.progress).toMatchObject({ chunk: 2, seq: 11 });
    expect((again.next()!.record as TelemetryRecord).token_count).toBe(101);
  });

  test("cuts a torn tail at start-up, with a warning, and keeps every whole record", () => {
    const { spool } = open();
    spool.append([accepted(0), accepted(1)]);
    spool.close();
    const seg = join(dir.path, readdirSync(dir.path).find((f) => f.endsWith(".spool"))!);
    const good = statSync(seg).size;
    appendFileSync(seg, new Uint8Array([200, 0, 0, 0, 1, 2, 3])); // a frame header and a few bytes: a crash mid-write
    const { spool: reopened, lines } = open();
    expect(lines.some((l) => l.includes("torn tail of 7 bytes after 2 good records"))).toBe(true);
    expect(statSync(seg).size).toBe(good);
    expect(reopened.stats().records).toBe(2);
    reopened.append([accepted(2)]);
    expect([...reopened.records()].map((r) => (r as TelemetryRecord).token_count)).toEqual([100, 101, 102]);
  });

  test("a record whose CRC does not match, mid-file, is skipped and counted; the records around it are kept", () => {
    const { spool } = open();
    spool.append([accepted(0), accepted(1), accepted(2)]);
    spool.close();
    const seg = join(dir.path, readdirSync(dir.path).find((f) => f.endsWith(".spool"))!);
    const bytes = readFileSync(seg);
    const first = 8 + bytes.readUInt32LE(0);
    const second = 8 + bytes.readUInt32LE(first);
    bytes[first + 4] = bytes[first + 4]! ^ 0xff; // the second frame's stored CRC: its body and length are intact
    writeFileSync(seg, bytes);
    const { spool: reopened, lines } = open();
    expect([...reopened.records()].map((r) => (r as TelemetryRecord).token_count)).toEqual([100, 102]);
    expect(reopened.dropped).toBe(1);
    expect(reopened.damagedBytes).toBe(second);
    expect(lines.some((l) => l.includes("skipped " + second + " bytes in 1 place(s) that fail their CRC or length"))).toBe(true);
    expect(lines.some((l) => l.includes("torn tail"))).toBe(false);
    expect(statSync(seg).size).toBe(bytes.length); // damage is skipped, never cut off
  });

  test("past its cap, drops the oldest segment with a counted warning", () => {
    const { spool, lines } = open({ segmentBytes: 500, capBytes: 1500 });
    for (let i = 0; i < 20; i++) spool.append([accepted(i)]);
    expect(spool.stats().bytes).toBeLessThanOrEqual(1500);
    expect(spool.dropped).toBeGreaterThan(0);
    expect(lines.filter((l) => l.includes("over its 1500-byte cap")).length).toBeGreaterThan(0);
    const left = [...spool.records()].map((r) => (r as TelemetryRecord).token_count);
    expect(left.at(-1)).toBe(119); // the newest survive
    expect(left.length + spool.dropped).toBe(20);
  });
});
