import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DiskWriteError, replaceFileDurably, writeFully } from "../../src/util/files.ts";
import { smallTmpfs, tempFolder } from "../helpers.ts";

const disk = smallTmpfs(64);
afterAll(() => {
  if (disk.path !== null) disk.cleanup();
});
const onTmpfs = disk.path === null ? test.skip : test;
if (disk.path === null) console.warn(`skipped full-disk tests: ${disk.reason}`);

describe("writeFully() and replaceFileDurably() on a full disk", () => {
  onTmpfs("writeFully() throws DiskWriteError(ENOSPC) naming the path instead of writing part", () => {
    const path = join(disk.path!, "big");
    const fd = openSync(path, "w");
    let error: unknown;
    try {
      writeFully(fd, new Uint8Array(200 * 1024).fill(7), path);
    } catch (e) {
      error = e;
    } finally {
      closeSync(fd);
    }
    expect(error).toBeInstanceOf(DiskWriteError);
    expect((error as DiskWriteError).code).toBe("ENOSPC");
    expect((error as Error).message).toContain(path);
    writeFileSync(path, ""); // free the space for the next test
  });

  onTmpfs("replaceFileDurably() keeps the old file whole when the new one does not fit", () => {
    const path = join(disk.path!, "state.json");
    replaceFileDurably(path, '{"good":true}');
    expect(() => replaceFileDurably(path, "x".repeat(200 * 1024))).toThrow(DiskWriteError);
    expect(readFileSync(path, "utf8")).toBe('{"good":true}');
    const left = [...new Bun.Glob(".*tmp").scanSync({ cwd: disk.path!, dot: true })];
    expect(left).toEqual([]);
  });
});

test("writeFully() writes every byte, at a position when given one", () => {
  const path = join(tempFolder("gbh-wf-"), "file");
  const fd = openSync(path, "w+");
  try {
    writeFully(fd, "hello world", path);
    writeFully(fd, "W", path, 6);
  } finally {
    closeSync(fd);
  }
  expect(readFileSync(path, "utf8")).toBe("hello World");
});
