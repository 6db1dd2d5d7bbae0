/**
 * A cache of validated specs for `cdi apply` and `cdi list`, which run on every container's
 * start. Reading a spec folder costs what the runtime charges on a cold start for parsing YAML
 * (Bun's parser: about 0.9 M instructions for nvidia-ctk's spec of a two-GPU host) and for
 * checking shape and rules (about 0.8 M more); a hit costs a hash, a read and a JSON.parse.
 *
 * - **Key**: SHA-256 of the spec text, its format, the cache format, the bridge's version, the
 *   runtime's, and the executable's size and mtime (a rebuilt binary starts afresh): an entry
 *   answers for exactly that text read by exactly this code, so an edited spec is a miss, never
 *   a stale answer. Only specs with no error are stored, and what is
 *   stored is the spec the validation returned, so a hit is what a miss would have computed.
 * - **Trust**: an entry decides what a container gets from the host, as a spec in a spec folder
 *   does, and is trusted as such a spec is: the folder must be writable by this user alone.
 *   The defaults are so by construction: `/run/gpu-bridge-host/cdi-cache` for root (only root
 *   may create below `/run`), `$XDG_RUNTIME_DIR/gpu-bridge-host/cdi-cache` for another user only
 *   where that is `/run/user/<uid>` (the user's own, made by logind; never one that `sudo -E`
 *   carried over), otherwise none. Checking ownership on every start would cost what the cache
 *   saves (Bun's stat loads node:fs), so it is checked when entries are written: this code
 *   never writes into a folder that it, or an ancestor, lets anyone else write (see
 *   trustedFolder). `--cache-dir` names another folder, `--no-cache` turns it off. Folders are
 *   made 0700, entries 0600, temporary files created exclusively, never through a symlink.
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
  file(path: string): { readonly size: number; readonly lastModified: number };
  mmap(path: string, o: { shared: boolean }): Uint8Array;
}
const bun = () => (globalThis as unknown as { Bun: BunApi }).Bun;

/** An entry's name, and a temporary file's: nothing else in the folder is ever touched. */
const ENTRY = /^[0-9a-f]{64}\.json$/;
const TEMPORARY = /^\.[0-9a-f]{64}\.\d+\.tmp$/;

/** The user this process acts as; undefined where the runtime has no uids. */
const euid = (): number | undefined => process.geteuid?.() ?? process.getuid?.();

/**
 * Whether `dir` is a folder for entries: owned by `uid` and writable by nobody else, each
 * ancestor owned by `uid` or root and writable by nobody else or sticky (as /tmp: there only an
 * entry's owner may rename it). Stats follow symlinks, and each link lives in a checked folder.
 * False for anything absent or unreadable.
 */
export function trustedFolder(dir: string, uid: number | undefined, stat: (path: string) => { uid: number; mode: number }): boolean {
  if (uid === undefined || !dir.startsWith("/")) return false;
  const paths: string[] = [];
  for (let p = dir.replace(/\/+$/, ""); p !== ""; p = p.slice(0, p.lastIndexOf("/"))) paths.push(p);
  paths.push("/");
  try {
    const stats = paths.map(stat);
    if (stats[0]!.uid !== uid || (stats[0]!.mode & 0o022) !== 0) return false;
    for (let i = 1; i < stats.length; i++) {
      const s = stats[i]!;
      if (s.uid !== uid && s.uid !== 0) return false;
      if ((s.mode & 0o022) !== 0 && (s.mode & 0o1000) === 0) return false;
    }
    return true;
  } catch {
    return false;
  }
}

export class SpecCache {
  /** What put() remembered: a list, and no private field (each costs its first use cold). */
  private readonly pending: { key: string; spec: CdiSpec }[] = [];

  /**
   * `salt` stands in for what identifies this code (tests change it): by default Bun's version
   * and the executable's size and mtime.
   */
  constructor(readonly dir: string, private readonly salt = buildSalt()) {}

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
   * user's own private folder, where this code writes anyway; never done to a spec
   * (spec-fs-bun.ts).
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

  /**
   * Writes what put() remembered, into a trusted folder only (made 0700 if absent): each entry
   * through a temporary file created exclusively and never through a symlink, then renamed;
   * then trims the folder. False when nothing could be written.
   */
  async flush(): Promise<boolean> {
    if (this.pending.length === 0) return true;
    const fs = await import("node:fs");
    const { writeFully } = await import("../util/files.ts");
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      if (!trustedFolder(this.dir, euid(), fs.statSync)) return false;
      const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
      for (const { key, spec } of this.pending) {
        const tmp = `${this.dir}/.${key}.${process.pid}.tmp`;
        fs.rmSync(tmp, { force: true });
        const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
        try {
          writeFully(fd, JSON.stringify(spec), tmp);
        } catch (error) {
          fs.rmSync(tmp, { force: true }); // a short entry is never renamed into place
          throw error;
        } finally {
          fs.closeSync(fd);
        }
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

/** Bun's version and the executable's size and mtime: a rebuilt binary does not read old entries. */
function buildSalt(): string {
  const exe = bun().file(process.execPath);
  return `${bun().version}\0${exe.size}\0${exe.lastModified}`;
}

/**
 * Removes the oldest entries past CACHE_ENTRIES, and temporary files a crash left behind: only
 * regular files with those names (lstat: a symlink is never followed).
 */
function trim(fs: typeof import("node:fs"), dir: string): void {
  const entries: { path: string; mtime: number }[] = [];
  for (const name of fs.readdirSync(dir)) {
    const entry = ENTRY.test(name);
    if (!entry && !TEMPORARY.test(name)) continue;
    const path = `${dir}/${name}`;
    try {
      const st = fs.lstatSync(path);
      if (!st.isFile()) continue;
      if (entry) entries.push({ path, mtime: st.mtimeMs });
      else if (Date.now() - st.mtimeMs > 60_000) fs.rmSync(path, { force: true });
    } catch {
      // Removed meanwhile by another apply.
    }
  }
  entries.sort((a, b) => b.mtime - a.mtime);
  for (const e of entries.slice(CACHE_ENTRIES)) fs.rmSync(e.path, { force: true });
}
