import { describe, expect, test } from "bun:test";
import { byteLength, decodeLossless, encodeLossless } from "../../src/util/bytes.ts";

/** A deterministic generator, so a failure names a reproducible case. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

describe("decodeLossless() / encodeLossless()", () => {
  test("give back the very bytes, UTF-8 or not, over thousands of random byte strings", () => {
    const r = random(7);
    for (let n = 0; n < 5000; n++) {
      const bytes = Uint8Array.from({ length: Math.floor(r() * 24) }, () => {
        const x = r();
        return x < 0.4 ? Math.floor(r() * 128) : x < 0.7 ? 0x80 + Math.floor(r() * 64) : 0xc0 + Math.floor(r() * 64);
      });
      const text = decodeLossless(bytes);
      expect(encodeLossless(text)).toEqual(bytes);
      expect(byteLength(text)).toBe(bytes.length);
    }
  });

  test("read valid UTF-8 exactly as a plain decoder does, surrogate pairs included", () => {
    for (const s of ["", "plain", "café ☕", "𐂀 U+10080 ends in DC80", "\u{10ffff}"]) {
      const bytes = new TextEncoder().encode(s);
      expect(decodeLossless(bytes)).toBe(s);
      expect(encodeLossless(s)).toEqual(bytes);
    }
  });

  test("keep each stray byte as one lone surrogate, never U+FFFD", () => {
    expect(decodeLossless(Uint8Array.of(0x61, 0xff, 0xe9, 0x62))).toBe("a\udcff\udce9b");
    expect(decodeLossless(Uint8Array.of(0xed, 0xa0, 0x80))).toBe("\udced\udca0\udc80"); // an encoded surrogate is not UTF-8
    expect(decodeLossless(Uint8Array.of(0xf0, 0x90, 0x82, 0x80, 0x80))).toBe("\u{10080}\udc80");
  });
});
