/** Reading files whose size the bridge must bound, and writing files fully or not at all. */
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** Raised for a path that is not a regular file (a FIFO, device, socket, directory or symlink). */
export class NotRegularFileError extends Error {
  override name = "NotRegularFileError";
  readonly code = "ENOTREG";
  /** The path refused (undefined where a caller built the error without one). */
  readonly path: string | undefined;
  constructor(message: string, path?: string) {
    super(message);
    this.path = path;
  }
}

/**
 * Opens `path` for reading only if it is a regular file, without ever blocking: `O_NONBLOCK`
 * makes opening a FIFO return at once (a plain open waits for a writer, freezing the event
 * loop), `O_NOFOLLOW` refuses a symlink, and `fstat` on the open descriptor (no race with a
 * rename) refuses everything but a regular file. Reads of a regular file ignore `O_NONBLOCK`.
 */
export function openRegular(path: string, follow = false): number {
  // `follow`: a symlink to a regular file is read (spec folders link specs in); what it points
  // to is still checked on the descriptor, so a link to a device or FIFO is refused all the same.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | (follow ? 0 : constants.O_NOFOLLOW));
  let ok = false;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new NotRegularFileError(`Cannot read ${path}: it is not a regular file`, path);
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
 * anything but a regular file, and never blocks on opening one. `follow` as for openRegular.
 */
export function readCapped(path: string, cap: number, follow = false): Uint8Array | null {
  const fd = openRegular(path, follow);
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

/**
 * Raised when a durable write could not be completed: the disk is full (`ENOSPC`), over quota
 * (`EDQUOT`), read-only, or failed otherwise. `code` is the system's code; the message names the
 * path and what to do. Callers answer it as "not stored" (HTTP 507/503), never as success.
 */
export class DiskWriteError extends Error {
  override name = "DiskWriteError";
  readonly code: string;
  readonly path: string;
  constructor(path: string, cause: unknown) {
    const code = (cause as { code?: string } | null)?.code ?? "EIO";
    const why = code === "ENOSPC"
      ? "the disk is full (ENOSPC); free space on that file system"
      : code === "EDQUOT"
      ? "the disk quota is exhausted (EDQUOT)"
      : `${(cause as Error)?.message ?? String(cause)}`;
    super(`Cannot write ${path}: ${why}`, { cause });
    this.code = code;
    this.path = path;
  }
}

/**
 * Writes every byte of `data` to `fd`, or throws `DiskWriteError` naming `path`. `writeSync`
 * may write fewer bytes than asked and throw nothing (a nearly full disk); this loops until all
 * is written, so the next attempt reports the real cause (`ENOSPC`). A write that makes no
 * progress is an error too, never an endless loop.
 */
export function writeFully(fd: number, data: Uint8Array | string, path: string, position?: number): void {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  let done = 0;
  try {
    while (done < bytes.length) {
      const n = writeSync(fd, bytes, done, bytes.length - done, position === undefined ? null : position + done);
      if (n <= 0) throw Object.assign(new Error("write made no progress"), { code: "ENOSPC" });
      done += n;
    }
  } catch (error) {
    if (error instanceof DiskWriteError) throw error;
    throw new DiskWriteError(path, error);
  }
}

/**
 * Appends `data` at byte `end` of the file open as `fd` (not opened `O_APPEND`: the position is
 * the caller's record of where its last whole write ended), and syncs it (`sync`: false skips
 * that, a function syncs in its place, e.g. to time it).
 * On any failure the file is cut back to `end` and `DiskWriteError` is thrown: a file of frames
 * or lines never keeps a partial one, and a later append starts where the good data ends.
 */
export function appendFully(
  fd: number,
  data: Uint8Array | string,
  path: string,
  end: number,
  sync: boolean | ((fd: number) => void) = true,
): void {
  try {
    writeFully(fd, data, path, end);
    if (typeof sync === "function") sync(fd);
    else if (sync) syncFully(fd, path);
  } catch (error) {
    try {
      ftruncateSync(fd, end);
    } catch {
      // Cutting back frees space, so it succeeds on a full disk; if even that fails, the next
      // append still starts at `end` and overwrites the partial bytes.
    }
    throw error;
  }
}

/** `fsync` that reports a failure as `DiskWriteError` naming `path`. */
export function syncFully(fd: number, path: string): void {
  try {
    fsyncSync(fd);
  } catch (error) {
    throw new DiskWriteError(path, error);
  }
}

/**
 * Replaces `path` with `data` atomically and durably: a temporary file beside it (a dot name
 * without the target's extension, so folder scanners skip it) is written fully, synced, and
 * renamed over `path`, then the folder is synced. On any failure the temporary file is removed,
 * the old `path` stays as it was, and `DiskWriteError` is thrown: a truncated copy never
 * replaces a good file. `sync` false skips the syncs (benchmarks, and data that may lag).
 */
export function replaceFileDurably(path: string, data: Uint8Array | string, mode = 0o600, sync = true): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, mode);
  } catch (error) {
    throw new DiskWriteError(path, error);
  }
  try {
    writeFully(fd, data, path);
    if (sync) syncFully(fd, path);
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
    throw new DiskWriteError(path, error);
  }
  if (sync) syncDir(dirname(path));
}

/** Syncs a folder so a rename or a new file in it survives a crash; best effort where unsupported. */
export function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a folder (EINVAL); the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
