/**
 * The promise that a line the VM's clients wrote (a `RESET`, a `RELEASE`, a lease record, a job
 * descriptor) is acted on at most once, even when it is read back twice: after a restart in a
 * window where the mirror's record of it was lost, or when a read-back does not line up with
 * what the mirror knew.
 *
 * A line's identity is its GPU, its file, and the text of that file in the VM up to and
 * including it. Between two snapshots a node file only grows (the VM never drops lines), so
 * that text does not change while the line is there. The identities are written to disk before
 * the lines are acted on (write-ahead), so no crash point can act on one twice, and they are
 * forgotten once a snapshot has landed and the mirror, persisted, holds every line it carried:
 * from then on the same text in the same place (a VM rebooted to a bare ctl, a log compacted
 * back to an earlier state) is a new line. The ledger keeps the newest APPLIED_KEEP identities.
 */
import { createHash } from "node:crypto";
import { closeSync, constants, existsSync, openSync } from "node:fs";
import { readCapped, replaceFileDurably, syncFully, writeFully } from "../util/files.ts";
import type { VmFile } from "../contract/limits.ts";

/** Identities kept: far more than the lines the VM's node files of many GPUs hold between two snapshots. */
export const APPLIED_KEEP = 4096;
const HEADER = "gpu-bridge-vm-applied/v1";
const KEY = /^[0-9a-f]{64}$/;
/** The file holds at most twice the kept identities (each 65 bytes) before it is rewritten. */
const FILE_CAP = HEADER.length + 1 + 2 * APPLIED_KEEP * 65 + 65;

/** Where the lines handed to the host sit in the VM: the file as read back, and each line's index in it. */
export interface VmLinePlace {
  readonly vmLines: readonly string[];
  readonly at: readonly number[];
}

/** A ledger that cannot be read: the message names the file and what to do. */
export class AppliedLedgerError extends Error {
  override name = "AppliedLedgerError";
}

/**
 * The ledger: one identity per line after a header line, appended and synced per batch (65
 * bytes a line, not the whole set), rewritten with the newest APPLIED_KEEP once it holds twice
 * that. A torn last line (a crash mid-append) names a line that was never acted on, and is
 * dropped.
 */
export class AppliedLines {
  readonly #path: string | null;
  #keys: string[];
  #set: Set<string>;
  #fd: number | null = null;
  #inFile: number;

  private constructor(path: string | null, keys: string[]) {
    this.#path = path;
    this.#keys = keys.slice(-APPLIED_KEEP);
    this.#set = new Set(this.#keys);
    this.#inFile = keys.length;
  }

  /** The ledger at `path` (none yet: empty); in memory only without a path. */
  static open(path: string | null): AppliedLines {
    if (path === null || !existsSync(path)) return new AppliedLines(path, []);
    let text: string;
    try {
      const bytes = readCapped(path, FILE_CAP);
      if (bytes === null) throw new Error(`over ${FILE_CAP} bytes`);
      text = new TextDecoder().decode(bytes);
    } catch (cause) {
      throw new AppliedLedgerError(`Cannot read ${path}: ${(cause as Error).message}; move it away to start afresh`, { cause });
    }
    const lines = text.split("\n");
    if (lines[0] !== HEADER) throw new AppliedLedgerError(`Cannot read ${path}: not a ${HEADER} ledger; move it away to start afresh`);
    const body = lines.slice(1);
    if (body.at(-1) === "") body.pop();
    const torn = body.length > 0 && !KEY.test(body.at(-1)!) && !text.endsWith("\n");
    if (torn) body.pop();
    const bad = body.findIndex((k) => !KEY.test(k));
    if (bad >= 0) throw new AppliedLedgerError(`Cannot read ${path}: line ${bad + 2} is not an identity; move it away to start afresh`);
    const ledger = new AppliedLines(path, body);
    if (torn) ledger.#rewrite();
    return ledger;
  }

  get size(): number {
    return this.#keys.length;
  }

  has(key: string): boolean {
    return this.#set.has(key);
  }

  /** Records `keys` (durably, when the ledger has a file) before their lines are acted on. */
  record(keys: readonly string[]): void {
    const added = keys.filter((k, i) => !this.#set.has(k) && keys.indexOf(k) === i);
    if (added.length === 0) return;
    for (const k of added) (this.#keys.push(k), this.#set.add(k));
    if (this.#keys.length > APPLIED_KEEP) {
      for (const k of this.#keys.splice(0, this.#keys.length - APPLIED_KEEP)) this.#set.delete(k);
    }
    if (this.#path === null) return;
    if (this.#inFile + added.length > 2 * APPLIED_KEEP || !existsSync(this.#path)) return this.#rewrite();
    this.#fd ??= openSync(this.#path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
    writeFully(this.#fd, added.map((k) => k + "\n").join(""), this.#path);
    syncFully(this.#fd, this.#path);
    this.#inFile += added.length;
  }

  /** Forgets every identity (a snapshot landed: the mirror knows the lines from here). */
  clear(): void {
    if (this.#keys.length === 0) return;
    this.#keys = [];
    this.#set = new Set();
    if (this.#path !== null) this.#rewrite();
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }

  #rewrite(): void {
    this.close();
    replaceFileDurably(this.#path!, [HEADER, ...this.#keys].join("\n") + "\n");
    this.#inFile = this.#keys.length;
  }
}

/** The identity of each line at `place.at` of `gpuId`'s `file` (one pass over the file, however many lines). */
export function lineIdentities(gpuId: string, file: VmFile, place: VmLinePlace): string[] {
  const want = new Map<number, number>();
  place.at.forEach((index, i) => want.set(index, i));
  const out = new Array<string>(place.at.length);
  const h = createHash("sha256").update(`${gpuId}/${file}`);
  const last = Math.max(-1, ...place.at);
  for (let i = 0; i <= last && i < place.vmLines.length; i++) {
    h.update(`\n${place.vmLines[i]}`);
    const slot = want.get(i);
    if (slot !== undefined) out[slot] = h.copy().digest("hex");
  }
  return out;
}
