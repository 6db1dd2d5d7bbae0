/**
 * The local telemetry spool: append-only, crash-safe, bounded. Records are CBOR, framed as
 * `[u32 length][u32 crc32][bytes]` in numbered segment files, and synced to disk before an
 * append returns (so before the record is acknowledged). At start-up every segment is checked:
 * a torn tail (a crash mid-write) is cut off with a warning, never accepted. Past the size cap
 * the oldest segment is dropped, with a counted warning. Forwarding progress (down to the chunk
 * of the record in flight) is saved with each acknowledged chunk, so nothing is lost or sent
 * twice across link drops and restarts.
 */
import { concatBytes } from "../util/bytes.ts";
import { decodeCbor, encodeCbor } from "../util/cbor.ts";
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  truncateSync,
  unlinkSync,
} from "node:fs";
import { join } from "node:path";
import type { Logger } from "../util/log.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { crc32 } from "node:zlib";
import { appendFully, DiskWriteError, openRegular, replaceFileDurably, syncFully } from "../util/files.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import * as v from "valibot";
import { describeIssue } from "../util/issues.ts";

/** Where forwarding stands: the next record to send, and how far into it. */
export interface Progress {
  /** Segment number and record index of the record in flight (or next). */
  seg: number;
  index: number;
  /** Chunks of that record the Queen has acknowledged. */
  chunk: number;
  /** The Queen segment being appended to, its next seq and its bytes so far (null: ask for one). */
  queenSeg: string | null;
  seq: number;
  queenBytes: number;
}

export interface SpoolOptions {
  readonly dir: string;
  readonly log: Logger;
  /** Roll to a new segment file past this size (default DEFAULTS.spoolSegmentBytes). */
  readonly segmentBytes?: number;
  /** Drop the oldest segment past this total (default: `--spool-max-mb`'s). */
  readonly capBytes?: number;
  /** Sync appends and progress to disk (default true; benchmarks measure both). */
  readonly sync?: boolean;
  /** Read without repairing or writing anything (export, while a daemon may be appending). */
  readonly readOnly?: boolean;
  /** Times arrivals, for the age of the oldest record not yet forwarded (default: the system clock). */
  readonly clock?: Clock;
}

interface Segment {
  readonly n: number;
  readonly path: string;
  /** Byte offset of each record's frame. */
  readonly offsets: number[];
  bytes: number;
  /**
   * When records arrived: each entry covers the records from `index` on, until the next entry.
   * One entry per second at most (an age is read in seconds), so it stays small. Records found
   * at start-up count from the segment file's last change (they are at least that old).
   */
  readonly arrivals: { index: number; at: number }[];
}

const HEADER = 8;
/**
 * The largest frame body a scan believes: a record is at most 4096 bytes of canonical JSON and
 * its CBOR is no larger than twice that. A length past it is damage, not a record.
 */
export const MAX_FRAME_BODY = 16 * 1024;

const count = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));
/** `progress.json`, checked field by field: a damaged file must not skip or delete records. */
const ProgressFile = v.strictObject({
  seg: v.pipe(count, v.minValue(1)),
  index: count,
  chunk: count,
  queenSeg: v.nullable(v.pipe(v.string(), v.regex(/^[A-Za-z0-9._-]{1,64}$/))),
  seq: v.pipe(count, v.minValue(1)),
  queenBytes: count,
});

const name = (n: number) => `seg-${String(n).padStart(8, "0")}.spool`;

export class Spool {
  readonly #o: Required<SpoolOptions>;
  readonly #segments: Segment[] = [];
  #fd: number | null = null;
  #progress: Progress;
  /** The highest segment number named in the directory, usable or not (never reused). */
  #highest = 0;
  /** Records dropped by the size cap since start, and damaged frames skipped at start-up. */
  dropped = 0;
  /** Bytes of damaged frames skipped at start-up (a CRC or length that does not check out). */
  damagedBytes = 0;
  /** fsync calls and their total time, for the benchmark. */
  syncs = 0;
  syncMs = 0;

  private constructor(o: Required<SpoolOptions>) {
    this.#o = o;
    this.#progress = { seg: 1, index: 0, chunk: 0, queenSeg: null, seq: 1, queenBytes: 0 };
  }

  /** Opens (creating) the spool in `dir`, repairing torn tails. */
  static open(options: SpoolOptions): Spool {
    const spool = new Spool({
      segmentBytes: DEFAULTS.spoolSegmentBytes,
      capBytes: DEFAULTS.spoolMaxMb << 20,
      sync: true,
      readOnly: false,
      clock: systemClock,
      ...options,
    });
    if (!options.readOnly) mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    else if (!existsSync(options.dir)) return spool;
    for (const file of readdirSync(options.dir).filter((f) => /^seg-\d{8}\.spool$/.test(f)).sort()) {
      const n = Number(file.slice(4, 12));
      spool.#highest = Math.max(spool.#highest, n);
      const seg = spool.#scan(n, join(options.dir, file));
      if (seg !== null) spool.#segments.push(seg);
    }
    const saved = join(options.dir, "progress.json");
    if (existsSync(saved)) {
      const problem = spool.#loadProgress(saved);
      if (problem !== null) {
        // Resending from the oldest record is safe (the Queen counts seqs per segment, and a
        // fresh segment is asked for); skipping or deleting records on a damaged file is not.
        spool.#progress = { seg: spool.#segments[0]?.n ?? 1, index: 0, chunk: 0, queenSeg: null, seq: 1, queenBytes: 0 };
        options.log.warn(`spool: ${saved} ${problem}; forwarding restarts at the oldest spooled record (some may reach the Queen twice)`);
      }
    }
    if (!options.readOnly) spool.#clampProgress();
    return spool;
  }

  /**
   * Appends records and syncs them to disk before returning. Writes fully or not at all: on a
   * full (or failing) disk it throws `DiskWriteError`, the segment is cut back to its last whole
   * frame, and none of the records is indexed, so nothing is acknowledged that is not on disk.
   */
  append(records: readonly unknown[]): void {
    if (this.#o.readOnly) throw new Error("Cannot append: the spool was opened read-only");
    if (records.length === 0) return;
    const frames: Uint8Array[] = [];
    for (const r of records) {
      // Plain CBOR per frame: with cbor-x's default shared "record" structures, a frame read
      // alone after a restart would decode as {}.
      const body = encodeCbor(r);
      // A frame a scan would not believe would be acknowledged now and lost at the next start.
      if (body.length > MAX_FRAME_BODY) {
        throw new RangeError(`Cannot spool a record of ${body.length} bytes of CBOR: the bound is ${MAX_FRAME_BODY}`);
      }
      const frame = new Uint8Array(HEADER + body.length);
      const view = new DataView(frame.buffer);
      view.setUint32(0, body.length, true);
      view.setUint32(4, crc32(body), true);
      frame.set(body, HEADER);
      frames.push(frame);
    }
    let seg = this.#segments.at(-1);
    // A segment deleted from under the spool would take appends to a file nobody can read again.
    if (seg !== undefined && this.#fd !== null && fstatSync(this.#fd).nlink === 0) {
      this.#lose(seg);
      seg = this.#segments.at(-1);
    }
    if (seg === undefined || seg.bytes >= this.#o.segmentBytes || this.#fd === null) seg = this.#openForAppend(seg);
    const offsets: number[] = [];
    let at = seg.bytes;
    for (const frame of frames) {
      offsets.push(at);
      at += frame.length;
    }
    appendFully(this.#fd!, concatBytes(frames), seg.path, seg.bytes, (fd) => this.#sync(fd, seg.path));
    // Indexed only once wholly on disk: a failed write leaves no records that are not there.
    const now = this.#o.clock.now();
    const last = seg.arrivals.at(-1);
    if (last === undefined || now - last.at >= 1000) seg.arrivals.push({ index: seg.offsets.length, at: now });
    seg.offsets.push(...offsets);
    seg.bytes = at;
    // A forwarder caught up with the end of the previous segment moves on to this one.
    this.#clampProgress();
    this.#enforceCap();
  }

  /** The record at the forwarding position, or null when everything was forwarded. */
  next(): { record: unknown; progress: Readonly<Progress> } | null {
    for (;;) {
      const p = this.#progress;
      const seg = this.#segments.find((s) => s.n === p.seg);
      if (seg === undefined || p.index >= seg.offsets.length) return null;
      try {
        return { record: this.#read(seg, p.index), progress: p };
      } catch (error) {
        // Deleted from under the spool (by hand): its records are lost, counted, and forwarding
        // goes on with the next segment rather than failing every step.
        if ((error as { code?: string }).code !== "ENOENT") throw error;
        this.#lose(seg);
      }
    }
  }

  /**
   * Records progress within the record in flight. `durable: false` keeps it in memory only
   * (enough to resume after a dropped link); after a crash the forwarder reads the Queen segment
   * back and skips the chunks it already holds.
   */
  /**
   * Up to `max` records from the current position on, across segment files, each with its place
   * (`seg`, `index`): what a forwarder may put in flight before the first is acknowledged. Read
   * lazily, one record per step, so a consumer that stops early reads no more; it must not
   * append or advance while iterating.
   */
  *upcoming(max: number): Generator<{ record: unknown; seg: number; index: number }> {
    const p = this.#progress;
    let n = 0;
    for (const seg of this.#segments) {
      if (seg.n < p.seg) continue;
      for (let i = seg.n === p.seg ? p.index : 0; i < seg.offsets.length; i++) {
        if (n++ >= max) return;
        let record: unknown;
        try {
          record = this.#read(seg, i);
        } catch (error) {
          // A segment deleted by hand ends the batch here; next() counts it when it is reached.
          if ((error as { code?: string }).code === "ENOENT") return;
          throw error;
        }
        yield { record, seg: seg.n, index: i };
      }
    }
  }

  saveProgress(update: Partial<Progress>, durable = true): void {
    Object.assign(this.#progress, update);
    if (durable) this.#persist();
  }

  /**
   * The record in flight is fully acknowledged: move past it, deleting consumed segments. With
   * `durable` false the position is synced later (saveProgress): lagging behind the Queen is
   * safe, since the forwarder reads the Queen segment back before sending anything again.
   */
  advance(queen: Pick<Progress, "queenSeg" | "seq" | "queenBytes">, durable = true): void {
    const p = this.#progress;
    Object.assign(p, queen, { index: p.index + 1, chunk: 0 });
    this.#clampProgress();
    if (durable) this.#persist();
  }

  /**
   * Every record still spooled, oldest first (for export). A segment a running bridge deletes
   * meanwhile (fully forwarded) is passed over: its records have left the spool.
   */
  *records(): Generator<unknown> {
    for (const seg of this.#segments) {
      for (let i = 0; i < seg.offsets.length; i++) {
        let record: unknown;
        try {
          record = this.#read(seg, i);
        } catch (error) {
          if ((error as { code?: string }).code === "ENOENT") break;
          throw error;
        }
        yield record;
      }
    }
  }

  /** Records and bytes waiting, for metrics. */
  stats(): { records: number; bytes: number; segments: number } {
    const p = this.#progress;
    let records = 0;
    for (const s of this.#segments) records += s.n < p.seg ? 0 : s.n === p.seg ? s.offsets.length - p.index : s.offsets.length;
    return { records, bytes: this.#segments.reduce((n, s) => n + s.bytes, 0), segments: this.#segments.length };
  }

  /**
   * How long the oldest record not yet forwarded has waited, in milliseconds (to the second:
   * arrivals are kept per second); null when every record was forwarded.
   */
  oldestWaitingMs(): number | null {
    const p = this.#progress;
    for (const seg of this.#segments) {
      const from = seg.n < p.seg ? seg.offsets.length : seg.n === p.seg ? p.index : 0;
      if (from >= seg.offsets.length) continue;
      const arrival = seg.arrivals.findLast((a) => a.index <= from) ?? seg.arrivals[0];
      return arrival === undefined ? null : Math.max(0, this.#o.clock.now() - arrival.at);
    }
    return null;
  }

  get progress(): Readonly<Progress> {
    return this.#progress;
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }

  /** Checks `progress.json`; returns what is wrong with it, or null once it is adopted. */
  #loadProgress(path: string): string | null {
    let raw: unknown;
    try {
      const fd = openRegular(path);
      try {
        raw = JSON.parse(readFileSync(fd, "utf8"));
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      return `is unreadable (${error instanceof Error ? error.message : String(error)})`;
    }
    const parsed = v.safeParse(ProgressFile, raw);
    if (!parsed.success) {
      const d = describeIssue(parsed.issues[0], "progress");
      return `is damaged (${d.field}: ${d.message})`;
    }
    const p = parsed.output;
    const first = this.#segments[0]?.n ?? 1;
    const last = this.#segments.at(-1)?.n ?? 0;
    const seg = this.#segments.find((s) => s.n === p.seg);
    // A position past everything spooled would delete every segment as "forwarded".
    if (p.seg > last + 1 || (seg !== undefined && p.index > seg.offsets.length) || (seg === undefined && p.seg >= first && p.seg <= last)) {
      return `points past the spooled records (segment ${p.seg}, record ${p.index})`;
    }
    this.#progress = p;
    return null;
  }

  /**
   * Reads a segment's frames. A frame whose length or CRC does not check out is damage if a
   * valid frame follows it (skipped, counted, the rest kept), and a torn tail if none does (a
   * crash mid-write: cut off). Anything but a regular file is left alone with a warning.
   */
  #scan(n: number, path: string): Segment | null {
    let data: Buffer;
    let mtime: number;
    try {
      const fd = openRegular(path);
      try {
        mtime = fstatSync(fd).mtimeMs;
        data = readFileSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      // Gone since the directory was listed (a running bridge deleted a forwarded segment).
      if ((error as { code?: string }).code === "ENOENT") return null;
      this.#o.log.warn(`spool: skipping ${path}: ${error instanceof Error ? error.message : String(error)}`);
      return null;
    }
    const offsets: number[] = [];
    let at = 0;
    let damaged = 0;
    let regions = 0;
    while (at < data.length) {
      if (validFrame(data, at)) {
        offsets.push(at);
        at += HEADER + data.readUInt32LE(at);
        continue;
      }
      const next = resync(data, at + 1);
      if (next < 0) break; // nothing valid follows: a torn tail
      damaged += next - at;
      regions++;
      at = next;
    }
    if (regions > 0) {
      this.damagedBytes += damaged;
      this.dropped += regions;
      this.#o.log.warn(
        `spool: ${name(n)} is damaged: skipped ${damaged} bytes in ${regions} place(s) that fail their CRC or length ` +
          `(at least ${regions} record(s) lost); kept ${offsets.length} good records`,
      );
    }
    if (at < data.length && this.#o.readOnly) {
      // Maybe a record being written right now: leave the file alone, read what is whole.
    } else if (at < data.length) {
      this.#o.log.warn(
        `spool: ${name(n)} has a torn tail of ${
          data.length - at
        } bytes after ${offsets.length} good records (a crash mid-write); cut it off`,
      );
      truncateSync(path, at);
    }
    const changed = Math.min(this.#o.clock.now(), mtime);
    return { n, path, offsets, bytes: at, arrivals: offsets.length > 0 ? [{ index: 0, at: changed }] : [] };
  }

  #read(seg: Segment, index: number): unknown {
    const fd = openRegular(seg.path);
    try {
      const header = new Uint8Array(HEADER);
      const offset = seg.offsets[index]!;
      readAt(fd, header, offset);
      const len = new DataView(header.buffer).getUint32(0, true);
      const body = new Uint8Array(len);
      readAt(fd, body, offset + HEADER);
      return decodeCbor(body);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The segment to append to, with its file open for writing: `seg` again (after a restart, or
   * a failed write closed it) unless it is full, else a new one, listed only once its file
   * exists. Not `O_APPEND`: each write goes at the end of the last whole frame, over any partial
   * bytes a failed write could not cut back.
   */
  #openForAppend(seg: Segment | undefined): Segment {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
    const reuse = seg !== undefined && seg.bytes < this.#o.segmentBytes;
    const n = reuse ? seg.n : Math.max(this.#segments.at(-1)?.n ?? 0, this.#highest) + 1;
    const path = join(this.#o.dir, name(n));
    try {
      this.#fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    } catch (error) {
      throw new DiskWriteError(path, error);
    }
    if (reuse) return seg;
    this.#highest = n;
    const fresh: Segment = { n, path, offsets: [], bytes: 0, arrivals: [] };
    this.#segments.push(fresh);
    return fresh;
  }

  /** Past the cap, the oldest segment goes, forwarded or not: bounded beats unbounded. */
  #enforceCap(): void {
    let total = this.#segments.reduce((n, s) => n + s.bytes, 0);
    while (total > this.#o.capBytes && this.#segments.length > 1) {
      const old = this.#segments.shift()!;
      const p = this.#progress;
      const lost = old.n < p.seg ? 0 : old.n === p.seg ? old.offsets.length - p.index : old.offsets.length;
      this.dropped += lost;
      total -= old.bytes;
      removeSegment(old.path);
      this.#o.log.warn(
        `spool: over its ${this.#o.capBytes}-byte cap; dropped ${
          name(old.n)
        } with ${lost} unforwarded records (${this.dropped} dropped so far)`,
      );
      if (old.n === p.seg && p.chunk > 0) p.queenSeg = null; // its record was half sent: start a clean Queen segment
      this.#clampProgress();
    }
  }

  /** A segment whose file is gone: its unforwarded records are counted as dropped, with a warning. */
  #lose(seg: Segment): void {
    const p = this.#progress;
    const lost = seg.n < p.seg ? 0 : seg.n === p.seg ? seg.offsets.length - p.index : seg.offsets.length;
    this.dropped += lost;
    if (seg === this.#segments.at(-1) && this.#fd !== null) {
      closeSync(this.#fd); // it was being appended to: the next append opens a new one
      this.#fd = null;
    }
    this.#segments.splice(this.#segments.indexOf(seg), 1);
    if (seg.n === p.seg && p.chunk > 0) p.queenSeg = null; // its record was half sent
    this.#o.log.warn(
      `spool: ${name(seg.n)} was deleted from under the spool: ${lost} unforwarded records lost (${this.dropped} dropped so far)`,
    );
    this.#clampProgress();
  }

  /** Keeps the position on an existing record, deleting segments it has passed. */
  #clampProgress(): void {
    const p = this.#progress;
    for (;;) {
      const seg = this.#segments.find((s) => s.n >= p.seg);
      if (seg === undefined) {
        // Past every segment (a saved position whose segments' deletion was lost): those left
        // are forwarded and go below, or the next append would reuse one behind the position.
        p.seg = (this.#segments.at(-1)?.n ?? p.seg - 1) + 1;
        p.index = 0;
        break;
      }
      if (seg.n > p.seg) Object.assign(p, { seg: seg.n, index: 0, chunk: 0 });
      const last = seg === this.#segments.at(-1);
      if (p.index < seg.offsets.length || last) break;
      // Fully forwarded and no longer written to: delete it.
      this.#segments.splice(this.#segments.indexOf(seg), 1);
      removeSegment(seg.path);
      Object.assign(p, { seg: seg.n + 1, index: 0, chunk: 0 });
    }
    for (const old of this.#segments.filter((s) => s.n < p.seg)) {
      this.#segments.splice(this.#segments.indexOf(old), 1);
      removeSegment(old.path);
    }
  }

  #persist(): void {
    replaceFileDurably(join(this.#o.dir, "progress.json"), JSON.stringify(this.#progress), 0o600, this.#o.sync);
  }

  #sync(fd: number, path: string): void {
    if (!this.#o.sync) return;
    const t0 = performance.now();
    syncFully(fd, path);
    this.syncs++;
    this.syncMs += performance.now() - t0;
  }
}

/** Removes a segment file; one already gone (an operator's clean-up) is not an error. */
function removeSegment(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOENT") throw error;
  }
}

/** Whether a whole frame with a plausible length and a matching CRC starts at `at`. */
function validFrame(data: Buffer, at: number): boolean {
  if (data.length - at < HEADER) return false;
  const len = data.readUInt32LE(at);
  if (len === 0 || len > MAX_FRAME_BODY || at + HEADER + len > data.length) return false;
  return crc32(data.subarray(at + HEADER, at + HEADER + len)) === data.readUInt32LE(at + 4);
}

/** The offset of the first valid frame at or after `from`, or -1. */
function resync(data: Buffer, from: number): number {
  for (let at = from; at + HEADER < data.length; at++) {
    // Cheap filters first: every record is a CBOR map (major type 5).
    if (data[at + 3]! !== 0 || (data[at + HEADER]! >> 5) !== 5) continue;
    if (validFrame(data, at)) return at;
  }
  return -1;
}

function readAt(fd: number, buf: Uint8Array, position: number): void {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0) throw new Error("spool: unexpected end of segment");
    got += n;
  }
}
