import { describe, expect, test } from "bun:test";
import { decodeBase64, encodeBase64 } from "../../src/util/base64.ts";

describe("decodeBase64()", () => {
  test("decodes strict padded base64", () => {
    expect(decodeBase64("")).toEqual(new Uint8Array(0));
    expect(decodeBase64("QQ==")).toEqual(new Uint8Array([65]));
    expect(decodeBase64("QUI=")).toEqual(new Uint8Array([65, 66]));
    expect(decodeBase64("+/+/")).toEqual(new Uint8Array([0xfb, 0xff, 0xbf]));
  });

  test.each([
    ["non-zero padding bits", "QR=="],
    ["non-zero padding bits before one =", "QUJ="],
    ["missing padding", "QQ"],
    ["a lone character", "Q==="],
    ["whitespace", "Q Q=="],
    ["a newline", "QQ==\n"],
    ["the URL alphabet", "-_-_"],
    ["data after padding", "QQ==QQ=="],
    ["padding in the middle", "Q=Q="],
  ])("refuses %s (%j)", (_why, text) => {
    expect(decodeBase64(text)).toBeNull();
  });
});

describe("encodeBase64()", () => {
  test("encodes UTF-8 text and bytes as standard padded base64", () => {
    expect(encodeBase64("é✓")).toBe("w6ninJM=");
    expect(encodeBase64(new Uint8Array([0xfb, 0xff]))).toBe("+/8=");
    expect(encodeBase64("")).toBe("");
  });
});
