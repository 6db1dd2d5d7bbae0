/**
 * Where each VM write the churn benchmark (bench/vmback.ts) counts as lost went. The mock VM
 * and the bridge share one process, so every acknowledged VM write, every `CAT` the VM answered
 * and every snapshot landing is numbered in the one order they happened, and the bridge's phase
 * (VmSync's hooks) is recorded with each write. A lost write is then placed exactly:
 *
 * - `unseen: <phase>`: it landed in its file after that file's last `CAT` before the snapshot
 *   that erased it (no read could have seen it), tagged with what the bridge was doing then;
 * - `read back, not handed over`: a `CAT` after it served it and the bridge still did not act
 *   on it (a bridge fault, or the benchmark's own accounting if the mirror holds it);
 * - `after the last snapshot`: no snapshot erased it, yet it is neither handed over nor in
 *   the VM (the benchmark's accounting).
 */
import type { ConsoleState } from "../mock/console/core.ts";
import type { VmSync } from "../src/vm/sync.ts";

/** What the bridge's VM sync was doing when a VM write landed. */
export type Phase =
  | "between publishes"
  | "read-back before the transfer"
  | "transfer"
  | "re-read before end"
  | "re-read done, end on its way"
  | "read sent with end";

interface Write {
  readonly path: string;
  readonly line: string;
  readonly seq: number;
  readonly phase: Phase;
}

/** Records the order of VM writes, reads and landings, and classifies the writes that were lost. */
export class LossLedger {
  #seq = 0;
  #phase: Phase = "between publishes";
  readonly #reads = new Map<string, number[]>();
  readonly #landings: number[] = [];
  readonly #writes: Write[] = [];
  /** When each read and landing happened (performance.now()). */
  readonly #at = new Map<number, number>();
  /** For each unseen loss: milliseconds from its file's last read to the landing. */
  readonly unseenMs: number[] = [];
  readonly #off: () => void;

  constructor(state: ConsoleState, vm: VmSync) {
    this.#off = state.on((e) => {
      if (e.type === "read") {
        const seqs = this.#reads.get(e.path) ?? [];
        seqs.push(this.#seq);
        this.#reads.set(e.path, seqs);
        this.#at.set(this.#seq++, performance.now());
      } else if (e.type === "published") {
        this.#landings.push(this.#seq);
        this.#at.set(this.#seq++, performance.now());
      }
    });
    const beforePublish = vm.beforePublish.bind(vm);
    const beforeEnd = vm.beforeEnd.bind(vm);
    const published = vm.published.bind(vm);
    const withEnd = vm.withEnd.bind(vm);
    vm.withEnd = (session, end, signal) => {
      this.#phase = "read sent with end";
      return withEnd(session, end, signal);
    };
    vm.beforePublish = async (session, signal) => {
      this.#phase = "read-back before the transfer";
      await beforePublish(session, signal).finally(() => (this.#phase = "transfer"));
    };
    vm.beforeEnd = async (session, signal) => {
      this.#phase = "re-read before end";
      const go = await beforeEnd(session, signal).catch((e) => {
        this.#phase = "between publishes";
        throw e;
      });
      this.#phase = go ? "re-read done, end on its way" : "transfer";
      return go;
    };
    vm.published = (snap) => {
      this.#phase = "between publishes";
      published(snap);
    };
  }

  /** A VM write to `path` was acknowledged just now. */
  wrote(path: string, line: string): void {
    this.#writes.push({ path, line, seq: this.#seq++, phase: this.#phase });
  }

  /** Stops listening to the mock. */
  close(): void {
    this.#off();
  }

  /** Counts of the writes `kept` says were lost, by where they went. */
  classify(kept: (line: string) => boolean, inMirror: (path: string, line: string) => boolean): Map<string, number> {
    const out = new Map<string, number>();
    for (const w of this.#writes) {
      if (kept(w.line)) continue;
      const why = this.#why(w, inMirror);
      out.set(why, (out.get(why) ?? 0) + 1);
    }
    return out;
  }

  #why(w: Write, inMirror: (path: string, line: string) => boolean): string {
    const landing = this.#landings.find((s) => s > w.seq);
    if (landing === undefined) {
      return inMirror(w.path, w.line) ? "after the last snapshot, in the mirror (accounting)" : "after the last snapshot";
    }
    const read = (this.#reads.get(w.path) ?? []).filter((s) => s < landing).at(-1) ?? -1;
    if (read < w.seq) {
      if (read >= 0) this.unseenMs.push(this.#at.get(landing)! - this.#at.get(read)!);
      return `unseen: ${w.phase}`;
    }
    return inMirror(w.path, w.line) ? "read back, in the mirror, not handed over (accounting)" : "read back, not handed over";
  }
}

/** `counts` as `reason: n; ...`, largest first (empty: "none"). */
export function describeLosses(counts: Map<string, number>): string {
  if (counts.size === 0) return "none";
  return [...counts].sort((a, b) => b[1] - a[1]).map(([why, n]) => `${why}: ${n}`).join("; ");
}
