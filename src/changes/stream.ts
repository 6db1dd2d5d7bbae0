/**
 * The record of changes as Server-Sent Events (`GET /v1/events`): one event per change, its `id`
 * the change's, its `event` the change's type, its `data` the change as one line of JSON.
 *
 * A client that reconnects with `Last-Event-ID` gets the kept changes after that id first; if
 * some are no longer kept (or the id is not this record's) it is told so by a `stream.gap` event
 * before anything else, never left to believe it missed nothing. A client that cannot keep up is
 * never allowed to slow the bridge: the stream is pulled (the runtime asks for more only when the
 * socket takes it), changes wait in a per-client queue of at most `maxQueued`, and a client whose
 * queue would pass that gets one last `stream.dropped` event saying why and where to resume, and
 * is closed. A comment line every `heartbeatMs` keeps idle connections open through proxies.
 */
import type { Clock } from "../util/clock.ts";
import type { Change, ChangeRecord } from "./record.ts";
import { CHANGE_KINDS } from "./types.ts";

/** Which changes a client wants: type patterns (`lease.*`, `model.activated`, `*`) and a lease. */
export interface EventFilter {
  /** null: every streamed type. */
  readonly types: readonly string[] | null;
  readonly lease: string | null;
  /** Whether the client may see this change at all (an operator's own leases, src/api/scope.ts); absent: all. */
  readonly visible?: (change: Change) => boolean;
}

/**
 * `types=` as patterns, each an exact streamed type, `prefix.*`, or `*`; a pattern that matches no
 * streamed type is an error naming it and the known types.
 */
export function parseTypePatterns(text: string): { patterns: string[] } | { error: string } {
  const patterns = text.split(",").map((p) => p.trim()).filter((p) => p !== "");
  if (patterns.length === 0) return { error: "types: give at least one type or pattern (lease.*, model.activated, *)" };
  const streamed = [...CHANGE_KINDS.values()].filter((k) => k.streamed).map((k) => k.type);
  for (const p of patterns) {
    if (!streamed.some((t) => typeMatches(p, t))) {
      return { error: `types: ${JSON.stringify(p)} matches no event type; the types are ${streamed.join(", ")}` };
    }
  }
  return { patterns };
}

/** Whether `pattern` (`*`, `prefix.*` or a type) matches `type`. */
export function typeMatches(pattern: string, type: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith(".*")) return type.startsWith(pattern.slice(0, -1));
  return pattern === type;
}

/** Whether a client with `filter` gets `change`. */
export function wants(filter: EventFilter, change: Change): boolean {
  if (CHANGE_KINDS.get(change.type)?.streamed !== true) return false;
  if (filter.lease !== null && change.lease_id !== filter.lease) return false;
  if (filter.visible !== undefined && !filter.visible(change)) return false;
  return filter.types === null || filter.types.some((p) => typeMatches(p, change.type));
}

/** One change as an SSE frame. */
export function sseFrame(change: Change): string {
  return `id: ${change.id}\nevent: ${change.type}\ndata: ${JSON.stringify(change)}\n\n`;
}

/** A frame the stream makes itself (no id, so a client's Last-Event-ID stays the last change's). */
function noticeFrame(type: "stream.gap" | "stream.dropped", data: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

export interface EventHubOptions {
  readonly record: ChangeRecord;
  readonly clock: Clock;
  /** Most changes one client may have waiting before it is dropped. */
  readonly maxQueued: number;
  /** How often an idle stream gets a comment line. */
  readonly heartbeatMs: number;
}

/** The open event streams over one record, with counts for the metrics. */
export class EventHub {
  readonly #o: EventHubOptions;
  #open = 0;
  #dropped = 0;

  constructor(o: EventHubOptions) {
    this.#o = o;
  }

  /** Streams open now. */
  get clients(): number {
    return this.#open;
  }

  /** Streams closed since start because their client fell `maxQueued` behind. */
  get dropped(): number {
    return this.#dropped;
  }

  /** How many changes of each type were recorded since start. */
  counts(): ReadonlyMap<string, number> {
    return this.#o.record.counts();
  }

  /**
   * A stream of the changes `filter` wants: those after `after` that are kept, then every new
   * one (after: null: only new ones).
   */
  open(filter: EventFilter, after: number | null): ReadableStream<Uint8Array> {
    const { record, clock, maxQueued, heartbeatMs } = this.#o;
    const encoder = new TextEncoder();
    /** Frames waiting for the client, with the change id each carries (null: a notice or heartbeat). */
    const queue: { readonly text: string; readonly id: number | null }[] = [];
    let lastSent = after ?? record.lastId;
    let closing = false;
    let done = false;
    let cancelled = false;
    let wake: (() => void) | null = null;
    let heartbeat: unknown;
    const push = (text: string, id: number | null = null) => {
      queue.push({ text, id });
      const w = wake;
      wake = null;
      w?.();
    };
    const finish = () => {
      if (done) return;
      done = true;
      this.#open--;
      unsubscribe();
      clock.clearTimer(heartbeat);
    };
    const onChange = (change: Change) => {
      if (closing || !wants(filter, change)) return;
      if (queue.length >= maxQueued) {
        // Too far behind: what waits is dropped with it, and the client learns where to resume.
        closing = true;
        this.#dropped++;
        queue.length = 0;
        push(noticeFrame("stream.dropped", {
          reason: `this client fell ${maxQueued} events behind; reconnect with Last-Event-ID: ${lastSent} to resume from the kept events`,
          resume_after: lastSent,
        }));
        finish();
        return;
      }
      push(sseFrame(change), change.id);
    };
    // Subscribed before the backlog is read: both happen in this turn, so nothing falls between.
    const unsubscribe = record.on(onChange);
    this.#open++;
    if (after !== null) {
      const { changes, gap } = record.since(after);
      if (gap !== null) {
        push(noticeFrame("stream.gap", {
          from: gap.from,
          to: gap.to,
          why: gap.why,
          message: gap.why === "evicted"
            ? `events ${gap.from}-${gap.to} are no longer kept (the bridge keeps the newest ones); what they changed must be read again`
            : `event ${gap.to} is not one of this bridge's (its newest is ${gap.from - 1}; it may have restarted without an audit trail)`,
        }));
      }
      for (const c of changes) if (wants(filter, c)) push(sseFrame(c), c.id);
    }
    const beat = () => {
      heartbeat = clock.setTimer(heartbeatMs, () => {
        if (done) return;
        if (queue.length === 0) push(": keep-alive\n\n");
        beat();
      });
    };
    beat();
    const opened = record.lastId;
    return new ReadableStream<Uint8Array>({
      // A first line at once, so the client has the answer's headers before the first change.
      start: (controller) => controller.enqueue(encoder.encode(`: gpu-bridge-host events; newest change ${opened}\n\n`)),
      // Called only when the runtime can send more: a client that reads nothing is never pulled.
      pull: async (controller) => {
        while (queue.length === 0 && !closing) await new Promise<void>((resolve) => (wake = resolve));
        if (cancelled) return;
        if (queue.length > 0) {
          const text = queue.map((f) => f.text).join("");
          for (const f of queue) if (f.id !== null) lastSent = f.id;
          queue.length = 0;
          controller.enqueue(encoder.encode(text));
        }
        if (closing) {
          finish();
          controller.close();
        }
      },
      cancel: () => {
        cancelled = true;
        closing = true;
        finish();
        const w = wake;
        wake = null;
        w?.();
      },
    }, { highWaterMark: 0 });
  }
}
