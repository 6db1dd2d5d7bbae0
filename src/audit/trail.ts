/**
 * The audit trail: every change of the bridge's record (src/changes/record.ts), one chained JSON
 * line each (src/audit/chain.ts), appended to `<state-dir>/audit/audit-NNNNNNNN.jsonl`. It is a
 * listener of that record, never a channel of its own.
 *
 * - **Rotation.** Past `fileBytes` a new file starts with an anchor line naming the previous file
 *   and its last change, chained to that file's last line; past `maxFiles` the oldest goes, and
 *   what remains still verifies from its first anchor.
 * - **Durability.** `fsync: "record"` syncs every line before the change's producer goes on;
 *   `"batch"` writes every line at once (whole lines: a failed write is cut back) and syncs in the
 *   background, one sync covering every line written while the previous one ran (group commit).
 * - **Start.** Bytes after the last newline (a write torn by a crash) are moved aside to
 *   `<file>.torn` with a warning, never kept in the chain; the trail's last change id is what the
 *   record's numbering continues from (`lastId`).
 * - **A line that cannot be written** (a full disk) does not undo the change, which has already
 *   happened: it is logged as an error, counted, and once lines can be written again a gap line
 *   declares the ids that are missing, so the chain stays whole and says what it lacks.
 */
import { closeSync, constants, fsync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, truncateSync } from "node:fs";
import { join } from "node:path";
import type { Change } from "../changes/record.ts";
import { appendFully, DiskWriteError, syncDir, writeFully } from "../util/files.ts";
import type { Logger } from "../util/log.ts";
import { sha256Hex } from "../util/sha256.ts";
import { chainLine, GENESIS, lastIdOf, parseTrailLine, trailFileName } from "./chain.ts";
import { trailFiles } from "./verify.ts";

/** How lines reach the disk. */
export type AuditFsync = "record" | "batch";
export const AUDIT_FSYNC_MODES: readonly AuditFsync[] = ["record", "batch"];

export interface AuditTrailOptions {
  /** The trail's folder (`<state-dir>/audit`). */
  readonly dir: string;
  readonly log: Logger;
  /** A file rolls to the next past this many bytes. */
  readonly fileBytes: number;
  /** At most this many files are kept; the oldest goes first. */
  readonly maxFiles: number;
  readonly fsync: AuditFsync;
}

/** Where a trail goes on from, as found on disk at start (`scanTrail`). */
export interface TrailStart {
  /** The number of the file to write. */
  readonly n: number;
  /** The hash of the last line (GENESIS for none). */
  readonly prev: string;
  /** The id of the last change the trail holds (0: none). */
  readonly lastId: number;
  /** Bytes already in file `n`. */
  readonly size: number;
  /** The file that file `n` must open with an anchor to (null: none). */
  readonly anchorFrom: string | null;
}

/** What the bridge and the benchmark need of a trail, on this thread or on a worker (threaded.ts). */
export interface Trail {
  /** The id of the last change handled (0 when empty): the record's numbering goes on from it. */
  readonly lastId: number;
  /** Whether the last attempt to write failed. */
  readonly failing: boolean;
  /** Changes that could not be written since start. */
  readonly failures: number;
  /** fsync calls made, for the benchmark. */
  readonly syncs: number;
  /** Takes `change` (a listener of the record). Never throws for the disk. */
  append(change: Change): void;
  /** Writes what waits now, before returning (a reader of the files is about to look). */
  writePending(): void;
  /** Resolves once every change taken is written to the file (not yet synced). */
  written(): Promise<void>;
  /** Writes what waits, and resolves once every line is synced. */
  flush(): Promise<void>;
  /** Syncs and closes. */
  close(): Promise<void>;
}

/**
 * Reads where the trail in `o.dir` goes on from (creating the folder), moving a torn tail
 * aside; a damaged last line is left as evidence and the trail goes on in a new file.
 */
export function scanTrail(o: AuditTrailOptions): TrailStart {
  if (!Number.isSafeInteger(o.fileBytes) || o.fileBytes < 1024) {
    throw new RangeError(`fileBytes must be at least 1024, got ${o.fileBytes}`);
  }
  if (!Number.isSafeInteger(o.maxFiles) || o.maxFiles < 1) throw new RangeError(`maxFiles must be a positive integer, got ${o.maxFiles}`);
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const files = trailFiles(o.dir);
  const last = files.at(-1);
  if (last === undefined) return { n: 1, prev: GENESIS, lastId: 0, size: 0, anchorFrom: null };
  const path = join(o.dir, last.name);
  const text = readFileSync(path, "utf8");
  const cut = text.lastIndexOf("\n") + 1;
  if (cut < text.length) {
    // A crash mid-write: the partial line is kept beside the trail for a person, not chained.
    writeAside(`${path}.torn`, text.slice(cut));
    truncateSync(path, Buffer.byteLength(text.slice(0, cut)));
    o.log.warn(`${last.name} ended in ${Buffer.byteLength(text.slice(cut))} bytes of a torn write; moved to ${last.name}.torn`);
  }
  const lines = text.slice(0, cut).split("\n").slice(0, -1);
  const tail = lines.at(-1);
  if (tail === undefined) {
    // An empty last file: written from its start (an anchor first when it is not the first file).
    const before = files.at(-2);
    return before === undefined ? { n: last.n, prev: GENESIS, lastId: 0, size: 0, anchorFrom: null } : startAfter(o, before.name, last.n);
  }
  const parsed = parseTrailLine(tail);
  if (typeof parsed === "string") {
    // Damage is evidence: it stays, `audit verify` names it, and new lines go to a new file.
    o.log.error(
      `the last line of ${last.name} is damaged (${parsed}); continuing in a new file; run 'gpu-bridge-host audit verify ${o.dir}'`,
    );
    let lastId = 0;
    for (const l of [...lines].reverse()) {
      const p = parseTrailLine(l);
      if (typeof p !== "string") {
        lastId = lastIdOf(p);
        break;
      }
    }
    return { n: last.n + 1, prev: sha256Hex(tail), lastId, size: 0, anchorFrom: last.name };
  }
  return { n: last.n, prev: sha256Hex(tail), lastId: lastIdOf(parsed), size: Buffer.byteLength(text.slice(0, cut)), anchorFrom: null };
}

/** A trail continuing in file `n` after `before` (whose last line is read for the chain). */
function startAfter(o: AuditTrailOptions, before: string, n: number): TrailStart {
  const lines = readFileSync(join(o.dir, before), "utf8").split("\n").filter((l) => l !== "");
  const tail = lines.at(-1);
  const parsed = tail === undefined ? "empty" : parseTrailLine(tail);
  return {
    n,
    prev: tail === undefined ? GENESIS : sha256Hex(tail),
    lastId: typeof parsed === "string" ? 0 : lastIdOf(parsed),
    size: 0,
    anchorFrom: before,
  };
}

/** The trail's writer, on the thread it is called on (threaded.ts runs one on a worker). */
export class AuditTrail implements Trail {
  readonly #o: AuditTrailOptions;
  #n: number;
  #size: number;
  #fd: number | null = null;
  #prev: string;
  #lastId: number;
  /** The file the current one must open with an anchor to (null: none, or written already). */
  #anchorFrom: string | null;
  /** The first id not written since lines last failed, else null. */
  #gapFrom: number | null = null;
  #gapError = "";
  /** Background sync state (batch mode). */
  #syncing: number | null = null;
  #dirty = false;
  #closeAfterSync: number[] = [];
  #idle: (() => void)[] = [];
  /** The newest change handed to the trail (written or waiting for the end of the turn). */
  #lastSeen: number;
  /** Batch mode: the changes of this turn, written together at its end. */
  #pending: Change[] = [];
  /** Changes that could not be written since start. */
  failures = 0;
  /** fsync calls made, for the benchmark. */
  syncs = 0;

  /** A writer going on from `start` (what `scanTrail` found). */
  constructor(o: AuditTrailOptions, start: TrailStart) {
    this.#o = o;
    this.#n = start.n;
    this.#size = start.size;
    this.#prev = start.prev;
    this.#lastId = start.lastId;
    this.#lastSeen = start.lastId;
    this.#anchorFrom = start.anchorFrom;
  }

  /** Opens (creating) the trail in `o.dir`, moving a torn tail aside. */
  static open(o: AuditTrailOptions): AuditTrail {
    return new AuditTrail(o, scanTrail(o));
  }

  /** The id of the last change the trail holds (0 when empty): the record's numbering goes on from it. */
  get lastId(): number {
    return this.#lastId;
  }

  /** The hash of the last line written. */
  get lastHash(): string {
    return this.#prev;
  }

  /** Whether the last attempt to write failed. */
  get failing(): boolean {
    return this.#gapFrom !== null;
  }

  /** Writes `change` (a listener of the record). Never throws for the disk: see the header. */
  append(change: Change): void {
    if (outOfOrder(change, this.#lastSeen, this.#o.log)) {
      this.failures++;
      return;
    }
    this.#lastSeen = change.id;
    if (this.#o.fsync === "record") return this.#writeAll([change]);
    // Batch: the changes of one turn of the event loop are written together at its end.
    this.#pending.push(change);
    if (this.#pending.length === 1) queueMicrotask(() => this.#writePending());
  }

  /** Writes the changes waiting for the end of the turn now (a reader of the files is about to look). */
  writePending(): void {
    this.#writePending();
  }

  #writePending(): void {
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length > 0) this.#writeAll(batch);
  }

  /** Writes `changes` in order as whole lines, rolling files where they fill; a failure makes a gap. */
  #writeAll(changes: readonly Change[]): void {
    let i = 0;
    while (i < changes.length) {
      try {
        let bytes = "";
        let prev = this.#prev;
        const add = (body: Readonly<Record<string, unknown>>) => {
          const { line, hash } = chainLine(body, prev);
          bytes += line + "\n";
          prev = hash;
        };
        this.#open(add);
        let last = this.#lastId;
        let n = 0;
        while (i + n < changes.length) {
          const change = changes[i + n]!;
          const missingFrom = (n === 0 ? this.#gapFrom : null) ?? (change.id > last + 1 ? last + 1 : null);
          if (missingFrom !== null) {
            add({ gap: { from: missingFrom, to: change.id - 1, error: this.#gapError || "not recorded by this trail" } });
          }
          add(change as unknown as Readonly<Record<string, unknown>>);
          last = change.id;
          n++;
          // The rest goes to the next file once this one is full (string length: near enough for a size cap).
          if (this.#size + bytes.length >= this.#o.fileBytes) break;
        }
        this.#write(bytes);
        this.#prev = prev;
        this.#lastId = last;
        this.#anchorFrom = null;
        if (this.#gapFrom !== null) this.#o.log.info(`the trail is written again from change ${changes[i]!.id}`);
        this.#gapFrom = null;
        i += n;
      } catch (error) {
        this.failures += changes.length - i;
        if (this.#gapFrom === null) {
          const c = changes[i]!;
          this.#gapFrom = c.id;
          this.#gapError = (error as Error).message;
          this.#o.log.error(
            `cannot write change ${c.id} (${c.type}) to the trail: ${(error as Error).message}; ` +
              "the change stands, and a gap line will name what is missing",
          );
        }
        return;
      }
    }
  }

  /** Opens the file to write (rolling past `fileBytes` and adding its anchor). */
  #open(add: (body: Record<string, unknown>) => void): void {
    if (this.#size > 0 && this.#size >= this.#o.fileBytes) {
      if (this.#fd !== null) this.#finishFile();
      this.#anchorFrom = trailFileName(this.#n);
      this.#n++;
      this.#size = 0;
    }
    if (this.#fd === null) {
      const path = join(this.#o.dir, trailFileName(this.#n));
      try {
        this.#fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
      } catch (error) {
        throw new DiskWriteError(path, error);
      }
      if (this.#size === 0) this.#retain();
    }
    if (this.#size === 0 && this.#anchorFrom !== null) add({ anchor: { file: this.#anchorFrom, last_id: this.#lastId } });
  }

  #write(bytes: string): void {
    const data = new TextEncoder().encode(bytes);
    const path = join(this.#o.dir, trailFileName(this.#n));
    if (this.#o.fsync === "record") {
      appendFully(this.#fd!, data, path, this.#size, (fd) => {
        fsyncSync(fd);
        this.syncs++;
      });
    } else {
      appendFully(this.#fd!, data, path, this.#size, false);
      this.#syncSoon();
    }
    this.#size += data.length;
  }

  /** Batch mode: one background fsync at a time, the next covering all written meanwhile. */
  #syncSoon(): void {
    if (this.#syncing !== null) {
      this.#dirty = true;
      return;
    }
    const fd = this.#fd!;
    this.#syncing = fd;
    this.#dirty = false;
    this.syncs++;
    fsync(fd, (error) => {
      if (error) this.#o.log.error(`cannot sync the trail: ${error.message}`);
      this.#syncing = null;
      for (const f of this.#closeAfterSync.splice(0)) closeSync(f);
      if (this.#dirty && this.#fd !== null) this.#syncSoon();
      else for (const resolve of this.#idle.splice(0)) resolve();
    });
  }

  /** Syncs and closes the current file (its lines are durable before the next file starts). */
  #finishFile(): void {
    const fd = this.#fd!;
    this.#fd = null;
    try {
      fsyncSync(fd);
    } catch (error) {
      this.#o.log.error(`cannot sync ${trailFileName(this.#n)}: ${(error as Error).message}`);
    }
    if (this.#syncing === fd) this.#closeAfterSync.push(fd);
    else closeSync(fd);
    this.#dirty = false;
  }

  /** Drops the oldest files past `maxFiles` (the new file counts). */
  #retain(): void {
    const files = trailFiles(this.#o.dir);
    for (const f of files.slice(0, Math.max(0, files.length - this.#o.maxFiles))) {
      rmSync(join(this.#o.dir, f.name), { force: true });
      this.#o.log.info(`dropped ${f.name} (the trail keeps ${this.#o.maxFiles} files)`);
    }
    syncDir(this.#o.dir);
  }

  /** Writes what waits for the end of the turn now. */
  written(): Promise<void> {
    this.#writePending();
    return Promise.resolve();
  }

  /** Writes what waits for the end of the turn, and resolves once every line is synced. */
  flush(): Promise<void> {
    this.#writePending();
    if (this.#syncing === null && !this.#dirty) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Syncs and closes. */
  async close(): Promise<void> {
    await this.flush();
    if (this.#fd !== null) this.#finishFile();
  }
}

/** Whether `change` comes too late to be written after `lastSeen` (said in the log when it does). */
export function outOfOrder(change: Change, lastSeen: number, log: Logger): boolean {
  if (change.id > lastSeen) return false;
  log.error(
    `change ${change.id} (${change.type}) comes after change ${lastSeen}; not written (is the record's firstId the trail's last id + 1?)`,
  );
  return true;
}

/** Writes `text` to `path` (creating it), for what a person should see but the chain must not hold. */
function writeAside(path: string, text: string): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
  try {
    writeFully(fd, text, path);
  } finally {
    closeSync(fd);
  }
}
