/**
 * The state folder (`--state-dir`): made if missing, checked before anything is kept in it, and
 * every file-system failure under it told as what the folder needs, naming the flag, rather than
 * as a raw `EEXIST`/`ENOENT`/`EACCES`.
 */
import { accessSync, constants, existsSync, lstatSync, mkdirSync, statSync } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import process from "node:process";

/** A state folder the bridge cannot use; the message names `--state-dir`, the path and the remedy. */
export class StateDirError extends Error {
  override name = "StateDirError";
  readonly path: string;
  constructor(message: string, path: string, options?: { cause?: unknown }) {
    super(message, options);
    this.path = path;
  }
}

/** Makes `dir` (0700) if missing and checks that it is a folder the bridge can write. */
export function prepareStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error("not a folder"), { code: "EEXIST", path: dir });
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw stateDirError(dir, error) ?? error;
  }
}

/**
 * `error` told as a state-folder problem if it is a file-system failure on a path in `dir` (or
 * on `dir` or a parent of it); null otherwise, so the caller rethrows it unchanged.
 */
export function stateDirError(dir: string, error: unknown): StateDirError | null {
  if (error instanceof StateDirError) return error;
  const e = error as { code?: string; path?: string; cause?: unknown } | null;
  // A failure wrapped with context ("Cannot create the seal key …") carries the system's in its cause.
  if (error instanceof Error && typeof e?.path !== "string" && e?.cause !== undefined) return stateDirError(dir, e.cause);
  const code = e?.code;
  if (typeof code !== "string" || typeof e?.path !== "string") return null;
  const root = resolve(dir);
  const path = resolve(e.path);
  if (path !== root && !path.startsWith(root + sep) && !root.startsWith(path + sep)) return null;
  const flag = `--state-dir ${JSON.stringify(dir)}`;
  const uid = process.getuid?.() ?? "?";
  const what = (() => {
    // A dangling link reads as "missing" (ENOENT) or "exists" (EEXIST): say what it is.
    if ((code === "ENOENT" || code === "EEXIST") && isSymlink(path)) {
      return `${path} is a symbolic link; the bridge does not follow links in its state folder`;
    }
    switch (code) {
      case "EEXIST":
        return `${path} is a file, not a folder; move it away or pick another folder`;
      case "ENOTDIR":
        return `${firstNonFolder(path) ?? "a parent"} is a file where a folder is needed; move it away or pick another folder`;
      case "ENOENT":
        return `${path} does not exist and could not be made (a parent folder is missing or was removed meanwhile)`;
      case "EACCES":
      case "EPERM":
        return `permission denied on ${path} (the bridge runs as uid ${uid}); make it writable by that user (chown, chmod) or pick another folder`;
      case "EROFS":
        return `${path} is on a read-only file system; pick a writable folder`;
      case "ENOSPC":
      case "EDQUOT":
        return `the disk holding ${path} is full (${code}); free space on it`;
      case "ELOOP":
        return `${path} is a symbolic link; the bridge does not follow links in its state folder`;
      case "ENOTREG":
      case "EISDIR":
        return `${path} is not a regular file (a folder, FIFO, device or socket); move it away so the bridge can make its own`;
      default:
        return `${(error as Error).message}`;
    }
  })();
  return new StateDirError(`Cannot use the state folder (${flag}): ${what}`, path, { cause: error });
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** The first component of `path`, from the top, that exists and is not a folder. */
function firstNonFolder(path: string): string | null {
  const parts: string[] = [];
  for (let p = path; p !== dirname(p); p = dirname(p)) parts.unshift(p);
  for (const p of parts) {
    try {
      if (!lstatSync(p).isDirectory() && !statSync(p).isDirectory()) return p;
    } catch {
      return null;
    }
  }
  return null;
}

/** The state folder `make run` gives its bridge, relative to the checkout it runs from. */
export const MAKE_RUN_STATE_DIR = ".state";

/**
 * The state folder a client command (`telemetry push`, `telemetry export`) reads: `dir` as given,
 * except that when it is the default folder (`defaultDir`) and holds no `entry` while `make
 * run`'s `.state` in the working folder does, `.state` (a bridge from `make run` is what a
 * newcomer talks to). Returns the folder and whether it fell back, so the caller can say so.
 */
export function clientStateDir(dir: string, defaultDir: string, entry: string): { dir: string; fellBack: boolean } {
  if (dir !== defaultDir || existsSync(join(dir, entry)) || !existsSync(join(MAKE_RUN_STATE_DIR, entry))) return { dir, fellBack: false };
  return { dir: MAKE_RUN_STATE_DIR, fellBack: true };
}
