/** Reading files whose size the bridge must bound. */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/**
 * The bytes of `path` if it holds at most `cap`; null if it holds more. Reads at most `cap + 1`
 * bytes however large the file is, and allocates for its actual size (growing only if it grew
 * since `fstat`), not for the cap.
 */
export function readCapped(path: string, cap: number): Uint8Array | null {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    if (size > cap) return null;
    let buf = new Uint8Array(size + 1); // one more byte: notices a file that grew past its size
    let used = 0;
    for (;;) {
      if (used === buf.length) {
        if (buf.length > cap) break;
        const bigger = new Uint8Array(cap + 1);
        bigger.set(buf);
        buf = bigger;
      }
      const n = readSync(fd, buf, used, buf.length - used, null);
      if (n === 0) break;
      used += n;
    }
    return used > cap ? null : buf.subarray(0, used);
  } finally {
    closeSync(fd);
  }
}
