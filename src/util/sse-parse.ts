/**
 * A Server-Sent Events parser for clients of `GET /v1/events`: bytes in, events out, no socket.
 * It follows the HTML standard's rules: lines end in CRLF, LF or CR (a CR at the end of a chunk
 * waits to see whether an LF follows), `:` starts a comment, `data` lines join with newlines, a
 * blank line dispatches, an event with no data is not dispatched, and the last event id carries
 * over to later events that set none (so an event the stream makes itself, with no `id:`, leaves
 * a client's resume point where it was). What is left unterminated at the end is dropped.
 */

/** One dispatched event. */
export interface SseEvent {
  /** `event:`, or `message`. */
  readonly event: string;
  readonly data: string;
  /** The last event id seen up to this event (null: none yet). */
  readonly lastEventId: string | null;
}

/** Feed it chunks; it returns the events they complete. */
export class SseParser {
  readonly #decoder = new TextDecoder();
  #pending = "";
  #data: string[] = [];
  #event = "";
  #lastId: string | null;

  /** `lastEventId`: where a resumed stream starts from. */
  constructor(lastEventId: string | null = null) {
    this.#lastId = lastEventId;
  }

  get lastEventId(): string | null {
    return this.#lastId;
  }

  push(chunk: Uint8Array | string): SseEvent[] {
    this.#pending += typeof chunk === "string" ? chunk : this.#decoder.decode(chunk, { stream: true });
    const out: SseEvent[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.#pending);
      if (m === null) break;
      // A CR as the very last character may be the first half of a CRLF split across chunks.
      if (m[0] === "\r" && m.index === this.#pending.length - 1) break;
      const line = this.#pending.slice(0, m.index);
      this.#pending = this.#pending.slice(m.index + m[0].length);
      const event = this.#line(line);
      if (event !== null) out.push(event);
    }
    return out;
  }

  #line(line: string): SseEvent | null {
    if (line === "") return this.#dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
    else if (field === "id" && !value.includes("\0")) this.#lastId = value;
    return null;
  }

  #dispatch(): SseEvent | null {
    const data = this.#data;
    const event = this.#event;
    this.#data = [];
    this.#event = "";
    if (data.length === 0) return null;
    return { event: event === "" ? "message" : event, data: data.join("\n"), lastEventId: this.#lastId };
  }
}
