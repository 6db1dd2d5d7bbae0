/**
 * What the VM holds in each GPU node's appendable files, line by line, and who wrote each line
 * (docs/protocol.md#12-what-the-vm-writes-back). The bridge's own new lines wait here as `pending` until an ECHO append
 * is acknowledged (or a snapshot carries them); lines the VM's own clients wrote are found by
 * read-back and kept, so a republish carries them. Pure: no sockets, no timers, no files.
 */
import { byteLength } from "../util/bytes.ts";
import type { VmFile } from "../contract/limits.ts";

export type { VmFile };
/** The node files a snapshot carries. */
export const SNAPSHOT_FILES = ["ctl", "lease", "status"] as const;

/** A line the VM holds, and whether the bridge wrote it. */
export interface MirrorLine {
  readonly text: string;
  readonly own: boolean;
}

/** An own line not yet known to be in the VM. */
export interface PendingLine {
  readonly gpuId: string;
  readonly file: VmFile;
  readonly text: string;
}

/** One file of one node. */
class FileMirror {
  lines: MirrorLine[] = [];
  pending: PendingLine[] = [];
  /** Lines compacted away that the VM may still hold until a snapshot lands: not new when read back. */
  dropped: string[] = [];

  bytes(withPending = true): number {
    let n = 0;
    for (const l of this.lines) n += byteLength(l.text) + 1;
    if (withPending) { for (const p of this.pending) n += byteLength(p.text) + 1; }
    return n;
  }

  text(): string {
    let s = "";
    for (const l of this.lines) s += l.text + "\n";
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
  }>;
}

/** Lines of every node, with ownership; serialisable so that consumption survives restarts. */
export class VmMirror {
  readonly #files = new Map<string, FileMirror>();

  #file(gpuId: string, file: VmFile): FileMirror {
    const key = `${gpuId}/${file}`;
    let f = this.#files.get(key);
    if (f === undefined) this.#files.set(key, f = new FileMirror());
    return f;
  }

  /** Starts a node's ctl with the seed line, once. */
  seed(gpuId: string, ctlSeed: string): void {
    const f = this.#file(gpuId, "ctl");
    if (f.lines.length === 0 && f.pending.length === 0) f.lines.push({ text: ctlSeed.replace(/\n$/, ""), own: true });
  }

  /** The bridge wrote `text` to `file` of `gpuId`: it waits for an append or a snapshot. */
  own(gpuId: string, file: VmFile, text: string): void {
    this.#file(gpuId, file).pending.push({ gpuId, file, text });
  }

  /** Every own line waiting to be appended, oldest first per file. */
  pending(): PendingLine[] {
    const out: PendingLine[] = [];
    for (const f of this.#files.values()) out.push(...f.pending);
    return out;
  }

  /** The VM acknowledged the append of `line`. */
  acked(line: PendingLine): void {
    const f = this.#file(line.gpuId, line.file);
    const i = f.pending.indexOf(line);
    if (i < 0) return;
    f.pending.splice(i, 1);
    f.lines.push({ text: line.text, own: true });
  }

  /** The text a snapshot publishes for a file: what the VM holds plus what is pending. */
  text(gpuId: string, file: VmFile): string {
    return this.#files.get(`${gpuId}/${file}`)?.text() ?? "";
  }

  /** Bytes the file would take with its pending lines (`withPending`) or without. */
  bytes(gpuId: string, file: VmFile, withPending = true): number {
    return this.#files.get(`${gpuId}/${file}`)?.bytes(withPending) ?? 0;
  }

  /** The lines the VM holds, as far as the bridge knows. */
  lines(gpuId: string, file: VmFile): readonly MirrorLine[] {
    return this.#files.get(`${gpuId}/${file}`)?.lines ?? [];
  }

  /**
   * What a read-back found in the VM (`vmLines`, the file's lines; null when the VM has no such
   * file). Returns the lines the VM wrote that the bridge had not seen: they are kept, after
   * what was known. A line equal to one of the bridge's pending lines is taken for that line
   * (its append landed but the ack was lost, or a snapshot carrying it landed unacknowledged).
   */
  readBack(gpuId: string, file: VmFile, vmLines: readonly string[] | null): { fresh: string[]; freshAt: number[]; diverged: boolean } {
    if (vmLines === null) return { fresh: [], freshAt: [], diverged: false };
    const f = this.#file(gpuId, file);
    const known = f.lines.map((l) => l.text);
    let extra: string[];
    /** Where each extra line sits in the VM's file (src/vm/applied.ts: a line's identity). */
    let extraAt: number[];
    let diverged = false;
    if (known.length <= vmLines.length && known.every((t, i) => vmLines[i] === t)) {
      extra = vmLines.slice(known.length);
      extraAt = extra.map((_, i) => known.length + i);
    } else {
      // Not an extension of what the bridge knew (a snapshot from elsewhere, a VM that lost
      // lines): whatever it holds beyond the known lines, counted with multiplicity, is new.
      diverged = true;
      const left = new Map<string, number>();
      for (const t of known) left.set(t, (left.get(t) ?? 0) + 1);
      extra = [];
      extraAt = [];
      vmLines.forEach((t, i) => {
        const n = left.get(t) ?? 0;
        if (n > 0) left.set(t, n - 1);
        else (extra.push(t), extraAt.push(i));
      });
    }
    const fresh: string[] = [];
    const freshAt: number[] = [];
    for (const [j, t] of extra.entries()) {
      const d = f.dropped.indexOf(t);
      if (d >= 0) {
        f.dropped.splice(d, 1);
        continue;
      }
      const i = f.pending.findIndex((p) => p.text === t);
      if (i >= 0) {
        f.pending.splice(i, 1);
        f.lines.push({ text: t, own: true });
      } else {
        f.lines.push({ text: t, own: false });
        fresh.push(t);
        freshAt.push(extraAt[j]!);
      }
    }
    return { fresh, freshAt, diverged };
  }

  /**
   * Drops the oldest lines of a file, pending ones included, until it takes at most
   * `targetBytes`, never a line `pinned` says must stay. Returns the number of lines dropped.
   */
  compact(gpuId: string, file: VmFile, targetBytes: number, pinned: (text: string) => boolean): number {
    const f = this.#file(gpuId, file);
    let over = f.bytes() - targetBytes;
    if (over <= 0) return 0;
    const before = f.lines.length + f.pending.length;
    // A pinned line written again (a renewal, a restated record) is kept once: its last copy.
    const last = new Map<string, number>();
    [...f.lines.map((l) => l.text), ...f.pending.map((p) => p.text)].forEach((t, i) => last.set(t, i));
    let at = 0;
    const keep = (text: string) => {
      const i = at++;
      if (over <= 0 || (last.get(text) === i && pinned(text))) return true;
      over -= byteLength(text) + 1;
      return false;
    };
    f.lines = f.lines.filter((l) => keep(l.text) || (f.dropped.push(l.text), false));
    f.pending = f.pending.filter((p) => keep(p.text));
    return before - f.lines.length - f.pending.length;
  }

  /**
   * Freezes what a snapshot built now carries for `gpuIds`. `carried` says how many lines of a
   * file the snapshot really holds, when fitting it to the VM's size limit left out the oldest
   * (src/contract/fit.ts); those are gone from the VM once it lands.
   */
  freeze(gpuIds: readonly string[], carried?: (gpuId: string, file: VmFile) => number): MirrorToken {
    const files = new Map<string, { lines: MirrorLine[]; pending: PendingLine[]; cut: PendingLine[] }>();
    for (const id of gpuIds) {
      for (const file of SNAPSHOT_FILES) {
        const f = this.#file(id, file);
        const lines = [...f.lines];
        const pending = [...f.pending];
        const cut: PendingLine[] = [];
        let excess = lines.length + pending.length - (carried?.(id, file) ?? Infinity);
        for (; excess > 0; excess--) {
          if (lines.length > 0) lines.shift();
          else cut.push(pending.shift()!);
        }
        files.set(`${id}/${file}`, { lines, pending, cut });
      }
    }
    return { files };
  }

  /**
   * A snapshot built from `token` landed: the VM's node files are exactly its text, so the
   * pending lines it carried are in the VM, and lines it dropped are gone. The job files of the
   * VM variant that keeps them start empty again.
   */
  landed(token: MirrorToken): void {
    for (const [key, carried] of token.files) {
      const f = this.#files.get(key) ?? new FileMirror();
      this.#files.set(key, f);
      const included = new Set([...carried.pending, ...carried.cut]);
      f.lines = [...carried.lines, ...carried.pending.map((p) => ({ text: p.text, own: true }))];
      f.pending = f.pending.filter((p) => !included.has(p));
      f.dropped = [];
    }
    for (const [key, f] of this.#files) if (key.endsWith("/job")) f.lines = [];
  }

  /** The state, for persisting across restarts. */
  toJSON(): { files: Record<string, { lines: MirrorLine[]; pending: string[] }> } {
    const files: Record<string, { lines: MirrorLine[]; pending: string[] }> = {};
    for (const [key, f] of this.#files) files[key] = { lines: f.lines, pending: f.pending.map((p) => p.text) };
    return { files };
  }

  /** Restores a state written by toJSON (already validated). */
  static fromJSON(data: { files: Record<string, { lines: MirrorLine[]; pending: string[] }> }): VmMirror {
    const m = new VmMirror();
    for (const [key, v] of Object.entries(data.files)) {
      const slash = key.lastIndexOf("/");
      const gpuId = key.slice(0, slash);
      const file = key.slice(slash + 1) as VmFile;
      const f = m.#file(gpuId, file);
      f.lines = v.lines.map((l) => ({ text: l.text, own: l.own }));
      f.pending = v.pending.map((text) => ({ gpuId, file, text }));
    }
    return m;
  }
}
