/** Spec folders through Bun's own calls: the Bun runtime adapter of spec-fs.ts (safe to import anywhere). */
import type { SpecFs } from "./spec-fs.ts";
import { notRegular, tooBig } from "./spec-format.ts";

interface BunBlob {
  /** `stat`'s size, following links: Infinity for anything but a regular file, 0 when absent. */
  readonly size: number;
  slice(start: number, end: number): BunBlob;
  text(): Promise<string>;
}
interface BunApi {
  Glob: new (pattern: string) => { scanSync(o: { cwd: string; onlyFiles: boolean; followSymlinks?: boolean }): Iterator<string> };
  file(path: string): BunBlob;
}
const bun = () => (globalThis as unknown as { Bun: BunApi }).Bun;

export const bunSpecFs: SpecFs = {
  files(dir) {
    try {
      // next() by hand: spreading the generator costs its iteration protocol a cold start.
      const names = new (bun().Glob)("*").scanSync({ cwd: dir, onlyFiles: true, followSymlinks: true });
      const out: string[] = [];
      for (let r = names.next(); r.done !== true; r = names.next()) out.push(r.value);
      return out;
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return null;
      throw error;
    }
  },
  // Read-only, on Bun's I/O threads. Not Bun.mmap (0.1 M instructions cold, no threads): it
  // opens the file read-write, which a spec under /etc must never see (audit rules and runtime
  // security tools such as Falco report every open for writing below /etc).
  read(path, cap) {
    const file = bun().file(path);
    // One stat, no read: a device, FIFO or socket (Bun's size is Infinity) is never opened,
    // so neither an endless read nor an open that waits for a writer can start.
    const size = file.size;
    if (size === Infinity) return Promise.reject(notRegular(path));
    if (size > cap) return Promise.reject(tooBig(path, cap, size));
    // At most the size just seen: a file that grew, or was replaced since, is still read
    // boundedly. Size 0 is also what an absent file (a dangling link) shows: read, to name it.
    return size === 0 ? file.text() : file.slice(0, size).text();
  },
};
