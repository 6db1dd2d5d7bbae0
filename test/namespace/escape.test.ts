import { describe, expect, test } from "bun:test";
import { escapeString } from "../../src/namespace/escape.ts";

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
