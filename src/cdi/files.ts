/** Atomic file replacement: a consumer reading the spec folder never sees half a spec. */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * Writes `text` to a temporary file beside `path` (a name without .json or .yaml, so a consumer
 * scanning the folder skips it), flushes it, and renames it over `path`.
 */
export function writeFileAtomic(path: string, text: string, mode = 0o644): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw error;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw new Error(`Cannot write ${path}: ${(error as Error).message}`, { cause: error });
  }
}
