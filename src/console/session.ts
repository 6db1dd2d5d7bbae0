/**
 * One authenticated conversation with the console over a `Conn`: send a line, wait for its
 * ack (skipping interleaved noise) under a per-ack deadline. Slow acks are waited for, not
 * treated as fatal, which is the reference's weakness over slow links.
 */
import { type Ack, parseAck } from "./ack.ts";
import { ConsoleError } from "./errors.ts";
import { encodeFrame, FrameDecoder, FrameError } from "./frame.ts";
import type { Conn } from "./transport.ts";

/** Settings for one session. */
export interface SessionOptions {
  /** How long to wait for each ack (default 5000 ms). */
  readonly ackTimeoutMs?: number;
  /** Called with every line that is not the awaited ack (log mirror, noise, stale acks). */
  readonly onOther?: (line: string) => void;
  /** Called once when the connection ends, whoever ended it. */
  readonly onClose?: (error: ConsoleError) => void;
}

interface Waiter {
  readonly verb: string;
  resolve(ack: Ack): void;
  reject(error: ConsoleError): void;
}

export const DEFAULT_ACK_TIMEOUT_MS = 5000;

/**
 * The most a multi-line reply (CAT, LS) may hold before `END`: twice the largest file the VM
 * keeps (a 32 KiB status log). A console that keeps sending past it is broken or hostile, and
 * the connection is dropped rather than buffered without end.
 */
export const MAX_REPLY_BYTES = 64 * 1024;

/** A console session; one request is in flight at a time, as the server's queue requires. */
export class ConsoleSession {
  readonly #conn: Conn;
  readonly #ackTimeoutMs: number;
  readonly #onOther: (line: string) => void;
  readonly #onClose: (error: ConsoleError) => void;
  #waiter: Waiter | null = null;
  /** Collects the lines after an ack (CAT, LS) until `END`. */
  #collector: { lines: string[]; bytes: number; done: () => void; fail: (e: ConsoleError) => void } | null = null;
  #closed: ConsoleError | null = null;
  #busy = false;
  /** Frames written so far. */
  framesSent = 0;

  constructor(conn: Conn, options: SessionOptions = {}) {
    this.#conn = conn;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
    this.#onOther = options.onOther ?? (() => {});
    this.#onClose = options.onClose ?? (() => {});
    void this.#readLoop();
  }

  /** Whether the connection is gone. */
  get closed(): boolean {
    return this.#closed !== null;
  }

  /** Why the connection ended, once it has. */
  get closedError(): ConsoleError | null {
    return this.#closed;
  }

  /**
   * Sends `line` and resolves with the ack for `verb`; rejects with a ConsoleError of kind
   * `rejected` on `ERR`, `timeout` past the deadline, `closed` if the peer hangs up.
   */
  async request(line: string, verb: string, signal?: AbortSignal): Promise<Ack> {
    if (this.#busy) throw new Error(`ConsoleSession.request: a request is already in flight (sending ${verb})`);
    // Created before waiting so its stack names the caller, not a timer.
    const timeout = new ConsoleError("timeout", `No ack for ${verb} within ${this.#ackTimeoutMs} ms`);
    if (this.#closed !== null) throw this.#closed;
    this.#busy = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    try {
      const acked = new Promise<Ack>((resolve, reject) => {
        this.#waiter = { verb, resolve, reject };
        timer = setTimeout(() => reject(timeout), this.#ackTimeoutMs);
        if (signal !== undefined) {
          onAbort = () => reject(new ConsoleError("closed", `Abandoned ${verb}: shutting down`));
          if (signal.aborted) onAbort();
          else signal.addEventListener("abort", onAbort, { once: true });
        }
      });
      await this.#conn.write(encodeFrame(line)).catch((cause) => {
        throw this.#fail(new ConsoleError("closed", `Cannot send ${verb}: the connection failed`, { cause }));
      });
      this.framesSent++;
      const ack = await acked;
      if (!ack.ok) {
        throw new ConsoleError("rejected", `Console refused ${verb}: ${ack.detail || "(no detail)"}`, { ack });
      }
      return ack;
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
      this.#waiter = null;
      this.#busy = false;
    }
  }

  /** Sends `line` and returns the content lines that follow its ack, up to `END` (CAT, LS). */
  async requestLines(line: string, verb: string, signal?: AbortSignal): Promise<string[]> {
    const lines: string[] = [];
    let done!: () => void;
    let fail!: (e: ConsoleError) => void;
    const ended = new Promise<void>((resolve, reject) => ((done = resolve), (fail = reject)));
    ended.catch(() => {}); // may fail before it is awaited
    this.#collector = { lines, bytes: 0, done, fail };
    try {
      await this.request(line, verb, signal);
      const timeout = new ConsoleError("timeout", `No END after ${verb} within ${this.#ackTimeoutMs} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([ended, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(timeout), this.#ackTimeoutMs)))])
        .finally(() => clearTimeout(timer));
      return lines;
    } finally {
      this.#collector = null;
    }
  }

  /** Closes the connection. */
  close(): void {
    this.#fail(new ConsoleError("closed", "Connection closed by the bridge"));
  }

  #fail(error: ConsoleError): ConsoleError {
    if (this.#closed === null) {
      this.#closed = error;
      this.#conn.close();
      this.#waiter?.reject(error);
      this.#onClose(error);
    }
    this.#waiter?.reject(this.#closed);
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
      if (cause instanceof FrameError) this.#fail(new ConsoleError("protocol", cause.message, { cause }));
      else this.#fail(new ConsoleError("closed", "The connection to the console failed", { cause }));
    }
  }

  #dispatch(line: string): void {
    const ack = parseAck(line);
    const waiter = this.#waiter;
    if (ack !== null && waiter !== null && ack.verb === waiter.verb) {
      this.#waiter = null;
      waiter.resolve(ack);
    } else if (this.#collector !== null && this.#waiter === null) {
      const c = this.#collector;
      if (line === "END") c.done();
      else if ((c.bytes += line.length + 1) > MAX_REPLY_BYTES) {
        this.#collector = null;
        c.fail(this.#fail(new ConsoleError("protocol", `Console reply passed ${MAX_REPLY_BYTES} bytes without END; dropping the connection`)));
      } else c.lines.push(line);
    } else {
      this.#onOther(line);
    }
  }
}
