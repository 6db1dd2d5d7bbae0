/**
 * The VM mirror on disk: which lines of the VM's node files the bridge wrote and which VM lines
 * it has already read and acted on, so a restarted bridge neither applies a VM line twice nor
 * takes its own old lines for the VM's.
 *
 * - `<state-dir>/vm-mirror.json`: the whole mirror (bounded: src/vm/mirror.ts), replaced
 *   durably and atomically (a short write never replaces a good file), at most once per
 *   `saveMs` for ordinary changes, and at once (flush) before a VM line that must be applied
 *   once is handed over.
 * - `<state-dir>/vm-mirror.sent.jsonl`: own lines about to be sent that the last save does not
 *   hold yet, appended and synced before they go (a few hundred bytes, not the whole mirror);
 *   emptied by every save. A restart adds them back, so finding them in the VM never makes
 *   them the VM's.
 */
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import * as v from "valibot";
import { describeIssue } from "../util/issues.ts";
import { replaceFileDurably, syncFully, writeFully } from "../util/files.ts";
import type { Clock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";
import type { MirrorData, PendingLine, VmMirror as VmMirrorType } from "./mirror.ts";
import { VmMirror } from "./mirror.ts";

/** What the sync needs from whatever keeps the mirror (the store, or nothing in tests). */
export interface MirrorPersistence {
  /** The mirror changed: save it soon (coalesced). */
  changed(): void;
  /** Saves now: called before handing over a VM line that must be applied once. Throws when it cannot. */
  flush(): void;
  /** Records own lines before they are sent (only those no save holds yet). Throws when it cannot. */
  sending(lines: readonly PendingLine[]): void;
}

const SCHEMA_V1 = "gpu-bridge-vm-mirror/v1";
const SCHEMA = "gpu-bridge-vm-mirror/v2";
const Line = v.strictObject({ text: v.string(), own: v.boolean(), gone: v.optional(v.literal(true)) });
const Pending = v.union([
  v.string(),
  v.strictObject({ text: v.string(), own: v.boolean(), seq: v.pipe(v.number(), v.integer(), v.minValue(0)) }),
]);
const MirrorFile = v.strictObject({
  schema: v.picklist([SCHEMA_V1, SCHEMA]),
  nextSeq: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  files: v.record(
    v.pipe(v.string(), v.regex(/^[^/]+\/(ctl|lease|status|job)$/, "keys must be <gpu>/<ctl|lease|status|job>")),
    v.strictObject({ lines: v.array(Line), pending: v.array(Pending) }),
  ),
});
const Sent = v.strictObject({
  seq: v.pipe(v.number(), v.integer(), v.minValue(0)),
  gpu: v.pipe(v.string(), v.minLength(1)),
  file: v.picklist(["ctl", "lease", "status", "job"]),
  text: v.string(),
});

/** The file of own lines recorded before sending, beside the mirror at `path`. */
export function sentPath(path: string): string {
  return path.replace(/\.json$/, "") + ".sent.jsonl";
}

/** Loads the mirror; null when there is none yet. Throws with the field named when the file is unusable. */
export function loadMirror(path: string): VmMirror | null {
  if (!existsSync(path)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (cause) {
    throw new Error(`Cannot read the VM mirror ${path}: not JSON (${(cause as Error).message}); move it away to start afresh`, { cause });
  }
  const parsed = v.safeParse(MirrorFile, raw);
  if (!parsed.success) {
    const issue = describeIssue(parsed.issues[0], "(file)");
    throw new Error(`Cannot read the VM mirror ${path}: ${issue.field}: ${issue.message}; move it away to start afresh`);
  }
  const mirror = VmMirror.fromJSON(parsed.output as MirrorData);
  mirror.recordedSent(readSent(sentPath(path)));
  return mirror;
}

/**
 * Like loadMirror, but a damaged mirror never stops start-up: both files are moved aside
 * (`.damaged-<time>`, named in a warning) and the bridge starts as without a mirror, taking
 * what the VM holds as history (nothing applied again; live leases adopted).
 */
export function loadMirrorOrSetAside(path: string, log: Logger, now = Date.now()): VmMirror | null {
  try {
    return loadMirror(path);
  } catch (error) {
    for (const p of [path, sentPath(path)]) if (existsSync(p)) renameSync(p, `${p}.damaged-${now}`);
    log.warn(`${(error as Error).message.replace(/; move it away to start afresh$/, "")}; moved aside as .damaged-${now}, starting afresh`);
    return null;
  }
}

/** The own lines recorded as about to be sent; a torn last line (a crash while writing it) was never sent. */
function readSent(path: string): { gpuId: string; file: "ctl" | "lease" | "status" | "job"; text: string; seq: number }[] {
  if (!existsSync(path)) return [];
  const rows = readFileSync(path, "utf8").split("\n");
  const out = [];
  for (let i = 0; i < rows.length; i++) {
    if (rows[i] === "") continue;
    let parsed: v.SafeParseResult<typeof Sent>;
    try {
      parsed = v.safeParse(Sent, JSON.parse(rows[i]!));
    } catch {
      if (i === rows.length - 1) break;
      throw new Error(`Cannot read ${path}: line ${i + 1} is not JSON; move it away to start afresh`);
    }
    if (!parsed.success) {
      const issue = describeIssue(parsed.issues[0], "(line)");
      throw new Error(`Cannot read ${path}: line ${i + 1}: ${issue.field}: ${issue.message}; move it away to start afresh`);
    }
    const r = parsed.output;
    out.push({ gpuId: r.gpu, file: r.file, text: r.text, seq: r.seq });
  }
  return out;
}

/** Writes the mirror durably (a temporary file, written fully, synced, renamed over the old one). */
export function saveMirror(path: string, mirror: VmMirrorType): void {
  mkdirSync(dirname(path), { recursive: true });
  replaceFileDurably(path, JSON.stringify({ schema: SCHEMA, ...mirror.toJSON() }));
}

/** Settings of a MirrorStore. */
export interface MirrorStoreOptions {
  readonly path: string;
  readonly clock: Clock;
  readonly log: Logger;
  /** Ordinary changes are saved at most this often (milliseconds). */
  readonly saveMs: number;
}

/** Keeps one mirror on disk: coalesced saves, forced ones, and own lines recorded before sending. */
export class MirrorStore implements MirrorPersistence {
  readonly #o: MirrorStoreOptions;
  #mirror: VmMirrorType | null = null;
  #timer: unknown = undefined;
  #dirty = false;
  /** Pending lines below this sequence number are in the last save. */
  #savedBelow = 0;
  /** Lines recorded in the sent file since the last save. */
  readonly #recorded = new Set<number>();
  /** Saves written (for tests and benchmarks). */
  saves = 0;

  constructor(options: MirrorStoreOptions) {
    this.#o = options;
  }

  /** The mirror to keep (the loaded one, or a new one). */
  attach(mirror: VmMirrorType, loaded: boolean): void {
    this.#mirror = mirror;
    if (loaded) this.#savedBelow = mirror.nextSeq;
  }

  changed(): void {
    this.#dirty = true;
    if (this.#timer !== undefined) return;
    this.#timer = this.#o.clock.setTimer(this.#o.saveMs, () => {
      this.#timer = undefined;
      try {
        this.flush();
      } catch (error) {
        this.#o.log.warn(`${(error as Error).message}; the VM mirror is saved again on the next change`);
      }
    });
  }

  flush(): void {
    this.#o.clock.clearTimer(this.#timer);
    this.#timer = undefined;
    const mirror = this.#mirror;
    if (mirror === null) return;
    const below = mirror.nextSeq;
    saveMirror(this.#o.path, mirror);
    this.saves++;
    this.#dirty = false;
    this.#savedBelow = below;
    this.#recorded.clear();
    rmSync(sentPath(this.#o.path), { force: true });
  }

  sending(lines: readonly PendingLine[]): void {
    let rows = "";
    const fresh: number[] = [];
    for (const l of lines) {
      if (!l.own || l.seq < this.#savedBelow || this.#recorded.has(l.seq)) continue;
      rows += JSON.stringify({ seq: l.seq, gpu: l.gpuId, file: l.file, text: l.text }) + "\n";
      fresh.push(l.seq);
    }
    if (rows === "") return;
    const path = sentPath(this.#o.path);
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
    try {
      writeFully(fd, rows, path);
      syncFully(fd, path);
    } finally {
      closeSync(fd);
    }
    for (const s of fresh) this.#recorded.add(s);
    this.changed();
  }

  /** Saves what is unsaved (at shutdown); a failure is logged, never thrown. */
  close(): void {
    if (!this.#dirty) return this.#o.clock.clearTimer(this.#timer);
    try {
      this.flush();
    } catch (error) {
      this.#o.log.warn(`${(error as Error).message}; the VM mirror on disk is the last one saved`);
    }
  }
}
