/** Spec folders through node:fs (Deno, Node, and tests). */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { SpecFs } from "./spec-fs.ts";

/** A regular file, or a symlink to one (a folder named x.json is not a spec). */
const isFile = (path: string) => {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
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
    return names.filter((name) => isFile(join(dir, name)));
  },
  read: (path) => Promise.resolve(readFileSync(path, "utf8")),
};
