/**
 * One authenticated conversation with the console over a `Conn`, with up to `window` lines in
 * flight: each line is sent as soon as a slot is free and its ack is matched in order (the
 * console answers every line, in the order it queued them), skipping interleaved noise. Each
 * ack has its own deadline, counted from when it could first have come: its line's send, or the
 * previous ack, whichever is later. Slow acks are waited for, not treated as fatal, which is the
 * reference's weakness over slow links.
 *
 * An ack must answer the oldest line in flight: its verb, the path it names (ECHO, CAT, LS) and,
 * for ECHO, the payload's byte count. An ack-shaped line that answers nothing in flight (a
 * duplicated, late, reordered or unsolicited ack) would otherwise be taken for the next line's
 * and fake a publish the VM never took, so it ends the connection as a protocol error.
 *
 * A listing (`CAT`, `LS`) is answered by its ack, its content lines and `END`, before the
 * console answers the next line: listings are pipelined like any line, and the lines between a
 * listing's ack and its `END` are its content, whatever they look like.
 *
 * The console's inbound queue holds 8 lines and drops the oldest when full, so the window never
 * exceeds MAX_WINDOW (src/contract/window.ts). A line whose caller gave up after sending
 * it still occupies its slot until its ack arrives, so a retry can never push the queue over.
 */
import { type Ack, parseAck } from "../contract/ack.ts";
import { ConsoleError } from "./errors.ts";
import { encodeFrame, FrameDecoder, FrameError } from "../contract/frame.ts";
import { checkWindow } from "../contract/window.ts";
import type { Conn } from "../runtime/transport.ts";
import { byteLength, concatBytes } from "../util/bytes.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { escapeLogText } from "../util/log.ts";

/** Settings for one session. */
export interface SessionOptions {
  /** How long to wait for each ack (default: `--ack-timeout-ms`'s). */
  readonly ackTimeoutMs?: number;
  /** Lines sent before their acks arrive, 1 (stop-and-wait) to MAX_WINDOW (default: `--window`'s). */
  readonly window?: number;
  /** Called with every line that is not an ack nor part of a reply (log mirror, `PONG`, noise). */
  readonly onOther?: (line: string) => void;
  /** Called once when the connection ends, whoever ended it. */
  readonly onClose?: (error: ConsoleError) => void;
  /** Times the ack deadlines (default: the system clock). */
  readonly clock?: Clock;
}

interface Entry {
  readonly line: string;
  readonly verb: string;
  /** The path the line names (ECHO, CAT, LS), checked against the ack's `path=` when it has one. */
  readonly path: string | undefined;
  /** An ECHO's payload bytes, checked against the ack's `bytes=` when it has one. */
  readonly bytes: number | undefined;
  /** A listing request (CAT, LS): its content lines follow its ack, up to `END`. */
  readonly listing: Listing | undefined;
  /** The caller's signal: lines sharing it are one batch, withdrawn together on a refusal. */
  readonly group: AbortSignal | undefined;
  readonly resolve: (ack: Ack) => void;
  readonly reject: (error: ConsoleError) => void;
  /** Set once the caller has been answered (an abandoned line stays in flight until acked). */
  settled: boolean;
  sentAt: number;
  detach: () => void;
}

/** The content of one listing, collected from its ack to its `END`. */
interface Listing {
  readonly lines: string[];
  bytes: number;
  /** The ack line, once it came (a second copy of it would be taken for content). */
  ack?: string;
  /** The entry count an `LS` ack announced. */
  entries?: number;
  readonly done: () => void;
  readonly fail: (e: ConsoleError) => void;
}

/**
 * The most a multi-line reply (CAT, LS) may hold before `END`: twice the largest file the VM
 * keeps (a 32 KiB status log). A console that keeps sending past it is broken or hostile, and
 * the connection is dropped rather than buffered without end.
 */
export const MAX_REPLY_BYTES = 64 * 1024;

/** A console session. */
export class ConsoleSession {
  readonly #conn: Conn;
  readonly #ackTimeoutMs: number;
  readonly #window: number;
  readonly #onOther: (line: string) => void;
  readonly #onClose: (error: ConsoleError) => void;
  readonly #clock: Clock;
  /** Lines waiting for a free slot, then lines sent and waiting for their acks. */
  readonly #queued: Entry[] = [];
  readonly #inFlight: Entry[] = [];
  #lastAckAt = 0;
  #timer: unknown;
  #writing: Promise<void> = Promise.resolve();
  /** A pump is due at the end of this turn: lines requested together go in one write. */
  #pumpDue = false;
  /** The listing whose ack came and whose `END` has not: every line until then is its content. */
  #reading: Listing | null = null;
  #closed: ConsoleError | null = null;
  /** Settles when the read loop has ended. */
  readonly #readDone: Promise<void>;
  /** Frames written so far. */
  framesSent = 0;

  constructor(conn: Conn, options: SessionOptions = {}) {
    this.#conn = conn;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? DEFAULTS.ackTimeoutMs;
    this.#window = checkWindow(options.window ?? DEFAULTS.window);
    this.#onOther = options.onOther ?? (() => {});
    this.#onClose = options.onClose ?? (() => {});
    this.#clock = options.clock ?? systemClock;
    this.#readDone = this.#readLoop();
  }

  /** Whether the connection is gone. */
  get closed(): boolean {
    return this.#closed !== null;
  }

  /** Why the connection ended, once it has. */
  get closedError(): ConsoleError | null {
    return this.#closed;
  }

  /** The most lines this session keeps unacknowledged. */
  get window(): number {
    return this.#window;
  }

  /** Lines sent and not yet acknowledged (abandoned ones included). */
  get inFlight(): number {
    return this.#inFlight.length;
  }

  /**
   * Sends `line` once a slot in the window is free and resolves with its ack for `verb`; rejects
   * with a ConsoleError of kind `rejected` on `ERR`, `timeout` past the deadline (which closes
   * the connection: later acks could no longer be matched), `closed` if the connection ends or
   * `signal` aborts first (with the signal's reason when that is a ConsoleError). Lines given the
   * same signal are a batch: when one is refused, those of them not yet written are withdrawn.
   */
  request(line: string, verb: string, signal?: AbortSignal): Promise<Ack> {
    return this.#enqueue(line, verb, signal, undefined);
  }

  #enqueue(line: string, verb: string, signal: AbortSignal | undefined, listing: Listing | undefined): Promise<Ack> {
    if (this.#closed !== null) return Promise.reject(this.#closed);
    return new Promise<Ack>((resolve, reject) => {
      const { path, bytes } = expectedAck(line, verb);
      const entry: Entry = {
        line,
        verb,
        path,
        bytes,
        listing,
        // A listing's refusal (a file not found) is an answer, not a failed batch.
        group: listing === undefined ? signal : undefined,
        resolve,
        reject,
        settled: false,
        sentAt: 0,
        detach: () => {},
      };
      if (signal !== undefined) {
        const onAbort = () => {
          const reason = signal.reason instanceof ConsoleError
            ? signal.reason
            : new ConsoleError("closed", `Abandoned ${verb}: shutting down`);
          const i = this.#queued.indexOf(entry);
          if (i >= 0) this.#queued.splice(i, 1); // never sent: forget it
          this.#settle(entry, reason);
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        entry.detach = () => signal.removeEventListener("abort", onAbort);
      }
      this.#queued.push(entry);
      if (!this.#pumpDue) {
        this.#pumpDue = true;
        queueMicrotask(() => {
          this.#pumpDue = false;
          this.#pump();
        });
      }
    });
  }

  /**
   * Sends `line` and returns the content lines that follow its ack, up to `END` (CAT, LS). It
   * takes a slot of the window like any line, so several listings, and lines after them, may be
   * in flight at once: each one's content is what comes between its ack and its `END`. The
   * request is queued before this returns, so lines requested after it are sent after it.
   */
  async requestLines(line: string, verb: string, signal?: AbortSignal): Promise<string[]> {
    let done!: () => void;
    let fail!: (e: ConsoleError) => void;
    const ended = new Promise<void>((resolve, reject) => ((done = resolve), (fail = reject)));
    ended.catch(() => {}); // may fail before it is awaited
    const listing: Listing = { lines: [], bytes: 0, done, fail };
    await this.#enqueue(line, verb, signal, listing);
    const timeout = new ConsoleError("timeout", `No END after ${verb} within ${this.#ackTimeoutMs} ms`);
    let timer: unknown;
    await Promise.race([
      ended,
      new Promise<never>((_, reject) => (timer = this.#clock.setTimer(this.#ackTimeoutMs, () => reject(timeout)))),
    ])
      .finally(() => this.#clock.clearTimer(timer));
    return listing.lines;
  }

  /** Closes the connection. */
  close(): void {
    this.#fail(new ConsoleError("closed", "Connection closed by the bridge"));
  }

  /** Writes queued lines while the window has room, in one write. */
  #pump(): void {
    if (this.#closed !== null) return;
    const frames: Uint8Array[] = [];
    const now = this.#clock.now();
    while (this.#queued.length > 0 && this.#inFlight.length < this.#window) {
      const entry = this.#queued.shift()!;
      try {
        frames.push(encodeFrame(entry.line));
      } catch (error) {
        this.#settle(entry, new ConsoleError("protocol", (error as Error).message, { cause: error }));
        continue;
      }
      entry.sentAt = now;
      this.#inFlight.push(entry);
    }
    if (frames.length === 0) return;
    this.framesSent += frames.length;
    if (this.#inFlight.length === frames.length) this.#arm();
    const bytes = frames.length === 1 ? frames[0]! : concatBytes(frames);
    // Writes are chained: a runtime may take a large write in several parts. A failed write
    // means the console hung up, often right after answering an earlier line (ERR AUTH closes):
    // what it sent before hanging up is read first, so that answer is the one callers see.
    this.#writing = this.#writing.then(() => this.#conn.write(bytes)).catch((cause) => {
      const failed = new ConsoleError("closed", "Cannot send to the console: the connection failed", { cause });
      let timer: unknown;
      const late = new Promise<void>((resolve) => (timer = this.#clock.setTimer(this.#ackTimeoutMs, resolve)));
      void Promise.race([this.#readDone, late]).then(() => {
        this.#clock.clearTimer(timer);
        this.#fail(failed);
      });
    });
  }

  /** (Re)starts the deadline of the oldest line in flight. */
  #arm(): void {
    this.#clock.clearTimer(this.#timer);
    const head = this.#inFlight[0];
    if (head === undefined) return;
    const from = Math.max(head.sentAt, this.#lastAckAt);
    const wait = Math.max(0, from + this.#ackTimeoutMs - this.#clock.now());
    this.#timer = this.#clock.setTimer(wait, () => {
      this.#fail(new ConsoleError("timeout", `No ack for ${head.verb} within ${this.#ackTimeoutMs} ms`));
    });
  }

  #settle(entry: Entry, outcome: Ack | ConsoleError): void {
    if (entry.settled) return;
    entry.settled = true;
    entry.detach();
    if (outcome instanceof ConsoleError) entry.reject(outcome);
    else if (outcome.ok) entry.resolve(outcome);
    else {
      // The detail is the console's text, shown on a terminal by `console` and the one-shot publish.
      const why = escapeLogText(outcome.detail) || "(no detail)";
      entry.reject(new ConsoleError("rejected", `Console refused ${entry.verb}: ${why}`, { ack: outcome }));
    }
  }

  /** A line of a batch was refused: its lines not yet written are not sent at all. */
  #withdraw(group: AbortSignal): void {
    const withdrawn = new ConsoleError("closed", "Withdrawn: an earlier line in the window was refused");
    for (let i = this.#queued.length - 1; i >= 0; i--) {
      const entry = this.#queued[i]!;
      if (entry.group !== group) continue;
      this.#queued.splice(i, 1);
      this.#settle(entry, withdrawn);
    }
  }

  #fail(error: ConsoleError): ConsoleError {
    if (this.#closed === null) {
      this.#closed = error;
      this.#clock.clearTimer(this.#timer);
      this.#conn.close();
      // The first line in flight gets the real reason; the rest were never answered.
      this.#reading?.fail(error);
      this.#reading = null;
      for (const entry of [...this.#inFlight, ...this.#queued]) this.#settle(entry, error);
      this.#inFlight.length = 0;
      this.#queued.length = 0;
      this.#onClose(error);
    }
    return this.#closed;
  }

  async #readLoop(): Promise<void> {
    const decoder = new FrameDecoder();
    try {
      for await (const chunk of this.#conn.readable) {
        for (const line of decoder.push(chunk)) this.#dispatch(line);
      }
      this.#fail(new ConsoleError("closed", "The console closed the connection"));
    } catch (cause) {
      if (cause instanceof FrameError) {
        for (const line of cause.lines) this.#dispatch(line); // whole lines sent before the garbage
        this.#fail(new ConsoleError("protocol", cause.message, { cause }));
      } else this.#fail(new ConsoleError("closed", "The connection to the console failed", { cause }));
    }
  }

  #dispatch(line: string): void {
    if (this.#closed !== null) return;
    const c = this.#reading;
    if (c !== null) return this.#content(c, line);
    const head = this.#inFlight[0];
    const ack = parseAck(line);
    if (ack === null) return this.#onOther(line);
    const mismatch = head === undefined ? "nothing is in flight" : unmatched(head, ack);
    if (mismatch !== null) {
      // Taken for the next line's, it would fake that line's answer: the attempt is over.
      const shown = escapeLogText(line.length > 160 ? `${line.slice(0, 160)}…` : line);
      this.#fail(new ConsoleError("protocol", `Unmatched ack from the console (${mismatch}): ${shown}`));
      return;
    }
    this.#inFlight.shift();
    this.#lastAckAt = this.#clock.now();
    // Its content may follow in this very read: collect from the next line on.
    const listing = head!.listing;
    if (listing !== undefined && ack.ok) {
      this.#reading = listing;
      listing.ack = line;
      if (head!.verb === "LS" && /^[0-9]{1,9}$/.test(ack.fields.entries ?? "")) listing.entries = Number(ack.fields.entries);
    }
    this.#settle(head!, ack);
    if (!ack.ok && head!.group !== undefined) this.#withdraw(head!.group);
    this.#arm();
    this.#pump();
  }

  /** A line of `c`'s content: any line, ack look-alikes included, up to `END`. */
  #content(c: Listing, line: string): void {
    if (line === "END") {
      this.#reading = null;
      if (c.entries !== undefined && c.entries !== c.lines.length) {
        c.fail(this.#fail(new ConsoleError("protocol", `Console listed ${c.lines.length} entries after announcing ${c.entries}`)));
        return;
      }
      c.done();
      // The next ack could not come before this END: its deadline runs from here.
      this.#lastAckAt = this.#clock.now();
      this.#arm();
    } else if (c.lines.length === 0 && line === c.ack) {
      // The ack again: a duplicated ack would otherwise be the file's first line (a VM line
      // the bridge acts on). No real file starts so: ctl starts with its seed line, the other
      // files hold JSON objects only.
      c.fail(this.#fail(new ConsoleError("protocol", `Console sent the ack twice: ${escapeLogText(line.slice(0, 160))}`)));
    } else if ((c.bytes += line.length + 1) > MAX_REPLY_BYTES) {
      c.fail(
        this.#fail(new ConsoleError("protocol", `Console reply passed ${MAX_REPLY_BYTES} bytes without END; dropping the connection`)),
      );
    } else c.lines.push(line);
  }
}

/** What the ack of `line` must name: the path for ECHO, CAT and LS, and an ECHO's payload bytes. */
function expectedAck(line: string, verb: string): { path: string | undefined; bytes: number | undefined } {
  const rest = line.slice(verb.length + 1);
  if (verb === "ECHO") {
    const space = rest.indexOf(" ");
    return { path: space < 0 ? rest : rest.slice(0, space), bytes: space < 0 ? 0 : byteLength(rest.slice(space + 1)) };
  }
  if (verb === "CAT" || verb === "LS") {
    const path = rest.trim();
    return { path: path === "" ? undefined : path, bytes: undefined };
  }
  return { path: undefined, bytes: undefined };
}

/** Why `ack` does not answer `entry` (null when it does). Fields a console leaves out are not checked. */
function unmatched(entry: Entry, ack: Ack): string | null {
  if (ack.verb !== entry.verb) return `${entry.verb} is awaited`;
  const path = ack.fields.path;
  if (entry.path !== undefined && path !== undefined && path !== entry.path) return `${entry.verb} of ${entry.path} is awaited`;
  const bytes = ack.fields.bytes;
  if (entry.bytes !== undefined && ack.ok && bytes !== undefined && !(/^[0-9]{1,9}$/.test(bytes) && Number(bytes) === entry.bytes)) {
    return `the ${entry.verb} of ${entry.bytes} bytes to ${entry.path} is awaited`;
  }
  return null;
}
