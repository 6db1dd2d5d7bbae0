/** Spec folders through node:fs (Deno, Node, and tests). */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { NotRegularFileError, readCapped } from "../util/files.ts";
import type { SpecFs } from "./spec-fs.ts";
import { notRegular, tooBig } from "./spec-format.ts";

/**
 * Not a folder (a folder named x.json is not a spec). A device or FIFO is listed, so that
 * reading it refuses it by name; a dangling link is listed too, and its read names it.
 */
const notFolder = (path: string) => {
  try {
    return !statSync(path).isDirectory();
  } catch {
    return true;
  }
};

export const nodeSpecFs: SpecFs = {
  files(dir) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
    return names.filter((name) => notFolder(join(dir, name)));
  },
  read(path, cap) {
    let bytes: Uint8Array | null;
    try {
      bytes = readCapped(path, cap, true);
    } catch (error) {
      return Promise.reject(error instanceof NotRegularFileError ? notRegular(path) : error);
    }
    return bytes === null ? Promise.reject(tooBig(path, cap)) : Promise.resolve(new TextDecoder().decode(bytes));
  },
};
