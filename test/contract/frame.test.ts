import { describe, expect, test } from "bun:test";
import { encodeFrame, FrameDecoder, FrameError, MAX_FRAME } from "../../src/contract/frame.ts";

const lines = ["OK AUTH detail=welcome", "", "ÜTF-8 ✓ line", "x".repeat(MAX_FRAME - 4)];
const stream = () => new Uint8Array(lines.flatMap((l) => [...encodeFrame(l)]));

describe("encodeFrame()", () => {
  test("prefixes the total length, header included, little-endian, with no newline", () => {
    expect([...encodeFrame("PING")]).toEqual([8, 0, 0, 0, 0x50, 0x49, 0x4e, 0x47]);
    expect(encodeFrame("").length).toBe(4);
  });
  test("counts UTF-8 bytes, not characters", () => {
    expect(new DataView(encodeFrame("ü").buffer).getUint32(0, true)).toBe(6);
  });
  test("refuses a line that would exceed 8192 bytes", () => {
    expect(() => encodeFrame("x".repeat(MAX_FRAME - 3))).toThrow(RangeError);
  });
});

describe("FrameDecoder", () => {
  test("decodes a stream fed one byte at a time", () => {
    const dec = new FrameDecoder();
    const out: string[] = [];
    for (const b of stream()) out.push(...dec.push(new Uint8Array([b])));
    expect(out).toEqual(lines);
    expect(dec.pending).toBe(0);
  });

  test("decodes several frames in one read and frames split at every possible point", () => {
    const bytes = stream();
    expect(new FrameDecoder().push(bytes)).toEqual(lines);
    for (let cut = 1; cut < 40; cut++) {
      const dec = new FrameDecoder();
      expect([...dec.push(bytes.subarray(0, cut)), ...dec.push(bytes.subarray(cut))]).toEqual(lines);
    }
  });

  test("keeps a partial frame until the rest arrives", () => {
    const dec = new FrameDecoder();
    const f = encodeFrame("OK ECHO path=/gpu/bridge/ctl bytes=128");
    expect(dec.push(f.subarray(0, 10))).toEqual([]);
    expect(dec.pending).toBe(10);
    expect(dec.push(f.subarray(10))).toEqual(["OK ECHO path=/gpu/bridge/ctl bytes=128"]);
  });

  test.each([[0], [3], [MAX_FRAME + 1], [0xffffffff]])("rejects a length header of %d", (len) => {
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, len, true);
    expect(() => new FrameDecoder().push(header)).toThrow(FrameError);
    expect(() => new FrameDecoder().push(header)).toThrow(`length ${len} is outside 4..8192`);
  });

  test("hands over the good frames before a bad header in the same read, on the error", () => {
    const dec = new FrameDecoder();
    const bytes = new Uint8Array([...encodeFrame("OK PING"), ...encodeFrame("PONG"), 2, 0, 0, 0]);
    let error: unknown;
    try {
      dec.push(bytes);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FrameError);
    expect((error as FrameError).lines).toEqual(["OK PING", "PONG"]);
    expect((error as FrameError).message).toBe("Cannot decode frame: length 2 is outside 4..8192");
  });

  test("a bad header after a frame split across reads still hands over that frame", () => {
    const dec = new FrameDecoder();
    const f = encodeFrame("OK ECHO");
    expect(dec.push(f.subarray(0, 5))).toEqual([]);
    let error: FrameError | undefined;
    try {
      dec.push(new Uint8Array([...f.subarray(5), 0, 0, 0, 0]));
    } catch (e) {
      error = e as FrameError;
    }
    expect(error?.lines).toEqual(["OK ECHO"]);
  });
});
