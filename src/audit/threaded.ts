/**
 * The audit trail in batch mode, written on a worker thread (trail-worker.ts). The bridge's
 * thread gathers the changes of one turn of the event loop, as the trail on this thread does,
 * and hands them over as one JSON string at the turn's end; the worker puts them in canonical
 * form, chains, hashes, writes and syncs them. What a change costs the thread that made it is
 * one JSON.stringify and a share of one postMessage, not a sorted copy, a SHA-256 and a write.
 *
 * - **Order and numbering** are the record's: batches go in order, the worker writes them in
 *   order, and a change out of order is refused here as on this thread.
 * - **Reading the files** (lease history) first waits, blocking, until the worker has written
 *   every batch handed over (`writePending`), so a reader sees every change made before it.
 * - **Bounded.** At most MAX_IN_FLIGHT changes are handed over and not yet written; past that the
 *   thread waits for the worker, so a slow disk slows grants rather than filling memory.
 * - **Exit.** When the process exits (a crash included) every open trail hands over what it holds
 *   and waits for the worker to write it, up to EXIT_WAIT_MS. Only a kill that gives no exit
 *   (SIGKILL, the machine) can lose what the worker had not written yet: at most its lag.
 * - **A worker that fails** (its module missing in a build, or dying) costs nothing: the trail is
 *   opened on this thread from what is on disk, and every change handed over that the worker had
 *   not written is written there, so the chain stays whole (said in the log).
 */
import process from "node:process";
import type { Change } from "../changes/record.ts";
import { errorText } from "../util/error-text.ts";
import { startWorker, workerPlaces } from "../util/worker.ts";
import { AuditTrail, type AuditTrailOptions, outOfOrder, scanTrail, type Trail, type TrailStart } from "./trail.ts";
import { type FromWorker, SLOT, SLOTS_BYTES, type ToWorker } from "./trail-protocol.ts";

/** Changes handed to the worker and not yet written, at most (about 0.5 KiB each). */
export const MAX_IN_FLIGHT = 8192;
/** How long a reader waits for the worker before it reads what is there (and says so). */
const WAIT_MS = 5000;
/** How long the process's exit waits for the worker. */
const EXIT_WAIT_MS = 1500;

/** Where the worker's module is, from source or in a compiled binary. */
export const TRAIL_WORKER = workerPlaces(import.meta.url, "audit", "trail-worker.ts");

interface Batch {
  readonly seq: number;
  readonly changes: readonly Change[];
}

/** The trails to drain when the process exits. */
const open = new Set<ThreadedTrail>();
process.on("exit", () => {
  for (const t of open) t.writePending(EXIT_WAIT_MS);
});

/** `acked` is at or past `seq` (both wrap at 2^31; seqs are compared by difference). */
const reached = (acked: number, seq: number) => ((acked - seq) | 0) >= 0;

export class ThreadedTrail implements Trail {
  readonly #o: AuditTrailOptions;
  readonly #maxInFlight: number;
  #w: Worker | null;
  /** The trail on this thread, once the worker failed. */
  #inline: AuditTrail | null = null;
  readonly #counters = new Int32Array(new SharedArrayBuffer(SLOTS_BYTES));
  #seq = 0;
  /** Batches handed over and not yet known to be written, oldest first. */
  #unacked: Batch[] = [];
  #inFlight = 0;
  /** The changes of this turn, handed over at its end. */
  #pending: Change[] = [];
  #lastSeen: number;
  #lastId: number;
  /** Changes refused or lost on this thread (out of order; no trail could be opened here). */
  #refused = 0;
  #requests = new Map<number, () => void>();
  #nextRequest = 0;

  private constructor(o: AuditTrailOptions, start: TrailStart, w: Worker, maxInFlight: number) {
    this.#o = o;
    this.#maxInFlight = maxInFlight;
    this.#w = w;
    this.#lastSeen = start.lastId;
    this.#lastId = start.lastId;
    w.onmessage = (e: MessageEvent) => this.#hear(e.data as FromWorker);
    w.onerror = (e: Event) => {
      e.preventDefault?.();
      this.#workerFailed((e as ErrorEvent).message || "it stopped");
    };
    const { log: _, ...options } = o;
    this.#send({ init: { options, start, counters: this.#counters.buffer as SharedArrayBuffer } });
    open.add(this);
  }

  /**
   * The trail in `o.dir` (batch mode), written on a worker started from `places`; on this thread
   * when no worker starts (said in the log).
   */
  static async start(o: AuditTrailOptions, places: readonly string[] = TRAIL_WORKER, maxInFlight = MAX_IN_FLIGHT): Promise<Trail> {
    const start = scanTrail(o);
    const w = await startWorker(places);
    if (w === null) {
      o.log.warn("the trail's worker thread did not start; the trail is written on the bridge's thread");
      return new AuditTrail(o, start);
    }
    o.log.debug(`the trail in ${o.dir} is written on a worker thread`);
    return new ThreadedTrail(o, start, w, maxInFlight);
  }

  get lastId(): number {
    if (this.#inline !== null) return this.#inline.lastId;
    this.#prune();
    return this.#lastId;
  }

  get failing(): boolean {
    return this.#inline?.failing ?? Atomics.load(this.#counters, SLOT.failing) === 1;
  }

  get failures(): number {
    return this.#refused + Atomics.load(this.#counters, SLOT.failures) + (this.#inline?.failures ?? 0);
  }

  get syncs(): number {
    return Atomics.load(this.#counters, SLOT.syncs) + (this.#inline?.syncs ?? 0);
  }

  /** Whether the worker writes the trail (false once it failed, or after close). */
  get onWorker(): boolean {
    return this.#w !== null;
  }

  /** Changes handed to the worker and not yet known to be written. */
  get inFlight(): number {
    this.#prune();
    return this.#inFlight;
  }

  append(change: Change): void {
    if (outOfOrder(change, this.#lastSeen, this.#o.log)) {
      this.#refused++;
      return;
    }
    this.#lastSeen = change.id;
    this.#pending.push(change);
    if (this.#pending.length === 1) queueMicrotask(() => this.#handOver());
  }

  /** Hands over what waits, and waits (blocking, up to `ms`) until the worker has written it. */
  writePending(ms = WAIT_MS): void {
    this.#handOver();
    if (this.#inline !== null) return this.#inline.writePending();
    if (this.#w !== null && !this.#waitFor(this.#seq, ms)) {
      this.#o.log.warn(
        `the trail's worker has not written the last ${this.#inFlight} changes within ${ms} ms; reading what is written`,
      );
    }
  }

  /** Resolves once the worker has written every change taken (an API answer waits for this). */
  async written(): Promise<void> {
    this.#handOver();
    if (this.#w === null) return await this.#inline?.written();
    if (reached(Atomics.load(this.#counters, SLOT.acked), this.#seq)) return;
    await this.#ask("written");
  }

  async flush(): Promise<void> {
    this.#handOver();
    if (this.#w === null) return await this.#inline?.flush();
    await this.#ask("flush");
  }

  async close(): Promise<void> {
    this.#handOver();
    if (this.#w !== null) await this.#ask("close");
    open.delete(this);
    this.#w?.terminate();
    this.#w = null;
    this.#prune();
    await this.#inline?.close();
  }

  /** Hands this turn's changes to the worker (or, once it failed, to the trail on this thread). */
  #handOver(): void {
    const changes = this.#pending;
    if (changes.length === 0) return;
    this.#pending = [];
    if (this.#w === null) return this.#writeHere(changes);
    this.#seq = (this.#seq + 1) | 0;
    this.#unacked.push({ seq: this.#seq, changes });
    this.#inFlight += changes.length;
    this.#send({ seq: this.#seq, lines: JSON.stringify(changes) });
    this.#prune();
    // Past the bound, wait for the oldest batches until it holds (or the worker is too slow to wait for).
    while (this.#inFlight > this.#maxInFlight && this.#waitFor(this.#unacked[0]!.seq, WAIT_MS));
  }

  /**
   * Blocks until batch `seq` is written (true), or `ms` passed (false). A worker dying meanwhile
   * cannot be heard while this thread blocks, so that too ends at `ms`.
   */
  #waitFor(seq: number, ms: number): boolean {
    const until = performance.now() + ms;
    for (;;) {
      const acked = Atomics.load(this.#counters, SLOT.acked);
      if (reached(acked, seq)) break;
      const left = until - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.#counters, SLOT.acked, acked, left);
    }
    this.#prune();
    return true;
  }

  /** Forgets the batches the worker has written. */
  #prune(): void {
    const acked = Atomics.load(this.#counters, SLOT.acked);
    let i = 0;
    while (i < this.#unacked.length && reached(acked, this.#unacked[i]!.seq)) {
      const b = this.#unacked[i++]!;
      this.#inFlight -= b.changes.length;
      this.#lastId = b.changes.at(-1)!.id;
    }
    this.#unacked.splice(0, i);
  }

  #send(m: ToWorker): void {
    this.#w!.postMessage(m);
  }

  /** Asks the worker to flush, to say it has written everything before, or to close; resolves when it answers (or when it failed meanwhile). */
  #ask(what: "flush" | "close" | "written"): Promise<void> {
    const id = ++this.#nextRequest;
    return new Promise((resolve) => {
      this.#requests.set(id, resolve);
      this.#send(what === "flush" ? { flush: id } : what === "close" ? { close: id } : { written: id });
    });
  }

  #hear(m: FromWorker): void {
    if ("log" in m) return this.#o.log[m.log[0]](m.log[1]);
    const id = "flushed" in m ? m.flushed : "closed" in m ? m.closed : "wrote" in m ? m.wrote : 0;
    this.#requests.get(id)?.();
    this.#requests.delete(id);
  }

  /** The worker died: the trail goes on on this thread, from what is on disk, with what it had not written. */
  #workerFailed(why: string): void {
    const w = this.#w;
    if (w === null) return;
    this.#w = null;
    w.terminate();
    this.#prune();
    this.#o.log.error(`the trail's worker thread failed (${why}); the trail goes on on the bridge's thread`);
    this.#writeHere(this.#unacked.flatMap((b) => b.changes));
    this.#unacked = [];
    this.#inFlight = 0;
    // Whoever waited for the worker's answer is answered by the trail here.
    const waiting = [...this.#requests.values()];
    this.#requests.clear();
    void Promise.resolve(this.#inline?.flush()).then(() => waiting.forEach((resolve) => resolve()));
  }

  /**
   * Writes `changes` on this thread, but those the trail already holds (what a dying worker wrote
   * without confirming it); counted as failures while the trail cannot be opened here.
   */
  #writeHere(changes: readonly Change[]): void {
    const here = this.#trailHere();
    if (here === null) this.#refused += changes.length;
    else for (const c of changes) if (c.id > here.lastId) here.append(c);
  }

  /**
   * The trail on this thread, opened from what is on disk on first need (the worker's last line
   * included; a gap line later declares what neither could write); null while it cannot be opened.
   */
  #trailHere(): AuditTrail | null {
    if (this.#inline !== null) return this.#inline;
    try {
      this.#inline = AuditTrail.open(this.#o);
      return this.#inline;
    } catch (error) {
      this.#o.log.error(`cannot open the trail on the bridge's thread: ${errorText(error)}`);
      return null;
    }
  }
}
