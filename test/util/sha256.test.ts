/** sha256Hex: the one-shot hash where the runtime has it, the same digest as a Hash object. */
import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { sha256Hex } from "../../src/util/sha256.ts";

test("the FIPS 180-2 vector, for text and bytes alike, as createHash gives it", () => {
  const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  expect(sha256Hex("abc")).toBe(abc);
  expect(sha256Hex(new Uint8Array([0x61, 0x62, 0x63]))).toBe(abc);
  const text = "é→" + "x".repeat(1000);
  expect(sha256Hex(text)).toBe(createHash("sha256").update(text).digest("hex"));
  expect(sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
});
