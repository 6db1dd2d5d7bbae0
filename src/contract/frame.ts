/**
 * Console framing (docs/protocol.md#8-the-console): a little-endian u32 total length (header included,
 * 4..8192), then the UTF-8 line with no newline. The decoder is a pure bytes-to-lines state
 * machine that never sees a socket, so frames split across reads are handled by construction.
 */
import { LIMITS } from "./limits.ts";
import { decodeLossless, encodeLossless } from "../util/bytes.ts";

export const MIN_FRAME = 4;
export const MAX_FRAME = LIMITS.frameBytes;

/**
 * A frame whose length header is outside 4..8192: the stream cannot be resynchronised. `lines`
 * holds the complete lines that came before the bad header in the same `push`: they were sent
 * whole, and a caller should handle them before giving up on the stream.
 */
export class FrameError extends Error {
  override name = "FrameError";
  readonly lines: readonly string[];

  constructor(message: string, lines: readonly string[] = []) {
    super(message);
    this.lines = lines;
  }
}

/**
 * One frame for `line`, header and body in a single buffer (so it goes out in one write). A byte
 * that a received line held outside UTF-8 goes back as that byte (src/util/bytes.ts).
 */
export function encodeFrame(line: string): Uint8Array {
  const body = encodeLossless(line);
  const total = body.length + 4;
  if (total > MAX_FRAME) {
    throw new RangeError(`Cannot frame line: it is ${body.length} bytes and a frame holds at most ${MAX_FRAME - 4}`);
  }
  const frame = new Uint8Array(total);
  new DataView(frame.buffer).setUint32(0, total, true);
  frame.set(body, 4);
  return frame;
}

/** Incremental frame decoder: `push` bytes as they arrive, get back the complete lines. */
export class FrameDecoder {
  #buf = new Uint8Array(MAX_FRAME * 2);
  #len = 0;

  /**
   * Appends `chunk` and returns every line it completes; throws FrameError on a bad length,
   * carrying the lines completed before it.
   */
  push(chunk: Uint8Array): string[] {
    const lines: string[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      const room = this.#buf.length - this.#len;
      const take = Math.min(room, chunk.length - offset);
      this.#buf.set(chunk.subarray(offset, offset + take), this.#len);
      this.#len += take;
      offset += take;
      this.#drain(lines);
    }
    return lines;
  }

  /** Bytes held of an incomplete frame. */
  get pending(): number {
    return this.#len;
  }

  #drain(lines: string[]): void {
    let start = 0;
    while (this.#len - start >= 4) {
      const view = new DataView(this.#buf.buffer, this.#buf.byteOffset + start, 4);
      const total = view.getUint32(0, true);
      if (total < MIN_FRAME || total > MAX_FRAME) {
        this.#len = 0;
        throw new FrameError(`Cannot decode frame: length ${total} is outside ${MIN_FRAME}..${MAX_FRAME}`, lines);
      }
      if (this.#len - start < total) break;
      // Lossless: a VM line that is not UTF-8 keeps its bytes (never U+FFFD) to be republished as is.
      lines.push(decodeLossless(this.#buf.subarray(start + 4, start + total)));
      start += total;
    }
    if (start > 0) {
      this.#buf.copyWithin(0, start, this.#len);
      this.#len -= start;
    }
  }
}
