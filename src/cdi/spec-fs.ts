/**
 * How spec folders are read. `cdi apply` runs on every container's start, and on Bun
 * `node:fs` alone costs about two milliseconds to load: there the folder is listed and files
 * read with Bun's own calls (spec-fs-bun.ts), elsewhere with node:fs (spec-fs-node.ts).
 *
 * Both read only regular files (a symlink to one is read: distributions and nvidia-ctk setups
 * link specs into /etc/cdi, and the reference library follows links), and at most `cap` bytes of
 * one: a device (`/dev/zero`), a FIFO or a socket, directly or through a link, or a file over
 * the cap, is refused with SpecFileError (spec-format.ts) naming it and why, before anything is
 * read from it.
 */
import { bunSpecFs } from "./spec-fs-bun.ts";

export interface SpecFs {
  /** The names of the files in `dir` (not subfolders, not recursive); null when `dir` does not exist. */
  files(dir: string): string[] | null;
  /** The text of the regular file `path` if it holds at most `cap` bytes; else SpecFileError. */
  read(path: string, cap: number): Promise<string>;
}

/** Bun's reader on Bun, without an await; null elsewhere (then loadSpecFs). */
export function bunSpecFsNow(): SpecFs | null {
  return "Bun" in globalThis ? bunSpecFs : null;
}

/** The reader for this runtime: Bun's at once, node:fs loaded on demand elsewhere. */
export async function loadSpecFs(): Promise<SpecFs> {
  return bunSpecFsNow() ?? (await import("./spec-fs-node.ts")).nodeSpecFs;
}
