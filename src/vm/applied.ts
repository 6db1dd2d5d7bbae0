/**
 * The promise that a line the VM's clients wrote (a `RESET`, a `RELEASE`, a lease record, a job
 * descriptor) is acted on at most once, even when it is read back twice: after a restart in a
 * window where the mirror's record of it was lost, or when a read-back does not line up with
 * what the mirror knew.
 *
 * A line's identity is its GPU, its file, and the text of that file in the VM up to and
 * including it. Between two snapshots a node file only grows (the VM never drops lines), so
 * that text does not change while the line is there; a snapshot replacing the file carries the
 * line as one the mirror knows. The identities are written to disk before the lines are acted
 * on (write-ahead), so no crash point can act on one twice. The ledger keeps the newest
 * APPLIED_KEEP identities.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import * as v from "valibot";
import { readCapped, replaceFileDurably } from "../util/files.ts";
import type { VmFile } from "../contract/limits.ts";

/** Identities kept: more than the lines the VM's ctl and lease files of many GPUs hold between two snapshots. */
export const APPLIED_KEEP = 4096;
const FILE_CAP = APPLIED_KEEP * 70 + 1024;
const Ledger = v.strictObject({
  schema: v.literal("gpu-bridge-vm-applied/v1"),
  keys: v.pipe(v.array(v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/))), v.maxLength(APPLIED_KEEP)),
});

/** Where the lines handed to the host sit in the VM: the file as read back, and each line's index in it. */
export interface VmLinePlace {
  readonly vmLines: readonly string[];
  readonly at: readonly number[];
}

/** A ledger that cannot be read: the message names the file and what to do. */
export class AppliedLedgerError extends Error {
  override name = "AppliedLedgerError";
}

export class AppliedLines {
  readonly #path: string | null;
  #keys: string[];
  #set: Set<string>;

  private constructor(path: string | null, keys: string[]) {
    this.#path = path;
    this.#keys = keys;
    this.#set = new Set(keys);
  }

  /** The ledger at `path` (none yet: empty); in memory only without a path. */
  static open(path: string | null): AppliedLines {
    if (path === null || !existsSync(path)) return new AppliedLines(path, []);
    let raw: unknown;
    try {
      const bytes = readCapped(path, FILE_CAP);
      if (bytes === null) throw new Error(`over ${FILE_CAP} bytes`);
      raw = JSON.parse(new TextDecoder().decode(bytes));
    } catch (cause) {
      throw new AppliedLedgerError(`Cannot read ${path}: ${(cause as Error).message}; move it away to start afresh`, { cause });
    }
    const parsed = v.safeParse(Ledger, raw);
    if (!parsed.success) {
      throw new AppliedLedgerError(`Cannot read ${path}: not a gpu-bridge-vm-applied/v1 ledger; move it away to start afresh`);
    }
    return new AppliedLines(path, parsed.output.keys);
  }

  get size(): number {
    return this.#keys.length;
  }

  has(key: string): boolean {
    return this.#set.has(key);
  }

  /** Records `keys` (durably, when the ledger has a file) before their lines are acted on. */
  record(keys: readonly string[]): void {
    if (keys.length === 0) return;
    for (const k of keys) {
      if (this.#set.has(k)) continue;
      this.#keys.push(k);
      this.#set.add(k);
    }
    if (this.#keys.length > APPLIED_KEEP) {
      for (const k of this.#keys.splice(0, this.#keys.length - APPLIED_KEEP)) this.#set.delete(k);
    }
    if (this.#path !== null) {
      replaceFileDurably(this.#path, JSON.stringify({ schema: "gpu-bridge-vm-applied/v1", keys: this.#keys }));
    }
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
