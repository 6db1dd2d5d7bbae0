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
 *   does, and is trusted as such a spec is: the folder must be this user's and writable by this
 *   user alone, each ancestor up to `/` root's or this user's and writable by nobody else (or
 *   sticky, as /tmp). That is checked on every start before any entry is read (Bun's stats, on
 *   its I/O threads, started when the cache is opened and overlapping the specs' reads), and
 *   again before anything is written: a folder another user made or can write is neither read
 *   nor written (see trustedFolder). Each entry also holds the key it was made for, the hash of
 *   the exact spec bytes it answers for, and is a miss unless that matches the bytes just read.
 *   The defaults are so by construction: `/run/gpu-bridge-host/cdi-cache` for root (only root
 *   may create below `/run`), `$XDG_RUNTIME_DIR/gpu-bridge-host/cdi-cache` for another user only
 *   where that is `/run/user/<uid>` (the user's own, made by logind; never one that `sudo -E`
 *   carried over), otherwise none. `--cache-dir` names another (absolute) folder, `--no-cache`
 *   turns it off. Folders are made 0700, entries 0600, temporary files created exclusively,
 *   never through a symlink.
 * - **Failure**: anything wrong with the cache (absent, unreadable, a corrupt entry, a full
 *   disk) is a miss, and a write that fails is skipped: the cache never fails a command.
 * - **Size**: at most CACHE_ENTRIES entries; a write past that removes the oldest.
 *
 * It reads and hashes through the runtime's own file calls (src/runtime/files.ts); writes load
 * node:fs, on a miss only. Where the runtime has no such calls (Deno) there is no cache.
 */
import { type FileOwner as Owner, type RuntimeFiles, runtimeFiles } from "../runtime/files.ts";
import type { SpecFormat } from "./spec-format.ts";
import type { CdiSpec } from "./schema.ts";
import { VERSION } from "../util/version.ts";

/** Entries kept; the bridge's own spec changes with every lease, nvidia-ctk's with the driver. */
export const CACHE_ENTRIES = 32;
/** Bumped when what an entry holds, or how a spec is validated, changes. */
const CACHE_FORMAT = 2;

/** A cache asked of a runtime without the file calls it needs (SpecCache.open gives null there instead). */
export class SpecCacheError extends Error {
  override name = "SpecCacheError";
}

/** An entry's name, and a temporary file's: nothing else in the folder is ever touched. */
const ENTRY = /^[0-9a-f]{64}\.json$/;
const TEMPORARY = /^\.[0-9a-f]{64}\.\d+\.tmp$/;

/** The user this process acts as; undefined where the runtime has no uids. */
const euid = (): number | undefined => process.geteuid?.() ?? process.getuid?.();

/** `dir` and each of its ancestors up to `/`, `dir` first; null for a relative path. */
function lineage(dir: string): string[] | null {
  if (!dir.startsWith("/")) return null;
  const paths: string[] = [];
  for (let p = dir.replace(/\/+$/, ""); p !== ""; p = p.slice(0, p.lastIndexOf("/"))) paths.push(p);
  paths.push("/");
  return paths;
}

/** The verdict on lineage()'s stats (see trustedFolder). Plain loops: it runs on every start. */
function trusts(stats: readonly Owner[], uid: number): boolean {
  if (stats[0]!.uid !== uid || (stats[0]!.mode & 0o022) !== 0) return false;
  for (let i = 1; i < stats.length; i++) {
    const s = stats[i]!;
    if (s.uid !== uid && s.uid !== 0) return false;
    if ((s.mode & 0o022) !== 0 && (s.mode & 0o1000) === 0) return false;
  }
  return true;
}

/**
 * Whether `dir` is a folder for entries: owned by `uid` and writable by nobody else, each
 * ancestor owned by `uid` or root and writable by nobody else or sticky (as /tmp: there only an
 * entry's owner may rename it). Stats follow symlinks, and each link lives in a checked folder.
 * False for anything absent or unreadable.
 */
export function trustedFolder(dir: string, uid: number | undefined, stat: (path: string) => Owner): boolean {
  const paths = lineage(dir);
  if (uid === undefined || paths === null) return false;
  try {
    return trusts(paths.map(stat), uid);
  } catch {
    return false;
  }
}

/**
 * trustedFolder() with an asynchronous stat: every stat is started at once (Bun's are served by
 * its I/O threads, alongside the reads of the specs and config.json), then the verdict waits.
 */
export async function trustedFolderAsync(dir: string, uid: number | undefined, stat: (path: string) => Promise<Owner>): Promise<boolean> {
  const paths = lineage(dir);
  if (uid === undefined || paths === null) return false;
  const pending: Promise<Owner>[] = [];
  for (let i = 0; i < paths.length; i++) pending.push(stat(paths[i]!));
  const stats: Owner[] = [];
  let ok = true;
  // Each awaited, so none is left rejected and unheard.
  for (let i = 0; i < pending.length; i++) {
    try {
      stats.push(await pending[i]!);
    } catch {
      ok = false;
    }
  }
  return ok && trusts(stats, uid);
}

/** What an entry file holds: the key it was made for (the spec text's hash), and the spec. */
interface Entry {
  readonly key: string;
  readonly spec: CdiSpec;
}

export class SpecCache {
  /** What put() remembered: a list, and no private field (each costs its first use cold). */
  private readonly pending: { key: string; spec: Entry }[] = [];
  /** Whether the folder may be read: started here, so the stats overlap the specs' reads. */
  private readonly trust: Promise<boolean>;

  /** The runtime's file calls the cache reads and hashes with. */
  private readonly rt: RuntimeFiles;
  /** What identifies this code in every key. */
  private readonly salt: string;

  /**
   * `salt` stands in for what identifies this code (tests change it): by default the runtime's
   * build (its version, the executable's size and mtime). `stat` (tests) stands in for the
   * runtime's, which runs on its I/O threads (node:fs's would cost its load on every start).
   */
  constructor(readonly dir: string, salt?: string, stat?: (path: string) => Promise<Owner>, rt: RuntimeFiles | null = runtimeFiles()) {
    if (rt === null) throw new SpecCacheError("The validated-spec cache needs the runtime's own file calls; this runtime has none");
    this.rt = rt;
    this.salt = salt ?? rt.buildId();
    this.trust = trustedFolderAsync(dir, euid(), stat ?? rt.stat);
  }

  /**
   * Whether entries may be read: the folder passes trustedFolder() now. A folder another user
   * could write is never read (its entries would decide what a container gets from the host),
   * nor written (flush). Checked on every start, before the first entry is read.
   */
  readable(): Promise<boolean> {
    return this.trust;
  }

  /** A cache in `dir` where the runtime has the calls it needs (src/runtime/files.ts), else null. */
  static open(dir: string | undefined): SpecCache | null {
    const rt = runtimeFiles();
    return dir !== undefined && rt !== null ? new SpecCache(dir, undefined, undefined, rt) : null;
  }

  /** The entry's name for this text. */
  key(format: SpecFormat, text: string): string {
    return this.rt.sha256Hex(`gpu-bridge-host cdi-cache ${CACHE_FORMAT}\0${VERSION}\0${this.salt}\0${format}\0${text}`);
  }

  /**
   * The validated spec stored under `key`, or null (absent, unreadable, corrupt). Mapped
   * (RuntimeFiles.mapFile), at once and without the runtime's I/O threads (one trip through them
   * fewer on every container's start). The runtime opens a mapped file read-write: harmless
   * here, an entry of this user's own private folder, where this code writes anyway; never done
   * to a spec (spec-fs.ts).
   */
  get(key: string): CdiSpec | null {
    const path = `${this.dir}/${key}.json`;
    try {
      const size = this.rt.sizeOf(path); // 0 when absent
      if (!(size > 0 && size !== Infinity)) return null;
      const entry = JSON.parse(new TextDecoder().decode(this.rt.mapFile(path))) as Entry;
      // A whole JSON object (a torn write is not valid JSON) made for exactly this key, so for
      // exactly the bytes just read (an entry copied or renamed under another key is a miss), of
      // the right kind; anything else is a miss.
      if (typeof entry !== "object" || entry === null || entry.key !== key) return null;
      const spec = entry.spec;
      return typeof spec === "object" && spec !== null && typeof spec.kind === "string" && Array.isArray(spec.devices) ? spec : null;
    } catch {
      return null;
    }
  }

  /** Remembers a spec validated without error; written by flush(). */
  put(key: string, spec: CdiSpec): void {
    this.pending.push({ key, spec: { key, spec } });
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
