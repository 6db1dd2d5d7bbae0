/**
 * What the VM holds in each GPU node's appendable files, line by line, and who wrote each line
 * (docs/protocol.md#12-what-the-vm-writes-back). The bridge's own new lines wait here as `pending` until an ECHO append
 * is acknowledged (or a snapshot carries them); lines the VM's own clients wrote are found by
 * read-back and kept, so a republish carries them. Pure: no sockets, no timers, no files.
 *
 * Bounded: what a file publishes (its lines and pending lines) never passes the VM's own cap for
 * it (VM_CAPS); a VM answering with more than its cap is read only up to the cap. Lines
 * compacted away stay recorded (`gone`) while the VM may still hold them, so a read-back never
 * takes them for new; they are at most what the VM holds, so a file takes at most about three
 * times its cap. Lines are text; a byte that was not UTF-8 is kept as a lone surrogate
 * (src/util/bytes.ts), so it is republished as the same byte.
 */
import { byteLength } from "../util/bytes.ts";
import { VM_CAPS, type VmFile } from "../contract/limits.ts";

export type { VmFile };
/** The node files a snapshot carries. */
export const SNAPSHOT_FILES = ["ctl", "lease", "status"] as const;

/** A line the VM holds, and whether the bridge wrote it. */
export interface MirrorLine {
  readonly text: string;
  readonly own: boolean;
  /** Compacted: the VM holds it until the next snapshot lands, which leaves it out. */
  readonly gone?: boolean;
}

/** A line the bridge must get into the VM: its own, or a VM line a snapshot erased (`own` false). */
export interface PendingLine {
  readonly gpuId: string;
  readonly file: VmFile;
  readonly text: string;
  readonly own: boolean;
  /** Order of creation, persisted: tells a restart which lines were recorded before they were sent. */
  readonly seq: number;
}

/** What a read-back found. */
export interface ReadBackResult {
  /** Lines the VM wrote that the bridge had not seen, oldest first. */
  readonly fresh: string[];
  /** Where each fresh line sits in the VM's file (its identity for src/vm/applied.ts). */
  readonly freshAt: number[];
  /** The VM's file was not an extension of what the bridge knew. */
  readonly diverged: boolean;
  /** Lines past the VM's cap for the file (a VM that does not keep its cap): ignored. */
  readonly overCap: number;
}

/** One file of one node. */
class FileMirror {
  lines: MirrorLine[] = [];
  pending: PendingLine[] = [];

  /** Bytes it publishes: lines not compacted away, and (`withPending`) the pending ones. */
  bytes(withPending = true): number {
    let n = 0;
    for (const l of this.lines) if (!l.gone) n += byteLength(l.text) + 1;
    if (withPending) { for (const p of this.pending) n += byteLength(p.text) + 1; }
    return n;
  }

  text(): string {
    let s = "";
    for (const l of this.lines) if (!l.gone) s += l.text + "\n";
    for (const p of this.pending) s += p.text + "\n";
    return s;
  }
}

/** A frozen view of what one snapshot carries, committed once the snapshot has landed. */
export interface MirrorToken {
  readonly files: ReadonlyMap<string, {
    readonly lines: readonly MirrorLine[];
    readonly pending: readonly PendingLine[];
    /** Pending lines the snapshot left out to fit the VM's size limit: gone once it lands. */
    readonly cut: readonly PendingLine[];
    /** Every line the file held when frozen: a line read back later is not in the snapshot. */
    readonly known: ReadonlySet<MirrorLine>;
  }>;
}

/** The persisted form (toJSON/fromJSON). */
export interface MirrorData {
  nextSeq?: number;
  files: Record<string, { lines: MirrorLine[]; pending: (string | { text: string; own: boolean; seq: number })[] }>;
}

const isPrefix = (known: readonly string[], vm: readonly string[]) => known.length <= vm.length && known.every((t, i) => vm[i] === t);

function counts(texts: Iterable<string>): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of texts) m.set(t, (m.get(t) ?? 0) + 1);
  return m;
}

/**
 * How the VM's `vm` extends the mirror's `lines`: every line in order, a compacted one either
 * still held (the VM keeps it until a compacted snapshot lands) or absent, every other one held.
 * A compacted line is absent when a compacted snapshot landed unseen (a restart), or when the
 * append or snapshot that carried it never landed (a refused append, a snapshot built again
 * before its `end`). The VM answers a read only after every append sent before it was taken or
 * refused, so an absent line does not arrive later. Where several readings fit (texts repeat
 * under lease churn), the one that holds the most VM lines is taken: a VM line that may be the
 * bridge's is never handed over as the VM's. Null when no reading fits (the file diverged).
 */
function heldLines(lines: readonly MirrorLine[], vm: readonly string[]): { vmLines: number; absent: Set<number> } | null {
  // The VM positions reachable after each mirror line, each with the position it came from:
  // at most one per VM line, so a read costs at most mirror lines x VM lines steps.
  const steps: Map<number, number>[] = [];
  let reach = new Map<number, number>([[0, 0]]);
  for (const l of lines) {
    const next = new Map<number, number>();
    for (const j of reach.keys()) {
      if (vm[j] === l.text && !next.has(j + 1)) next.set(j + 1, j);
      if (l.gone === true && !next.has(j)) next.set(j, j);
    }
    if (next.size === 0) return null;
    steps.push(next);
    reach = next;
  }
  let at = Math.max(...reach.keys());
  const vmLines = at;
  const absent = new Set<number>();
  for (let i = steps.length - 1; i >= 0; i--) {
    const from = steps[i]!.get(at)!;
    if (from === at) absent.add(i);
    at = from;
  }
  return { vmLines, absent };
}

/** Lines of every node, with ownership; serialisable so that consumption survives restarts. */
export class VmMirror {
  readonly #files = new Map<string, FileMirror>();
  /** Pending lines found in the VM (acknowledged, or read back), by the line they became: landed() must not put them back twice. */
  readonly #ackedFrom = new WeakMap<MirrorLine, PendingLine>();
  /** Pending lines sent (as appends, or in a snapshot) whose fate is not known: the VM may hold them. */
  readonly #sent = new WeakSet<PendingLine>();
  #nextSeq = 0;
  /** Lines compaction must keep (a live lease's current line); set by the sync. */
  pinned: (gpuId: string, file: VmFile, text: string) => boolean = () => false;

  #file(gpuId: string, file: VmFile): FileMirror {
    const key = `${gpuId}/${file}`;
    let f = this.#files.get(key);
    if (f === undefined) this.#files.set(key, f = new FileMirror());
    return f;
  }

  /** The sequence number the next pending line gets. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Whether the mirror holds no line of the file at all (not even one compacted away): seed() would start it. */
  isEmpty(gpuId: string, file: VmFile): boolean {
    const f = this.#files.get(`${gpuId}/${file}`);
    return f === undefined || (f.lines.length === 0 && f.pending.length === 0);
  }

  /** Starts a node's ctl with the seed line, once. */
  seed(gpuId: string, ctlSeed: string): void {
    const f = this.#file(gpuId, "ctl");
    if (f.lines.length === 0 && f.pending.length === 0) f.lines.push({ text: ctlSeed.replace(/\n$/, ""), own: true });
  }

  /**
   * The bridge wrote `text` to `file` of `gpuId`: it waits for an append or a snapshot. A file
   * past its VM cap drops its oldest lines (never a pinned one): the VM could not hold them.
   */
  own(gpuId: string, file: VmFile, text: string): PendingLine {
    const f = this.#file(gpuId, file);
    const p = { gpuId, file, text, own: true, seq: this.#nextSeq++ };
    f.pending.push(p);
    if (f.bytes() > VM_CAPS[file]) this.compact(gpuId, file, VM_CAPS[file]);
    return p;
  }

  /**
   * Like own(), unless the file already publishes `text` as the bridge's (a restarted bridge
   * re-logging a restored lease's lines that the stored mirror already holds).
   */
  ownOnce(gpuId: string, file: VmFile, text: string): void {
    const f = this.#file(gpuId, file);
    if (f.lines.some((l) => !l.gone && l.own && l.text === text) || f.pending.some((p) => p.text === text)) return;
    this.own(gpuId, file, text);
  }

  /** Every line waiting to be appended, oldest first per file. */
  pending(): PendingLine[] {
    const out: PendingLine[] = [];
    for (const f of this.#files.values()) out.push(...f.pending);
    return out;
  }

  /**
   * `line` is on its way as an append. Until its ack it may land in the VM at any moment, so
   * compaction never forgets it: it is kept as a compacted line of the bridge's, and a
   * read-back that finds it does not take it for a line the VM wrote.
   */
  sending(line: PendingLine): void {
    this.#sent.add(line);
  }

  /** The VM acknowledged the append of `line`. */
  acked(line: PendingLine): void {
    const f = this.#file(line.gpuId, line.file);
    const i = f.pending.indexOf(line);
    if (i < 0) return;
    f.pending.splice(i, 1);
    const l = { text: line.text, own: line.own };
    this.#ackedFrom.set(l, line);
    f.lines.push(l);
  }

  /** The text a snapshot publishes for a file: what the VM holds plus what is pending. */
  text(gpuId: string, file: VmFile): string {
    return this.#files.get(`${gpuId}/${file}`)?.text() ?? "";
  }

  /** Bytes the file would take with its pending lines (`withPending`) or without. */
  bytes(gpuId: string, file: VmFile, withPending = true): number {
    return this.#files.get(`${gpuId}/${file}`)?.bytes(withPending) ?? 0;
  }

  /** The lines the VM holds and the next snapshot keeps, as far as the bridge knows. */
  lines(gpuId: string, file: VmFile): readonly MirrorLine[] {
    return (this.#files.get(`${gpuId}/${file}`)?.lines ?? []).filter((l) => !l.gone);
  }

  /** Bytes held for every file, compacted lines included (for tests and the bound). */
  heldBytes(): number {
    let n = 0;
    for (const f of this.#files.values()) {
      for (const l of f.lines) n += byteLength(l.text) + 1;
      for (const p of f.pending) n += byteLength(p.text) + 1;
    }
    return n;
  }

  /** A copy of one file's state, restored by calling the result (a read-back whose save failed). */
  checkpoint(gpuId: string, file: VmFile): () => void {
    const f = this.#file(gpuId, file);
    const lines = [...f.lines];
    const pending = [...f.pending];
    return () => ((f.lines = lines), (f.pending = pending));
  }

  /**
   * What a read-back found in the VM (`vmLines`, the file's lines; null when the VM has no such
   * file). Returns the lines the VM wrote that the bridge had not seen: they are kept, after
   * what was known. A line equal to one of the bridge's pending lines is taken for that line
   * (its append landed but the ack was lost, or a snapshot carrying it landed unacknowledged).
   * Lines compacted away that the VM still holds are not new, whether or not the compacted
   * snapshot has landed (a restart may not know).
   */
  readBack(gpuId: string, file: VmFile, vmLines: readonly string[] | null): ReadBackResult {
    if (vmLines === null) return { fresh: [], freshAt: [], diverged: false, overCap: 0 };
    const cap = VM_CAPS[file];
    // The VM refuses appends past its cap: a file that holds more is read only up to the cap.
    let bytes = 0;
    let within = 0;
    while (within < vmLines.length && (bytes += byteLength(vmLines[within]!) + 1) <= cap) within++;
    const overCap = vmLines.length - within;
    const vm = overCap > 0 ? vmLines.slice(0, within) : vmLines;
    const f = this.#file(gpuId, file);
    const all = f.lines.map((l) => l.text);
    let extra: string[];
    /** Where each extra line sits in the VM's file (src/vm/applied.ts: a line's identity). */
    let extraAt: number[];
    let diverged = false;
    const held = isPrefix(all, vm) ? { vmLines: all.length, absent: new Set<number>() } : heldLines(f.lines, vm);
    if (held !== null) {
      // Compacted lines the VM does not hold never will (see heldLines): done with.
      if (held.absent.size > 0) f.lines = f.lines.filter((_, i) => !held.absent.has(i));
      extra = vm.slice(held.vmLines);
      extraAt = extra.map((_, i) => held.vmLines + i);
    } else {
      // Not an extension of what the bridge knew (a snapshot from elsewhere, a VM that lost
      // lines): whatever it holds beyond the known lines, counted with multiplicity, is new.
      diverged = true;
      const left = counts(all);
      extra = [];
      extraAt = [];
      vm.forEach((t, i) => {
        const n = left.get(t) ?? 0;
        if (n > 0) left.set(t, n - 1);
        else (extra.push(t), extraAt.push(i));
      });
      // Known lines the VM no longer holds: compacted ones are done with, and the job file
      // (which no snapshot carries) is what the VM holds; the others are republished.
      f.lines = f.lines.filter((l) => {
        const n = left.get(l.text) ?? 0;
        if (n === 0 || !(l.gone || file === "job")) return true;
        left.set(l.text, n - 1);
        return false;
      });
    }
    const fresh: string[] = [];
    const freshAt: number[] = [];
    for (const [j, t] of extra.entries()) {
      const i = f.pending.findIndex((p) => p.text === t);
      if (i >= 0) {
        const [p] = f.pending.splice(i, 1);
        const l = { text: t, own: p!.own };
        this.#ackedFrom.set(l, p!);
        f.lines.push(l);
      } else {
        f.lines.push({ text: t, own: false });
        fresh.push(t);
        freshAt.push(extraAt[j]!);
      }
    }
    if (f.bytes() > cap) this.compact(gpuId, file, cap);
    return { fresh, freshAt, diverged, overCap };
  }

  /**
   * Drops the oldest lines of a file, pending ones included, until it publishes at most
   * `targetBytes`, never a line `pinned` (or the mirror's own pinned rule) says must stay.
   * Lines the VM holds are marked gone rather than forgotten. Returns the number of lines dropped.
   */
  compact(gpuId: string, file: VmFile, targetBytes: number, pinned?: (text: string) => boolean): number {
    const f = this.#file(gpuId, file);
    let over = f.bytes() - targetBytes;
    if (over <= 0) return 0;
    // A pinned line written again (a renewal, a restated record) is kept once: its last copy.
    const left = counts([...f.lines.filter((l) => !l.gone).map((l) => l.text), ...f.pending.map((p) => p.text)]);
    const keep = (text: string) => {
      const n = (left.get(text) ?? 1) - 1;
      left.set(text, n);
      if (over <= 0 || (n === 0 && (pinned?.(text) === true || this.pinned(gpuId, file, text)))) return true;
      over -= byteLength(text) + 1;
      return false;
    };
    let n = 0;
    f.lines = f.lines.map((l) => (l.gone || keep(l.text) ? l : (n++, { text: l.text, own: l.own, gone: true })));
    const before = f.pending.length;
    const sentAway: MirrorLine[] = [];
    f.pending = f.pending.filter((p) => keep(p.text) || (this.#sent.has(p) && void sentAway.push({ text: p.text, own: true, gone: true })));
    // Appends on their way land after what the VM holds, in the order they were sent.
    f.lines.push(...sentAway);
    return n + before - f.pending.length;
  }

  /**
   * Freezes what a snapshot built now carries for `gpuIds`. `carried` says how many lines of a
   * file the snapshot really holds, when fitting it to the VM's size limit left out the oldest
   * (src/contract/fit.ts); those are gone from the VM once it lands.
   */
  freeze(gpuIds: readonly string[], carried?: (gpuId: string, file: VmFile) => number): MirrorToken {
    const files = new Map<string, { lines: MirrorLine[]; pending: PendingLine[]; cut: PendingLine[]; known: Set<MirrorLine> }>();
    for (const id of gpuIds) {
      for (const file of SNAPSHOT_FILES) {
        const f = this.#file(id, file);
        const lines = f.lines.filter((l) => !l.gone);
        const pending = [...f.pending];
        const cut: PendingLine[] = [];
        let excess = lines.length + pending.length - (carried?.(id, file) ?? Infinity);
        for (; excess > 0; excess--) {
          if (lines.length > 0) lines.shift();
          else cut.push(pending.shift()!);
        }
        // Once the snapshot is on its way the VM may hold what it carries, landed or not.
        for (const p of pending) this.#sent.add(p);
        files.set(`${id}/${file}`, { lines, pending, cut, known: new Set(f.lines) });
      }
    }
    return { files };
  }

  /**
   * A snapshot built from `token` landed: the VM's node files are exactly its text, so the
   * pending lines it carried are in the VM, and lines it dropped are gone. VM lines read back
   * after the freeze were erased by it: they are pending again, to be put back. Returns how
   * many. The job files of the VM variant that keeps them start empty again.
   */
  landed(token: MirrorToken): number {
    let erased = 0;
    for (const [key, carried] of token.files) {
      const f = this.#files.get(key) ?? new FileMirror();
      this.#files.set(key, f);
      const included = new Set([...carried.pending, ...carried.cut]);
      const late = f.lines.filter((l) => !l.gone && !carried.known.has(l) && !included.has(this.#ackedFrom.get(l)!));
      const slash = key.lastIndexOf("/");
      const gpuId = key.slice(0, slash);
      const file = key.slice(slash + 1) as VmFile;
      const back = late.map((l) => ({ gpuId, file, text: l.text, own: l.own, seq: this.#nextSeq++ }));
      erased += late.filter((l) => !l.own).length;
      f.lines = [
        ...carried.lines.map((l) => ({ text: l.text, own: l.own })),
        ...carried.pending.map((p) => ({ text: p.text, own: p.own })),
      ];
      f.pending = [...back, ...f.pending.filter((p) => !included.has(p))];
    }
    for (const [key, f] of this.#files) if (key.endsWith("/job")) f.lines = [];
    return erased;
  }

  /** The state, for persisting across restarts. */
  toJSON(): MirrorData {
    const files: MirrorData["files"] = {};
    for (const [key, f] of this.#files) {
      files[key] = {
        lines: f.lines.map((l) => (l.gone ? { text: l.text, own: l.own, gone: true } : { text: l.text, own: l.own })),
        pending: f.pending.map((p) => ({ text: p.text, own: p.own, seq: p.seq })),
      };
    }
    return { nextSeq: this.#nextSeq, files };
  }

  /** Restores a state written by toJSON (already validated; plain-string pending lines are an older form). */
  static fromJSON(data: MirrorData): VmMirror {
    const m = new VmMirror();
    let seq = data.nextSeq ?? 0;
    for (const [key, v] of Object.entries(data.files)) {
      const slash = key.lastIndexOf("/");
      const gpuId = key.slice(0, slash);
      const file = key.slice(slash + 1) as VmFile;
      const f = m.#file(gpuId, file);
      f.lines = v.lines.map((l) => (l.gone === true ? { text: l.text, own: l.own, gone: true } : { text: l.text, own: l.own }));
      f.pending = v.pending.map((p) => typeof p === "string" ? { gpuId, file, text: p, own: true, seq: seq++ } : { gpuId, file, ...p });
    }
    m.#nextSeq = Math.max(seq, ...m.pending().map((p) => p.seq + 1));
    return m;
  }

  /**
   * Adds own lines a restart finds recorded as about to be sent but missing from the stored
   * state (saved less often than lines are sent): pending again, so a read-back that finds
   * them in the VM takes them for the bridge's. Lines already known by `seq` are skipped.
   */
  recordedSent(lines: readonly { gpuId: string; file: VmFile; text: string; seq: number }[]): void {
    for (const l of lines) {
      if (l.seq < this.#nextSeq) continue; // saved after it was recorded: the state knows its fate
      this.#file(l.gpuId, l.file).pending.push({ ...l, own: true });
      this.#nextSeq = l.seq + 1;
    }
  }
}
