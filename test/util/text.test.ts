import { expect, test } from "bun:test";
import { readText } from "../../src/util/text.ts";

async function* chunks(...parts: Uint8Array[]) {
  for (const p of parts) yield p;
}

test("readText() decodes a character split across chunks whole", async () => {
  const bytes = new TextEncoder().encode('{"note":"é✓😀"}');
  for (let cut = 1; cut < bytes.length; cut++) {
    expect(await readText(chunks(bytes.subarray(0, cut), bytes.subarray(cut)))).toBe('{"note":"é✓😀"}');
  }
});

test("readText() turns a truncated character at the end into one replacement character", async () => {
  expect(await readText(chunks(new Uint8Array([0x61, 0xe2, 0x9c])))).toBe("a\ufffd");
});
