/**
 * Writing a job's output under the bundle directory so that nothing the job names can escape
 * it: every folder on the way is created and opened relative to the one before it (a directory
 * handle, through /proc/self/fd: Node has no openat), with O_NOFOLLOW, so a symbolic link
 * anywhere in the path (dangling or not) is refused rather than followed, and the file itself
 * is opened O_NOFOLLOW and must be a regular file. Nothing is resolved by name twice, so a
 * folder swapped for a link mid-way cannot redirect the write either.
 */
import { closeSync, constants, existsSync, fstatSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { writeFully } from "../util/files.ts";

const { O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = constants;

/** A job output that cannot be written where it names; the message says why. */
export class JobOutputError extends Error {
  override name = "JobOutputError";
}

/** Why `rel` is not an acceptable output path under the bundle directory, or null. */
export function outputPathProblem(rel: string): string | null {
  if (rel.includes("\0")) return "must not contain NUL";
  if (rel.startsWith("/")) return `must be relative to the bundle directory, got ${JSON.stringify(rel)}`;
  if (rel.split(/[\\/]/).includes("..")) return `must not contain '..', got ${JSON.stringify(rel)}`;
  if (rel.split("/").filter((s) => s !== "" && s !== ".").length === 0) return `names no file, got ${JSON.stringify(rel)}`;
  return null;
}

/** Writes `data` to `rel` under `bundleDir` (creating folders as needed); throws JobOutputError. */
export function writeJobOutput(bundleDir: string, rel: string, data: Uint8Array | string): void {
  const problem = outputPathProblem(rel);
  if (problem !== null) throw new JobOutputError(`the output ${problem}`);
  if (!existsSync("/proc/self/fd")) throw new JobOutputError("outputs are written through /proc/self/fd, which is not mounted");
  const parts = rel.split("/").filter((s) => s !== "" && s !== ".");
  const name = parts.pop()!;
  let dir: number;
  try {
    dir = openSync(bundleDir, O_RDONLY | O_DIRECTORY);
  } catch (error) {
    throw new JobOutputError(`the bundle directory ${bundleDir} cannot be opened: ${(error as Error).message}`, { cause: error });
  }
  try {
    for (const part of parts) {
      const at = `/proc/self/fd/${dir}/${part}`;
      try {
        mkdirSync(at, 0o755);
      } catch (error) {
        if ((error as { code?: string }).code !== "EEXIST") {
          throw new JobOutputError(`cannot create the folder ${JSON.stringify(part)}: ${(error as Error).message}`, { cause: error });
        }
      }
      let next: number;
      try {
        next = openSync(at, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch (error) {
        throw new JobOutputError(`${JSON.stringify(part)} in ${JSON.stringify(rel)} is a symbolic link or not a folder; not followed`, {
          cause: error,
        });
      }
      closeSync(dir);
      dir = next;
    }
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO planted at the name must not hang the bridge (it is refused below).
      fd = openSync(`/proc/self/fd/${dir}/${name}`, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK, 0o644);
    } catch (error) {
      const code = (error as { code?: string }).code;
      const why = code === "ELOOP" ? "is a symbolic link; not followed" : (error as Error).message;
      throw new JobOutputError(`${JSON.stringify(rel)} ${why}`, { cause: error });
    }
    try {
      if (!fstatSync(fd).isFile()) throw new JobOutputError(`${JSON.stringify(rel)} exists and is not a regular file`);
      writeFully(fd, data, join(bundleDir, rel));
    } finally {
      closeSync(fd);
    }
  } finally {
    closeSync(dir);
  }
}
