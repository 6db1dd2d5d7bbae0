/**
 * What the bridge's thread (threaded.ts) and the audit trail's worker (trail-worker.ts) say to
 * each other, and the counters they share without messages.
 *
 * To the worker: `{ init }` once; then `{ seq, lines }` per batch (a JSON array of changes),
 * `{ flush: id }`, `{ written: id }` (answered once every batch before it is written), `{ close: id }`.
 * From it: `{ ready: true }` on load, `{ log: [level, message] }`, `{ flushed: id }`, `{ wrote: id }`,
 * `{ closed: id }`. Once a batch is written (or has failed and been counted)
 * its `seq` goes into the ACKED slot and waiters are woken, so the bridge's thread can wait for
 * a batch (Atomics.wait) even where it cannot take a message: a reader about to look at the
 * files, the process's exit.
 */
import type { AuditTrailOptions, TrailStart } from "./trail.ts";

/** Int32 slots of the shared counters. */
export const SLOT = {
  /** The seq of the last batch the worker has handled. */
  acked: 0,
  /** The worker's trail's `failures`. */
  failures: 1,
  /** The worker's trail's `syncs`. */
  syncs: 2,
  /** 1 while the worker's trail's last write failed. */
  failing: 3,
} as const;

/** Bytes of the shared counters. */
export const SLOTS_BYTES = 4 * Object.keys(SLOT).length;

export interface TrailInit {
  readonly options: Omit<AuditTrailOptions, "log">;
  readonly start: TrailStart;
  readonly counters: SharedArrayBuffer;
}

export type LogLevelName = "debug" | "info" | "warn" | "error";

export type ToWorker =
  | { readonly init: TrailInit }
  | { readonly seq: number; readonly lines: string }
  | { readonly flush: number }
  | { readonly written: number }
  | { readonly close: number };

export type FromWorker =
  | { readonly ready: true }
  | { readonly log: readonly [LogLevelName, string] }
  | { readonly flushed: number }
  | { readonly wrote: number }
  | { readonly closed: number };
