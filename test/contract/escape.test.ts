import { describe, expect, test } from "bun:test";
import { escapeString, quote } from "../../src/contract/escape.ts";

describe("escapeString()", () => {
  test("escapes quotes, backslashes and the named control characters", () => {
    expect(escapeString('a"b\\c\nd\re\tf')).toBe('a\\"b\\\\c\\nd\\re\\tf');
  });
  test("writes other control characters as lowercase \\u00XX", () => {
    expect(escapeString("\u0000\u001b\u001f\u000b")).toBe("\\u0000\\u001b\\u001f\\u000b");
  });
  test("leaves non-ASCII, DEL, slashes and line separators as they are", () => {
    const text = "Ünïcødé ✓ 🚀 \u007f / \u2028";
    expect(escapeString(text)).toBe(text);
  });
  test("returns plain text unchanged", () => {
    expect(escapeString("GPU-0")).toBe("GPU-0");
    expect(escapeString("")).toBe("");
  });
});

describe("quote()", () => {
  test("writes backspace and form feed as \\u00XX, not JSON.stringify's \\b and \\f", () => {
    expect(quote("a\bb\fc")).toBe('"a\\u0008b\\u000cc"');
    expect(quote("\b")).toBe('"\\u0008"');
  });
  test("writes lone surrogates as they are, not as JSON.stringify's \\udXXX", () => {
    expect(quote("x\ud800y")).toBe('"x\ud800y"');
    expect(quote("\udfff\n")).toBe('"\udfff\\n"');
  });
  test("matches the rule's own pass on every character class, in random strings", () => {
    // Every control character, both escaped printables, DEL, the line separators, non-ASCII,
    // an astral pair and both halves of it alone.
    const pool = [
      ...Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)),
      '"',
      "\\",
      "/",
      "a",
      "Z",
      " ",
      "\u007f",
      "\u0080",
      "é",
      "\u2028",
      "\u2029",
      "\ufeff",
      "🚀",
      "\ud83d",
      "\ude80",
    ];
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
    for (let round = 0; round < 3000; round++) {
      let text = "";
      for (let n = next() % 12; n > 0; n--) text += pool[next() % pool.length];
      expect(quote(text)).toBe(`"${escapeString(text)}"`);
    }
    for (const ch of pool) expect(quote(ch)).toBe(`"${escapeString(ch)}"`);
  });
});
