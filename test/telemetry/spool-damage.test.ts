import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { acceptRecord, type TelemetryRecord } from "../../src/telemetry/record.ts";
import { Spool } from "../../src/telemetry/spool.ts";
import { memoryLogger, tempDir } from "../helpers.ts";
import { record } from "./helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-spool-dmg-")));
afterEach(() => dir.cleanup());
const open = () => {
  const m = memoryLogger();
  return { spool: Spool.open({ dir: dir.path, log: m.log, sync: false }), lines: m.lines };
};
const accepted = (i: number) => {
  const r = acceptRecord(record(i), { model_id: "m" });
  if (!r.ok) throw new Error(r.message);
  return r.record;
};
const tokens = (s: Spool) => [...s.records()].map((r) => (r as TelemetryRecord).token_count - 100);
const segPath = () => join(dir.path, readdirSync(dir.path).find((f) => f.endsWith(".spool"))!);

describe("a flipped byte mid-segment is damage, not a torn tail", () => {
  test("the damaged frame is skipped and counted, every record after it is kept, and the file is not cut", () => {
    const { spool } = open();
    spool.append(Array.from({ length: 200 }, (_, i) => accepted(i)));
    spool.close();
    const path = segPath();
    const data = readFileSync(path);
    const size = data.length;
    data[Math.floor(size / 10)]! ^= 0xff; // one flipped byte 10% in
    writeFileSync(path, data);
    const { spool: again, lines } = open();
    const kept = tokens(again);
    expect(kept.length).toBe(199);
    expect(kept.at(-1)).toBe(199);
    expect(again.dropped).toBe(1);
    expect(again.damagedBytes).toBeGreaterThan(0);
    expect(statSync(path).size).toBe(size);
    expect(lines.join("")).toContain("is damaged");
    expect(lines.join("")).not.toContain("crash mid-write");
    // Appends after the damage still land and read back.
    again.append([accepted(500)]);
    expect(tokens(again).at(-1)).toBe(500);
  });

  test("a torn tail is still cut off", () => {
    const { spool } = open();
    spool.append([accepted(0), accepted(1)]);
    spool.close();
    writeFileSync(segPath(), Buffer.concat([readFileSync(segPath()), Buffer.from([40, 0, 0, 0, 1, 2])]));
    const { spool: again, lines } = open();
    expect(tokens(again)).toEqual([0, 1]);
    expect(lines.join("")).toContain("torn tail");
  });
});

describe("progress.json and odd files in the spool lose no record", () => {
  const damaged = [
    ["null", "null"],
    ["a wrong shape", '{"seg":"x"}'],
    ["a negative index", '{"seg":1,"index":-5,"chunk":0,"queenSeg":null,"seq":1,"queenBytes":0}'],
    ["a position past every segment", '{"seg":99999,"index":0,"chunk":0,"queenSeg":null,"seq":1,"queenBytes":0}'],
    ["an index past the segment's records", '{"seg":1,"index":9999,"chunk":0,"queenSeg":null,"seq":1,"queenBytes":0}'],
  ];
  for (const [what, text] of damaged) {
    test(`${what}: nothing is skipped or deleted, and it says so`, () => {
      const { spool } = open();
      spool.append([accepted(0), accepted(1), accepted(2)]);
      spool.close();
      writeFileSync(join(dir.path, "progress.json"), text!);
      const { spool: again, lines } = open();
      expect(tokens(again)).toEqual([0, 1, 2]);
      expect(again.next()?.record).toMatchObject({ token_count: 100 });
      expect(again.stats().records).toBe(3);
      expect(lines.join("")).toContain("progress.json");
    });
  }

  test("a segment that is a directory is skipped with a warning, not a crash", () => {
    mkdirSync(join(dir.path, "seg-00000001.spool"), { recursive: true });
    const { spool, lines } = open();
    expect(lines.join("")).toContain("not a regular file");
    spool.append([accepted(7)]);
    expect(tokens(spool)).toEqual([7]);
  });

  test("a FIFO as a segment does not block start-up", () => {
    expect(spawnSync("mkfifo", [join(dir.path, "seg-00000001.spool")]).status).toBe(0);
    const { spool, lines } = open();
    expect(lines.join("")).toContain("not a regular file");
    spool.append([accepted(7)]);
    expect(tokens(spool)).toEqual([7]);
  });
});

describe("export while a running bridge removes segments", () => {
  test("a read-only spool passes over a segment deleted after it was opened", () => {
    const m = memoryLogger();
    const writer = Spool.open({ dir: dir.path, log: m.log, sync: false, segmentBytes: 200 });
    writer.append([accepted(0), accepted(1)]);
    writer.append([accepted(2), accepted(3)]);
    writer.append([accepted(4)]);
    const reader = Spool.open({ dir: dir.path, log: m.log, readOnly: true });
    // The bridge forwards the first segment's records and deletes it while export reads.
    for (let i = 0; i < 2; i++) writer.advance({ queenSeg: "seg-000001", seq: 1, queenBytes: 0 });
    const got = [...reader.records()].map((r) => (r as TelemetryRecord).token_count - 100);
    expect(got).toEqual([2, 3, 4]);
  });
});
