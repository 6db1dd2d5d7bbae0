/**
 * The bridge's one record of changes. Every part that changes something an operator or a process
 * beside the bridge cares about (a lease, a job, a shard, the active model, a GPU, the console)
 * appends a change here, and every view reads it from here: the event stream (`GET /v1/events`),
 * the audit trail and the metrics' counts. No view has a channel of its own, so they cannot
 * disagree about what happened or in which order.
 *
 * A change is numbered (`id`, one more than the last, never reused within a record: a record
 * started after an audit trail continues its numbering) and stamped on the Clock. Who caused it
 * comes from the context the change happened in: the API runs each request inside `within()`
 * with its principal and request id, the VM sync runs a VM's lines inside it with the VM's
 * worker id, so a lease granted three calls deep still names who asked. A change made outside
 * any context (a TTL running out, the registry's watcher) says `daemon`, or what its producer
 * says.
 *
 * Listeners are called in order, synchronously, for every change: the audit trail first (it is
 * registered first), then the streams. A listener that throws is logged and the others still
 * hear of the change: it has happened whether or not a view could take it.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Clock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";
import { errorText } from "../util/error-text.ts";
import { CHANGE_KINDS } from "./types.ts";

/** Where a change came from. */
export type ChangeSource = "api" | "vm" | "k8s" | "daemon" | "registry" | "cli";
export type ChangeSeverity = "info" | "warning" | "critical";

/** Who caused a change, as far as the bridge knows. */
export interface ChangeActor {
  /** The API principal (the token's name, or `api-token` for the single token). */
  readonly principal?: string;
  /** The worker id of a VM or a Kubernetes allocation. */
  readonly worker_id?: string;
  /** The API request's `X-Request-Id`. */
  readonly request_id?: string;
  /** `METHOD /path` of the API request. */
  readonly route?: string;
}

/** What a producer appends. */
export interface ChangeInput {
  /** A type from CHANGE_KINDS (src/changes/types.ts). */
  readonly type: string;
  /** Default: the context's source, else `daemon`. */
  readonly source?: ChangeSource;
  /** Merged over the context's actor. */
  readonly actor?: ChangeActor;
  readonly lease_id?: string;
  readonly gpu_id?: string;
  /** How it ended where that can vary (`ok`, `refused`, `forced`...). */
  readonly outcome?: string;
  /** Default `info`. */
  readonly severity?: ChangeSeverity;
  /** What else a reader needs: ids, sizes, digests, reasons. Never a token, key or pointer. */
  readonly data?: Readonly<Record<string, unknown>>;
}

/** A recorded change. */
export interface Change {
  readonly id: number;
  /** RFC 3339, UTC, milliseconds. */
  readonly time: string;
  readonly type: string;
  readonly source: ChangeSource;
  readonly severity: ChangeSeverity;
  readonly actor?: ChangeActor;
  readonly lease_id?: string;
  readonly gpu_id?: string;
  readonly outcome?: string;
  readonly data: Readonly<Record<string, unknown>>;
}

/** The context a change is made in (see `within`). */
export interface ChangeContext {
  readonly source: ChangeSource;
  readonly actor?: ChangeActor;
}

/** What `since(id)` finds in the kept changes. */
export interface ChangesSince {
  /** The kept changes after `id`, oldest first. */
  readonly changes: readonly Change[];
  /**
   * Changes after `id` that are no longer kept (`from`..`to`), or that this record never made
   * (`id` ahead of the newest: another run's numbering); null when nothing was missed.
   */
  readonly gap: { readonly from: number; readonly to: number; readonly why: "evicted" | "unknown_id" } | null;
}

export interface ChangeRecordOptions {
  readonly clock: Clock;
  readonly log: Logger;
  /** The id of the first change (default 1): an audit trail's newest id + 1 after a restart. */
  readonly firstId?: number;
  /** How many of the newest changes are kept for `since` (the event stream's resume). */
  readonly keep: number;
}

const context = new AsyncLocalStorage<ChangeContext>();

/** The source of the context this runs in, if any. */
export function contextSource(): ChangeSource | undefined {
  return context.getStore()?.source;
}

/** The actor of the context this runs in, if any. */
export function contextActor(): ChangeActor | undefined {
  return context.getStore()?.actor;
}

/** Runs `fn` with `ctx` as the context of every change it makes, however deep. */
export function within<T>(ctx: ChangeContext, fn: () => T): T {
  return context.run(ctx, fn);
}

/** The record. */
export class ChangeRecord {
  readonly #o: ChangeRecordOptions;
  readonly #listeners: ((change: Change) => void)[] = [];
  /** The kept changes, a ring: `#ring[(#start + i) % keep]` is the i-th oldest. */
  readonly #ring: Change[] = [];
  #start = 0;
  #next: number;
  readonly #counts = new Map<string, number>();
  readonly #barriers: (() => Promise<void>)[] = [];

  constructor(o: ChangeRecordOptions) {
    if (!Number.isSafeInteger(o.keep) || o.keep < 1) throw new RangeError(`keep must be a positive integer, got ${o.keep}`);
    this.#o = o;
    this.#next = o.firstId ?? 1;
  }

  /** The id of the newest change (firstId - 1 before any). */
  get lastId(): number {
    return this.#next - 1;
  }

  /** Records a change and tells every listener; returns it. */
  append(input: ChangeInput): Change {
    if (!CHANGE_KINDS.has(input.type)) throw new Error(`change type ${JSON.stringify(input.type)} is not in CHANGE_KINDS`);
    const ctx = context.getStore();
    const actor = ctx?.actor !== undefined || input.actor !== undefined ? { ...ctx?.actor, ...input.actor } : undefined;
    const change: Change = {
      id: this.#next++,
      time: new Date(this.#o.clock.now()).toISOString(),
      type: input.type,
      source: input.source ?? ctx?.source ?? "daemon",
      severity: input.severity ?? "info",
      ...(actor !== undefined && Object.keys(actor).length > 0 && { actor }),
      ...(input.lease_id !== undefined && { lease_id: input.lease_id }),
      ...(input.gpu_id !== undefined && { gpu_id: input.gpu_id }),
      ...(input.outcome !== undefined && { outcome: input.outcome }),
      data: input.data ?? {},
    };
    if (this.#ring.length < this.#o.keep) this.#ring.push(change);
    else {
      this.#ring[this.#start] = change;
      this.#start = (this.#start + 1) % this.#o.keep;
    }
    this.#counts.set(change.type, (this.#counts.get(change.type) ?? 0) + 1);
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (error) {
        this.#o.log.error(`a reader of change ${change.id} (${change.type}) failed: ${errorText(error)}`);
      }
    }
    return change;
  }

  /** Makes `written` wait for `barrier` too (the audit trail: every change it took is in its file). */
  barrier(barrier: () => Promise<void>): void {
    this.#barriers.push(barrier);
  }

  /** Resolves once every change made so far is in the files of the views that keep them. */
  async written(): Promise<void> {
    await Promise.all(this.#barriers.map((b) => b()));
  }

  /** Tells `listener` of every later change; returns how to stop. */
  on(listener: (change: Change) => void): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  /** The kept changes after `id`, and what after it is not kept. */
  since(id: number): ChangesSince {
    const newest = this.lastId;
    if (id > newest) return { changes: [], gap: { from: newest + 1, to: id, why: "unknown_id" } };
    const oldest = this.#ring.length === 0 ? this.#next : this.#at(0).id;
    const skip = Math.max(0, id + 1 - oldest);
    const changes: Change[] = [];
    for (let i = skip; i < this.#ring.length; i++) changes.push(this.#at(i));
    const gap = id + 1 < oldest ? { from: id + 1, to: oldest - 1, why: "evicted" as const } : null;
    return { changes, gap };
  }

  /** How many changes of each type were recorded since start. */
  counts(): ReadonlyMap<string, number> {
    return this.#counts;
  }

  #at(i: number): Change {
    return this.#ring[(this.#start + i) % this.#ring.length]!;
  }
}
