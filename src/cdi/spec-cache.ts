/**
 * A cache of validated specs for `cdi apply` and `cdi list`, which run on every container's
 * start. Reading a spec folder costs what the runtime charges on a cold start for parsing YAML
 * (Bun's parser: about 0.9 M instructions for nvidia-ctk's spec of a two-GPU host) and for
 * checking shape and rules (about 0.8 M more); a hit costs a hash, a read and a JSON.parse.
 *
 * - **Key**: SHA-256 of the spec text, its format, the cache format, the bridge's version and the
 *   runtime's: an entry answers for exactly that text read by exactly this code, so an edited
 *   spec is a miss, never a stale answer. Only specs with no error are stored, and what is
 *   stored is the spec the validation returned, so a hit is what a miss would have computed.
 * - **Trust**: an entry decides what a container gets from the host, so the folder must be
 *   writable by the user running apply alone. The default is: `$XDG_RUNTIME_DIR` (the user's
 *   own, 0700) when set, `/run` for root (writable by root alone), otherwise no cache; the
 *   folder is made 0700. `--cache-dir` names another, `--no-cache` turns it off.
 * - **Failure**: anything wrong with the cache (absent, unreadable, a corrupt entry, a full
 *   disk) is a miss, and a write that fails is skipped: the cache never fails a command.
 * - **Size**: at most CACHE_ENTRIES entries; a write past that removes the oldest.
 *
 * A Bun runtime adapter (reads with Bun.mmap, hashes with Bun.SHA256); writes load node:fs, on
 * a miss only. On Deno there is no cache.
 */
import type { SpecFormat } from "./spec-format.ts";
import type { CdiSpec } from "./schema.ts";
import { VERSION } from "../util/version.ts";

/** Entries kept; the bridge's own spec changes with every lease, nvidia-ctk's with the driver. */
export const CACHE_ENTRIES = 32;
/** Bumped when what an entry holds, or how a spec is validated, changes. */
const CACHE_FORMAT = 1;

interface BunApi {
  readonly version: string;
  SHA256: { hash(data: string, encoding: "hex"): string };
  file(path: string): { readonly size: number };
  mmap(path: string, o: { shared: boolean }): Uint8Array;
}
const bun = () => (globalThis as unknown as { Bun: BunApi }).Bun;

export class SpecCache {
  /** What put() remembered: a list, and no private field (each costs its first use cold). */
  private readonly pending: { key: string; spec: CdiSpec }[] = [];

  /** `salt` stands in for the runtime's version (tests change it); by default Bun's. */
  constructor(readonly dir: string, private readonly salt = bun().version) {}

  /** A cache in `dir` where the runtime has the calls it needs (Bun), else null. */
  static open(dir: string | undefined): SpecCache | null {
    return dir !== undefined && "Bun" in globalThis ? new SpecCache(dir) : null;
  }

  /** The entry's name for this text. */
  key(format: SpecFormat, text: string): string {
    return bun().SHA256.hash(`gpu-bridge-host cdi-cache ${CACHE_FORMAT}\0${VERSION}\0${this.salt}\0${format}\0${text}`, "hex");
  }

  /**
   * The validated spec stored under `key`, or null (absent, unreadable, corrupt). Read with
   * Bun.mmap, at once and without Bun's I/O threads (one trip through them fewer on every
   * container's start). Bun opens a mapped file read-write: harmless here, an entry of this
   * user's own private folder, where this code writes anyway; never done to a spec (spec-fs-bun.ts).
   */
  get(key: string): CdiSpec | null {
    const path = `${this.dir}/${key}.json`;
    try {
      const size = bun().file(path).size; // 0 when absent
      if (!(size > 0 && size !== Infinity)) return null;
      const spec = JSON.parse(new TextDecoder().decode(bun().mmap(path, { shared: false }))) as CdiSpec;
      // A whole JSON object (a torn write is not valid JSON) of the right kind; anything else is a miss.
      return typeof spec === "object" && spec !== null && typeof spec.kind === "string" && Array.isArray(spec.devices) ? spec : null;
    } catch {
      return null;
    }
  }

  /** Remembers a spec validated without error; written by flush(). */
  put(key: string, spec: CdiSpec): void {
    this.pending.push({ key, spec });
  }

  /** Writes what put() remembered (atomically, then trims the folder); false when a write failed. */
  async flush(): Promise<boolean> {
    if (this.pending.length === 0) return true;
    const fs = await import("node:fs");
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      for (const { key, spec } of this.pending) {
        const tmp = `${this.dir}/.${key}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, JSON.stringify(spec), { mode: 0o600 });
        fs.renameSync(tmp, `${this.dir}/${key}.json`);
      }
      this.pending.length = 0;
      trim(fs, this.dir);
      return true;
    } catch {
      return false;
    }
  }
}

/** Removes the oldest entries past CACHE_ENTRIES (and temporary files a crash left behind). */
function trim(fs: typeof import("node:fs"), dir: string): void {
  const entries: { path: string; mtime: number }[] = [];
  for (const name of fs.readdirSync(dir)) {
    const path = `${dir}/${name}`;
    try {
      const st = fs.statSync(path);
      if (name.endsWith(".tmp") && Date.now() - st.mtimeMs > 60_000) fs.rmSync(path, { force: true });
      else if (name.endsWith(".json")) entries.push({ path, mtime: st.mtimeMs });
    } catch {
      // Removed meanwhile by another apply.
    }
  }
  entries.sort((a, b) => b.mtime - a.mtime);
  for (const e of entries.slice(CACHE_ENTRIES)) fs.rmSync(e.path, { force: true });
}
