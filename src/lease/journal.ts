/**
 * Leases survive a restart through an append-only JSON-lines journal, synced to disk before
 * an operation is acknowledged. At start-up it is replayed, then rewritten (atomically) with
 * only the live leases, so it never grows without bound. A torn last line, from a crash
 * mid-write, is reported and dropped; it is never half-applied.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { Lease } from "./types.ts";

type Entry =
  | { op: "grant"; lease: Lease }
  | { op: "renew"; id: string; expires_at: number }
  | { op: "priority"; id: string; priority: number }
  | { op: "release"; id: string; reason: string };

export class LeaseJournal {
  readonly path: string;
  #fd: number | null = null;

  constructor(path: string) {
    this.path = path;
  }

  /** Replays the journal: the leases that were live when it was last written, and any problems. */
  load(): { leases: Lease[]; problems: string[] } {
    const problems: string[] = [];
    if (!existsSync(this.path)) return { leases: [], problems };
    const live = new Map<string, Lease>();
    const lines = readFileSync(this.path, "utf8").split("\n");
    lines.forEach((line, i) => {
      if (line.trim() === "") return;
      let e: Entry;
      try {
        e = JSON.parse(line) as Entry;
      } catch {
        problems.push(`${this.path}:${i + 1}: ${i === lines.length - 1 ? "torn last line (a crash mid-write)" : "unreadable line"}; skipped`);
        return;
      }
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
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, leases.map((lease) => JSON.stringify({ op: "grant", lease }) + "\n").join(""));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
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

  #append(entry: Entry): void {
    if (this.#fd === null) {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      this.#fd = openSync(this.path, "a", 0o600);
    }
    writeSync(this.#fd, JSON.stringify(entry) + "\n");
    fsyncSync(this.#fd);
  }
}
