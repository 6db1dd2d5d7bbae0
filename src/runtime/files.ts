/**
 * The runtime's own file calls, for the paths that run on every container's start (`cdi apply`
 * and `cdi list`: spec folders and the validated-spec cache). On Bun, `node:fs` alone costs
 * about two milliseconds to load and Bun's calls need no import; elsewhere there are none
 * (`runtimeFiles()` is null) and callers load `node:fs`. Safe to import anywhere: it loads
 * nothing, and touches the runtime only when called.
 */

/** What the validated-spec cache's trust check needs of a stat. */
export interface FileOwner {
  readonly uid: number;
  readonly mode: number;
}

export interface RuntimeFiles {
  /** The runtime's version and the executable's size and mtime: a rebuilt binary differs. */
  buildId(): string;
  /**
   * The names of the files in `dir`, following links, no folders, not recursive. Throws an
   * error with `code` "ENOENT" when `dir` does not exist.
   */
  listFiles(dir: string): string[];
  /** `stat`'s size, following links: Infinity for anything but a regular file, 0 when absent. */
  sizeOf(path: string): number;
  /** At most the first `end` bytes of `path` as text (all of it when undefined), read-only, on the runtime's I/O threads. */
  readText(path: string, end?: number): Promise<string>;
  /**
   * The whole file at once, mapped rather than read: no I/O thread, but the runtime opens it
   * read-write, so only for a file in a folder of our own (never a spec under /etc).
   */
  mapFile(path: string): Uint8Array;
  /** `stat`, following links, on the runtime's I/O threads. */
  stat(path: string): Promise<FileOwner>;
  /** SHA-256 of `text`'s UTF-8 bytes, as lowercase hex. */
  sha256Hex(text: string): string;
  /** The runtime's own YAML parser, about a hundred times faster to reach than loading a library; undefined: none. */
  readonly parseYaml: ((text: string) => unknown) | undefined;
}

interface BunBlob {
  readonly size: number;
  readonly lastModified: number;
  slice(start: number, end: number): BunBlob;
  text(): Promise<string>;
  stat(): Promise<FileOwner>;
}
interface BunApi {
  readonly version: string;
  Glob: new (pattern: string) => { scanSync(o: { cwd: string; onlyFiles: boolean; followSymlinks?: boolean }): Iterator<string> };
  file(path: string): BunBlob;
  mmap(path: string, o: { shared: boolean }): Uint8Array;
  SHA256: { hash(data: string, encoding: "hex"): string };
  YAML?: { parse?: (text: string) => unknown };
}

let cached: RuntimeFiles | null | undefined;

/** The runtime's file calls (Bun's), or null where it has none (Deno, Node). */
export function runtimeFiles(): RuntimeFiles | null {
  if (cached !== undefined) return cached;
  const bun = (globalThis as { Bun?: BunApi }).Bun;
  return (cached = bun === undefined ? null : bunFiles(bun));
}

function bunFiles(bun: BunApi): RuntimeFiles {
  const yaml = bun.YAML?.parse;
  return {
    buildId() {
      const exe = bun.file(process.execPath);
      return `${bun.version}\0${exe.size}\0${exe.lastModified}`;
    },
    listFiles(dir) {
      // next() by hand: spreading the generator costs its iteration protocol a cold start.
      const names = new bun.Glob("*").scanSync({ cwd: dir, onlyFiles: true, followSymlinks: true });
      const out: string[] = [];
      for (let r = names.next(); r.done !== true; r = names.next()) out.push(r.value);
      return out;
    },
    sizeOf: (path) => bun.file(path).size,
    readText(path, end) {
      const file = bun.file(path);
      return end === undefined ? file.text() : file.slice(0, end).text();
    },
    mapFile: (path) => bun.mmap(path, { shared: false }),
    stat: (path) => bun.file(path).stat(),
    sha256Hex: (text) => bun.SHA256.hash(text, "hex"),
    parseYaml: typeof yaml === "function" ? (text) => yaml(text) : undefined,
  };
}
