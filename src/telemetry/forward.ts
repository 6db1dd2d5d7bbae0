/**
 * Forwards spooled telemetry to the Queen over the console connection the publisher holds
 * (docs/protocol.md#10-queen-telemetry): a segment is asked for through `/queen/telemetry/<device>/ctl`, each
 * record goes as NDJSON in `cohsh-telemetry-push/v1` envelopes small enough for one ECHO, and
 * the spool moves past a record only once its last chunk is acknowledged (one sync per record;
 * after a crash a half-sent record is resent under the same seqs, which the Queen drops as
 * duplicates, so nothing arrives twice). A quota refusal
 * pauses forwarding (records keep spooling) without holding up snapshot publishes.
 */
import { ackDelayMs } from "../contract/ack.ts";
import { ConsoleError } from "../console/errors.ts";
import type { ConsoleSession } from "../console/session.ts";
import { LIMITS } from "../contract/limits.ts";
import type { Logger } from "../util/log.ts";
import { backoffDelay } from "../util/backoff.ts";
import { encodeRecord, type TelemetryRecord } from "./record.ts";
import type { Spool } from "./spool.ts";
import { byteLength } from "../util/bytes.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { DEFAULTS } from "../cli/defaults.ts";
import { isSafeId } from "../contract/ids.ts";

export const TELEMETRY_MIME = "application/x-ndjson";

export interface ForwarderOptions {
  readonly spool: Spool;
  readonly deviceId: string;
  readonly log: Logger;
  /** Start a new Queen segment past this many payload bytes (default: `--queen-segment-kb`'s). */
  readonly queenSegmentBytes?: number;
  /** Times quota pauses (default: the system clock). */
  readonly clock?: Clock;
}

/** The envelope for one chunk. */
export function envelope(seq: number, chunk: string): string {
  return `{"schema":"cohsh-telemetry-push/v1","seq":${seq},"mime":"${TELEMETRY_MIME}","payload":${JSON.stringify(chunk)}}`;
}

/**
 * Cuts `text` into chunks whose envelopes fit one ECHO payload (128 bytes), numbering them from
 * `firstSeq`. Deterministic, so a record resumed after a restart is cut the same way.
 */
export function chunkRecord(text: string, firstSeq: number): string[] {
  const chunks: string[] = [];
  const points = [...text];
  let i = 0;
  let seq = firstSeq;
  while (i < points.length) {
    let chunk = "";
    while (i < points.length) {
      const next = chunk + points[i];
      if (byteLength(envelope(seq, next)) > LIMITS.echoPayloadBytes) break;
      chunk = next;
      i++;
    }
    if (chunk === "") throw new RangeError(`Cannot chunk telemetry: one character does not fit an envelope at seq ${seq}`);
    chunks.push(chunk);
    seq++;
  }
  return chunks;
}

export class TelemetryForwarder {
  readonly #o: ForwarderOptions;
  #blockedUntil = 0;
  #attempt = 0;
  /** Records the Queen acknowledged since start. */
  forwarded = 0;

  constructor(options: ForwarderOptions) {
    this.#o = options;
  }

  /** Whether there is a record to send and no quota pause in force. */
  hasWork(): boolean {
    return this.#now() >= this.#blockedUntil && this.#o.spool.next() !== null;
  }

  /** Milliseconds until a quota pause ends (0 if none). */
  pausedFor(): number {
    return Math.max(0, this.#blockedUntil - this.#now());
  }

  /**
   * Sends the record at the spool's position, resuming after its last acknowledged chunk.
   * Link failures throw (the publisher reconnects); refusals pause forwarding and return.
   */
  async step(session: ConsoleSession, signal?: AbortSignal): Promise<void> {
    const spool = this.#o.spool;
    const next = spool.next();
    if (next === null) return;
    const text = encodeRecord(next.record as TelemetryRecord) + "\n";
    const size = byteLength(text);
    const base = `/queen/telemetry/${this.#o.deviceId}`;
    try {
      let { queenSeg, seq, queenBytes } = next.progress;
      const fresh = next.progress.chunk === 0;
      if (queenSeg === null || (fresh && queenBytes > 0 && queenBytes + size > (this.#o.queenSegmentBytes ?? DEFAULTS.queenSegmentKb * 1024))) {
        queenSeg = await this.#newSegment(session, base, signal);
        seq = 1;
        queenBytes = 0;
        spool.saveProgress({ queenSeg, seq, queenBytes, chunk: 0 });
      }
      // Chunks are numbered from the seq the record started at, so a resumed record is re-cut identically.
      const firstSeq = seq - next.progress.chunk;
      const chunks = chunkRecord(text, firstSeq);
      for (let c = next.progress.chunk; c < chunks.length; c++) {
        await session.request(`ECHO ${base}/seg/${queenSeg} ${envelope(firstSeq + c, chunks[c]!)}`, "ECHO", signal);
        // In memory only: the record's first seq is durable already, and the Queen drops seqs it has.
        if (c < chunks.length - 1) spool.saveProgress({ chunk: c + 1, seq: firstSeq + c + 1 }, false);
      }
      spool.advance({ queenSeg, seq: firstSeq + chunks.length, queenBytes: queenBytes + size });
      this.forwarded++;
      this.#attempt = 0;
    } catch (error) {
      if (!(error instanceof ConsoleError) || error.kind !== "rejected") throw error;
      const asked = error.ack === undefined ? undefined : ackDelayMs(error.ack);
      const full = /segment-full|no-such-segment/.test(error.ack?.detail ?? "");
      if (full) spool.saveProgress({ queenSeg: null, chunk: 0, seq: 1, queenBytes: 0 });
      const delay = full ? 0 : asked ?? backoffDelay(this.#attempt++);
      this.#blockedUntil = this.#now() + delay;
      this.#o.log.warn(`telemetry: ${error.message}; ${full ? "starting a new segment" : `pausing forwarding for ${delay} ms, records keep spooling`}`);
    }
  }

  async #newSegment(session: ConsoleSession, base: string, signal?: AbortSignal): Promise<string> {
    const ack = await session.request(`ECHO ${base}/ctl {"new":"segment","mime":"${TELEMETRY_MIME}"}`, "ECHO", signal);
    const id = ack.fields.seg_id ?? (await session.requestLines(`CAT ${base}/latest`, "CAT", signal))[0]?.trim();
    if (id === undefined || !isSafeId(id, 32)) {
      throw new ConsoleError("protocol", `The Queen gave no usable segment id for ${base} (ack: ${ack.detail})`);
    }
    this.#o.log.info(`telemetry: appending to ${base}/seg/${id}`);
    return id;
  }

  #now(): number {
    return (this.#o.clock ?? systemClock).now();
  }
}
