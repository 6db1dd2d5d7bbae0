/**
 * How spec folders are read. `cdi apply` runs on every container's start, and on Bun
 * `node:fs` alone costs about two milliseconds to load: there the folder is listed and files
 * read with Bun's own calls (spec-fs-bun.ts), elsewhere with node:fs (spec-fs-node.ts).
 */
import { bunSpecFs } from "./spec-fs-bun.ts";

export interface SpecFs {
  /** The names of the files in `dir` (not subfolders, not recursive); null when `dir` does not exist. */
  files(dir: string): string[] | null;
  read(path: string): Promise<string>;
}

/** Bun's reader on Bun, without an await; null elsewhere (then loadSpecFs). */
export function bunSpecFsNow(): SpecFs | null {
  return "Bun" in globalThis ? bunSpecFs : null;
}

/** The reader for this runtime: Bun's at once, node:fs loaded on demand elsewhere. */
export async function loadSpecFs(): Promise<SpecFs> {
  return bunSpecFsNow() ?? (await import("./spec-fs-node.ts")).nodeSpecFs;
}
