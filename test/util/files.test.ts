import { afterEach, beforeEach, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { readCapped } from "../../src/util/files.ts";
import { tempDir } from "../helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-files-")));
afterEach(() => dir.cleanup());

test("readCapped() returns files up to the cap and null beyond it", () => {
  const file = (name: string, bytes: number) => (writeFileSync(join(dir.path, name), "x".repeat(bytes)), join(dir.path, name));
  expect(readCapped(file("empty", 0), 10)).toEqual(new Uint8Array(0));
  expect(readCapped(file("at", 10), 10)?.length).toBe(10);
  expect(readCapped(file("over", 11), 10)).toBeNull();
  expect(() => readCapped(join(dir.path, "missing"), 10)).toThrow();
});
