/**
 * Per-GPU logs mirrored into the VM as the node's `ctl`, `lease` and `status` payloads, each
 * bounded to what the VM accepts (docs/protocol.md#8-the-console): the oldest lines go first, except the
 * current ACTIVE line of every live lease, which is always kept.
 */
import { seedCtl } from "../contract/info.ts";
import { LIMITS } from "../contract/limits.ts";
import type { NodeLogs } from "../contract/namespace.ts";

interface Entry {
  readonly text: string;
  readonly bytes: number;
  /** The lease whose current ACTIVE line this is, if it is one. */
  readonly activeOf?: string;
}

const utf8 = new TextEncoder();

/**
 * Room left free in each log for the VM's own clients, which append to the file the snapshot
 * replaced (section 12): a control line of up to a command's 256 bytes in `ctl`, the Queen's own
 * ACTIVE record (about 160 bytes) in `lease` when no live lease needs the space, and a START and
 * an EXIT breadcrumb (512 bytes each) in `status`. A log published at its cap would leave them
 * unable to append at all.
 */
export const LOG_HEADROOM = Object.freeze({ ctl: 256, lease: 256, status: 1024 });

/** Lines with a byte budget; `pinned` entries survive trimming. */
export class BoundedLines {
  #entries: Entry[] = [];
  #bytes = 0;
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Appends `text` (one line, without its newline), then trims to the budget. */
  append(text: string, isPinned: (e: Entry) => boolean = () => false): void {
    this.push(text);
    this.trim(isPinned);
  }

  /** Appends `text` without trimming; returns its entry. */
  push(text: string, activeOf?: string): Entry {
    const entry: Entry = activeOf === undefined
      ? { text, bytes: utf8.encode(text).length + 1 }
      : { text, bytes: utf8.encode(text).length + 1, activeOf };
    this.#entries.push(entry);
    this.#bytes += entry.bytes;
    return entry;
  }

  /** Drops the oldest unpinned lines until the text fits the budget. */
  trim(isPinned: (e: Entry) => boolean): void {
    if (this.#bytes <= this.#limit) return;
    const kept: Entry[] = [];
    let over = this.#bytes - this.#limit;
    for (const e of this.#entries) {
      if (over > 0 && !isPinned(e)) {
        over -= e.bytes;
        this.#bytes -= e.bytes;
      } else {
        kept.push(e);
      }
    }
    this.#entries = kept;
  }

  text(): string {
    return this.#entries.map((e) => e.text + "\n").join("");
  }
}

/** The three logs of one GPU. */
export class GpuLogs {
  readonly gpuId: string;
  // The ctl payload keeps its seed line, so the budget for appended lines is what remains.
  readonly ctl: BoundedLines;
  // Unpinned lease lines are trimmed to leave headroom; pinned ACTIVE lines may use it (the
  // grant's admission check keeps them within the cap itself).
  readonly lease = new BoundedLines(LIMITS.leaseLogBytes - LOG_HEADROOM.lease);
  readonly status = new BoundedLines(LIMITS.statusLogBytes - LOG_HEADROOM.status);
  /**
   * Lease id -> its current ACTIVE line: the entry itself, so that when the same line is
   * written again (a refused VM record makes the bridge restate it) only the newest copy is
   * kept through trimming, not every copy.
   */
  readonly #current = new Map<string, Entry>();
  #touched = false;
  /** Told of every line as it is logged (the VM sync appends it in the VM). */
  readonly #onLine: (file: "ctl" | "lease" | "status", text: string) => void;

  constructor(gpuId: string, onLine: (file: "ctl" | "lease" | "status", text: string) => void = () => {}) {
    this.gpuId = gpuId;
    this.#onLine = onLine;
    this.ctl = new BoundedLines(LIMITS.ctlLogBytes - LOG_HEADROOM.ctl - utf8.encode(seedCtl(gpuId)).length);
  }

  appendCtl(line: string): void {
    this.#touched = true;
    this.ctl.append(line);
    this.#onLine("ctl", line);
  }

  /** Records a lease's current ACTIVE line (replacing its previous one as the pinned line). */
  appendActive(leaseId: string, line: string): void {
    this.#touched = true;
    this.#current.set(leaseId, this.lease.push(line, leaseId));
    this.lease.trim((e) => this.#pinned(e));
    this.#onLine("lease", line);
  }

  /** Records a lease's end: its ACTIVE line is no longer pinned. */
  appendReleased(leaseId: string, line: string): void {
    this.#touched = true;
    this.#current.delete(leaseId);
    this.lease.append(line, (e) => this.#pinned(e));
    this.#onLine("lease", line);
  }

  appendStatus(line: string): void {
    this.#touched = true;
    this.status.append(line);
    this.#onLine("status", line);
  }

  /** Bytes the ACTIVE lines of the live leases take, plus `extra` more. */
  pinnedBytes(extra = ""): number {
    let n = extra === "" ? 0 : utf8.encode(extra).length + 1;
    for (const e of this.#current.values()) n += e.bytes;
    return n;
  }

  /** The payloads; undefined until anything was logged, so the seeds stay byte-identical. */
  payloads(): NodeLogs | undefined {
    if (!this.#touched) return undefined;
    return { ctl: seedCtl(this.gpuId) + this.ctl.text(), lease: this.lease.text(), status: this.status.text() };
  }

  #pinned(e: Entry): boolean {
    return e.activeOf !== undefined && this.#current.get(e.activeOf) === e;
  }
}
