/** Spec folders through Bun's own calls: the Bun runtime adapter of spec-fs.ts (safe to import anywhere). */
import type { SpecFs } from "./spec-fs.ts";

interface BunApi {
  Glob: new (pattern: string) => { scanSync(o: { cwd: string; onlyFiles: boolean; followSymlinks?: boolean }): Iterable<string> };
  file(path: string): { text(): Promise<string> };
}
const bun = () => (globalThis as unknown as { Bun: BunApi }).Bun;

export const bunSpecFs: SpecFs = {
  files(dir) {
    try {
      return [...new (bun().Glob)("*").scanSync({ cwd: dir, onlyFiles: true, followSymlinks: true })];
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return null;
      throw error;
    }
  },
  read: (path) => bun().file(path).text(),
};
