/**
 * Leases survive a restart through an append-only JSON-lines journal, synced to disk before
 * an operation is acknowledged. At start-up it is replayed, then rewritten (atomically) with
 * only the live leases, so it never grows without bound. A torn last line, from a crash
 * mid-write, is reported and dropped; it is never half-applied.
 */
import { closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import * as v from "valibot";
import { describeIssue } from "../util/issues.ts";
import { appendFully, DiskWriteError, openRegular, replaceFileDurably } from "../util/files.ts";
import { PRIORITY } from "../contract/limits.ts";
import { MAX_STREAMS, MAX_TTL_S } from "../config/limits.ts";
import { type Lease, WORKER_ID } from "./types.ts";

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));
const ID = v.pipe(v.string(), v.regex(/^[A-Za-z0-9._-]{1,128}$/));
/** A lease as the journal stores it: valid JSON of the wrong shape is refused field by field. */
const JournalLease = v.object({
  id: ID,
  gpu_id: v.pipe(v.string(), v.minLength(1), v.maxLength(32)),
  mig_uuid: v.optional(v.pipe(v.string(), v.regex(/^MIG-[0-9A-Za-z/-]{1,96}$/))),
  worker_id: v.pipe(v.string(), v.regex(WORKER_ID)),
  principal: v.optional(v.pipe(v.string(), v.regex(WORKER_ID))),
  mem_mb: int(1),
  streams: int(1, MAX_STREAMS),
  ttl_s: int(1, MAX_TTL_S),
  priority: int(PRIORITY.min, PRIORITY.max),
  state: v.picklist(["ACTIVE", "RELEASED"]),
  granted_at: int(0),
  expires_at: int(0),
  released_reason: v.optional(v.string()),
});
const Entry = v.variant("op", [
  v.object({ op: v.literal("grant"), lease: JournalLease }),
  v.object({ op: v.literal("renew"), id: ID, expires_at: int(0) }),
  v.object({ op: v.literal("priority"), id: ID, priority: int(PRIORITY.min, PRIORITY.max) }),
  v.object({ op: v.literal("release"), id: ID, reason: v.string() }),
]);
type Entry = v.InferOutput<typeof Entry>;

/** Appends between compactions past which the running journal is rewritten (with the live leases). */
export const COMPACT_AFTER = 256;

export class LeaseJournal {
  readonly path: string;
  #fd: number | null = null;
  /** Where the last whole entry ends: an append goes there, over anything a failed one left. */
  #end = 0;
  /** Entries appended since the journal was last rewritten. */
  appended = 0;

  constructor(path: string) {
    this.path = path;
  }

  /** Replays the journal: the leases that were live when it was last written, and any problems. */
  load(): { leases: Lease[]; problems: string[] } {
    const problems: string[] = [];
    if (!existsSync(this.path)) return { leases: [], problems };
    const live = new Map<string, Lease>();
    let text: string;
    try {
      // Never a blocking open: a FIFO or device here must not freeze start-up.
      const fd = openRegular(this.path);
      try {
        text = readFileSync(fd, "utf8");
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      problems.push(`${this.path}: cannot read the journal (${(error as Error).message}); starting without leases`);
      return { leases: [], problems };
    }
    const lines = text.split("\n");
    lines.forEach((line, i) => {
      if (line.trim() === "") return;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch {
        problems.push(
          `${this.path}:${i + 1}: ${i === lines.length - 1 ? "torn last line (a crash mid-write)" : "unreadable line"}; skipped`,
        );
        return;
      }
      const parsed = v.safeParse(Entry, raw);
      if (!parsed.success) {
        const d = describeIssue(parsed.issues[0], "entry");
        problems.push(`${this.path}:${i + 1}: not a journal entry (${d.field}: ${d.message}); skipped`);
        return;
      }
      const e: Entry = parsed.output;
      if (e.op === "grant") live.set(e.lease.id, { ...e.lease, state: "ACTIVE" });
      else if (e.op === "renew" && live.has(e.id)) live.get(e.id)!.expires_at = e.expires_at;
      else if (e.op === "priority" && live.has(e.id)) live.get(e.id)!.priority = e.priority;
      else if (e.op === "release") live.delete(e.id);
    });
    return { leases: [...live.values()], problems };
  }

  /** Rewrites the journal with exactly `leases`, atomically (write, sync, rename). */
  compact(leases: readonly Lease[]): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    this.close();
    // Whole or not at all: on a full disk the old journal (every entry already acknowledged) stays.
    replaceFileDurably(this.path, leases.map((lease) => JSON.stringify({ op: "grant", lease }) + "\n").join(""));
    this.appended = 0;
  }

  grant(lease: Lease): void {
    this.#append({ op: "grant", lease });
  }
  renew(lease: Lease): void {
    this.#append({ op: "renew", id: lease.id, expires_at: lease.expires_at });
  }
  priority(lease: Lease): void {
    this.#append({ op: "priority", id: lease.id, priority: lease.priority });
  }
  release(lease: Lease, reason: string): void {
    this.#append({ op: "release", id: lease.id, reason });
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }

  /**
   * Appends one entry and syncs it, or throws `DiskWriteError` with the journal cut back to its
   * last whole line: a failed append never leaves half a line for the next one to follow.
   */
  #append(entry: Entry): void {
    if (this.#fd === null) {
      try {
        mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
        this.#fd = openSync(this.path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
        this.#end = fstatSync(this.#fd).size;
      } catch (error) {
        this.close();
        throw new DiskWriteError(this.path, error);
      }
    }
    const line = new TextEncoder().encode(JSON.stringify(entry) + "\n");
    appendFully(this.#fd, line, this.path, this.#end);
    this.#end += line.length;
    this.appended++;
  }
}
