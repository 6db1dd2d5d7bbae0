/** Reading files whose size the bridge must bound. */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";

/** Raised for a path that is not a regular file (a FIFO, device, socket, directory or symlink). */
export class NotRegularFileError extends Error {
  override name = "NotRegularFileError";
  readonly code = "ENOTREG";
}

/**
 * Opens `path` for reading only if it is a regular file, without ever blocking: `O_NONBLOCK`
 * makes opening a FIFO return at once (a plain open waits for a writer, freezing the event
 * loop), `O_NOFOLLOW` refuses a symlink, and `fstat` on the open descriptor (no race with a
 * rename) refuses everything but a regular file. Reads of a regular file ignore `O_NONBLOCK`.
 */
export function openRegular(path: string): number {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  let ok = false;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new NotRegularFileError(`Cannot read ${path}: it is not a regular file`);
    ok = true;
    return fd;
  } finally {
    if (!ok) closeSync(fd);
  }
}

/**
 * The bytes of `path` if it holds at most `cap`; null if it holds more. Reads at most `cap + 1`
 * bytes however large the file is, and allocates for its actual size (growing only if it grew
 * since `fstat`), not for the cap. Refuses (`NotRegularFileError`, or `ELOOP` for a symlink)
 * anything but a regular file, and never blocks on opening one.
 */
export function readCapped(path: string, cap: number): Uint8Array | null {
  const fd = openRegular(path);
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
