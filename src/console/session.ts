/**
 * One authenticated conversation with the console over a `Conn`: send a line, wait for its
 * ack (skipping interleaved noise) under a per-ack deadline. Slow acks are waited for, not
 * treated as fatal, which is the reference's weakness over slow links.
 */
import { type Ack, parseAck } from "../contract/ack.ts";
import { ConsoleError } from "./errors.ts";
import { encodeFrame, FrameDecoder, FrameError } from "../contract/frame.ts";
import type { Conn } from "../runtime/transport.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { DEFAULTS } from "../cli/defaults.ts";

/** Settings for one session. */
export interface SessionOptions {
  /** How long to wait for each ack (default: `--ack-timeout-ms`'s). */
  readonly ackTimeoutMs?: number;
  /** Called with every line that is not the awaited ack (log mirror, noise, stale acks). */
  readonly onOther?: (line: string) => void;
  /** Called once when the connection ends, whoever ended it. */
  readonly onClose?: (error: ConsoleError) => void;
  /** Times the ack deadlines (default: the system clock). */
  readonly clock?: Clock;
}

interface Waiter {
  readonly verb: string;
  resolve(ack: Ack): void;
  reject(error: ConsoleError): void;
}


/** A console session; one request is in flight at a time, as the server's queue requires. */
export class ConsoleSession {
  readonly #conn: Conn;
  readonly #ackTimeoutMs: number;
  readonly #onOther: (line: string) => void;
  readonly #onClose: (error: ConsoleError) => void;
  readonly #clock: Clock;
  #waiter: Waiter | null = null;
  /** Collects the lines after an ack (CAT, LS) until `END`. */
  #collector: { lines: string[]; done: () => void } | null = null;
  #closed: ConsoleError | null = null;
  #busy = false;
  /** Frames written so far. */
  framesSent = 0;

  constructor(conn: Conn, options: SessionOptions = {}) {
    this.#conn = conn;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? DEFAULTS.ackTimeoutMs;
    this.#onOther = options.onOther ?? (() => {});
    this.#onClose = options.onClose ?? (() => {});
    this.#clock = options.clock ?? systemClock;
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
    let timer: unknown;
    let onAbort: (() => void) | undefined;
    try {
      const acked = new Promise<Ack>((resolve, reject) => {
        this.#waiter = { verb, resolve, reject };
        timer = this.#clock.setTimer(this.#ackTimeoutMs, () => reject(timeout));
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
      this.#clock.clearTimer(timer);
      if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
      this.#waiter = null;
      this.#busy = false;
    }
  }

  /** Sends `line` and returns the content lines that follow its ack, up to `END` (CAT, LS). */
  async requestLines(line: string, verb: string, signal?: AbortSignal): Promise<string[]> {
    const lines: string[] = [];
    let done!: () => void;
    const ended = new Promise<void>((resolve) => (done = resolve));
    this.#collector = { lines, done };
    try {
      await this.request(line, verb, signal);
      const timeout = new ConsoleError("timeout", `No END after ${verb} within ${this.#ackTimeoutMs} ms`);
      let timer: unknown;
      await Promise.race([ended, new Promise<never>((_, reject) => (timer = this.#clock.setTimer(this.#ackTimeoutMs, () => reject(timeout))))])
        .finally(() => this.#clock.clearTimer(timer));
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
      if (cause instanceof FrameError) {
        for (const line of cause.lines) this.#dispatch(line); // whole lines sent before the garbage
        this.#fail(new ConsoleError("protocol", cause.message, { cause }));
      }
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
      if (line === "END") this.#collector.done();
      else this.#collector.lines.push(line);
    } else {
      this.#onOther(line);
    }
  }
}
