/**
 * What a start-up scan makes of damage that is not a flipped byte: a zero-filled region (a
 * file system that extends a file before its data lands, then crashes), a last frame whose
 * length was damaged to reach past the file, a torn tail holding bytes that look like a frame
 * start; plus an empty segment file appended to, and a progress.json that is not an object.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FakeClock } from "../helpers.ts";
import { accepted, spoolFolder, tokenOf } from "./helpers.ts";

const dir = spoolFolder("gbh-spool-scan-");
const { open } = dir;
const token = tokenOf;
const SEG = () => join(dir.path, "seg-00000001.spool");
/** The bytes of a segment holding `records`, as the spool writes them. */
function framesOf(...records: number[]): Uint8Array {
  const { spool } = open();
  spool.append(records.map(accepted));
  spool.close();
  const data = readFileSync(SEG());
  dir.reset();
  return data;
}
const cat = (...parts: Uint8Array[]) => Buffer.concat(parts);

describe("damage a scan must not take for records", () => {
  test("a zero-filled region mid-segment is damage, and a zero-filled tail is a torn tail: neither is read as empty records", () => {
    const one = framesOf(0);
    const two = framesOf(1);
    writeFileSync(SEG(), cat(one, new Uint8Array(32), two));
    const mid = open();
    expect([...mid.spool.records()].map(token)).toEqual([100, 101]);
    expect(mid.spool.damagedBytes).toBe(32);
    expect(mid.lines.some((l) => l.includes("skipped 32 bytes in 1 place(s)"))).toBe(true);
    mid.spool.close();

    writeFileSync(SEG(), cat(one, new Uint8Array(4096)));
    const tail = open();
    expect([...tail.spool.records()].map(token)).toEqual([100]);
    expect(tail.spool.dropped).toBe(0);
    expect(tail.lines.some((l) => l.includes("has a torn tail of 4096 bytes after 1 good records"))).toBe(true);
    expect(statSync(SEG()).size).toBe(one.length);
    tail.spool.close();
  });

  test("a last frame whose length reaches past the end of the file is a torn tail, though its CRC matches what is there", () => {
    const one = framesOf(0);
    const second = Buffer.from(framesOf(1));
    second.writeUInt32LE(second.readUInt32LE(0) + 5, 0); // five bytes more than were written
    writeFileSync(SEG(), cat(one, second));
    const { spool, lines } = open();
    expect([...spool.records()].map(token)).toEqual([100]);
    expect(lines.some((l) => l.includes(`has a torn tail of ${second.length} bytes after 1 good records`))).toBe(true);
    expect(statSync(SEG()).size).toBe(one.length);
    spool.append([accepted(2)]);
    expect([...spool.records()].map(token)).toEqual([100, 102]);
    spool.close();
  });

  test("a damaged CRC in the very first frame is damage: skipped and counted, the records after it kept", () => {
    const data = Buffer.from(framesOf(0, 1, 2));
    // The stored CRC's high byte, damaged to a value whose top bits read as a CBOR map (the
    // quick filter's test), so that a scan looking before the first byte would trip on it.
    data[7] = data[7]! >> 5 === 5 ? data[7]! ^ 1 : (data[7]! & 0x1f) | 0xa0;
    writeFileSync(SEG(), data);
    const { spool, lines } = open();
    expect([...spool.records()].map(token)).toEqual([101, 102]);
    expect(spool.dropped).toBe(1);
    expect(lines.some((l) => l.includes("seg-00000001.spool is damaged"))).toBe(true);
    spool.close();
  });

  test("a torn tail whose bytes look like the start of a frame is still one torn tail, not damage", () => {
    const one = framesOf(0);
    // A partial write: from its second byte on, a zero high length byte and, eight bytes on, a
    // CBOR map's first byte (what a frame start looks like to a quick filter), but no valid frame.
    const torn = new Uint8Array([0xff, 1, 2, 3, 0, 9, 9, 9, 9, 0xa1, 7, 7]);
    writeFileSync(SEG(), cat(one, torn));
    const { spool, lines } = open();
    expect(spool.dropped).toBe(0);
    expect(spool.damagedBytes).toBe(0);
    expect(lines.some((l) => l.includes("is damaged"))).toBe(false);
    expect(lines.some((l) => l.includes(`has a torn tail of ${torn.length} bytes after 1 good records`))).toBe(true);
    expect(statSync(SEG()).size).toBe(one.length);
    spool.close();
  });
});

describe("an empty segment file appended to", () => {
  test("its records' age counts from their arrival", () => {
    writeFileSync(SEG(), ""); // a roll whose first write failed
    const clock = new FakeClock();
    const { spool } = open({ clock, segmentBytes: 1 << 20 });
    spool.append([accepted(0)]);
    clock.advance(2000);
    expect(spool.oldestWaitingMs()).toBe(2000);
    expect(spool.stats().segments).toBe(1); // the empty segment was reused
    spool.close();
  });
});

describe("a damaged progress.json", () => {
  test("that is not an object at all is named as the progress file in the warning", () => {
    writeFileSync(join(dir.path, "progress.json"), "null");
    const { spool, lines } = open();
    expect(lines.some((l) => l.includes("progress.json is damaged (progress: "))).toBe(true);
    expect(spool.progress).toMatchObject({ seg: 1, index: 0, queenSeg: null });
    spool.close();
  });
});
