/**
 * Forwards spooled telemetry to the Queen over the console connection the publisher holds
 * (docs/protocol.md#10-queen-telemetry): a segment is asked for through `/queen/telemetry/<device>/ctl`, each
 * record goes as NDJSON in `cohsh-telemetry-push/v1` envelopes small enough for one ECHO, and
 * the spool moves past a record only once its last chunk is acknowledged (synced once per batch).
 * The Queen stores whatever it is sent, so nothing is resent blindly: on every new connection
 * (after a dropped link or a crash) and after a refusal, the segment is read back first, the
 * chunks it holds are taken as delivered, and a segment holding anything else is left for a new
 * one. A segment is kept within what one `CAT` can read back (64 lines). A quota refusal pauses
 * forwarding (records keep spooling) without holding up snapshot publishes.
 */
import { ackDelayMs } from "../contract/ack.ts";
import { ConsoleError } from "../console/errors.ts";
import { type Outgoing, sendAll } from "../console/publish.ts";
import type { ConsoleSession } from "../console/session.ts";
import { LIMITS } from "../contract/limits.ts";
import type { Logger } from "../util/log.ts";
import { backoffDelay } from "../util/backoff.ts";
import { encodeRecord, type TelemetryRecord } from "./record.ts";
import type { Spool } from "./spool.ts";
import { byteLength } from "../util/bytes.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { isSafeId } from "../contract/ids.ts";
import { DiskWriteError } from "../util/files.ts";
import { envelopeRun, QUEEN } from "../contract/queen.ts";

export const TELEMETRY_MIME = "application/x-ndjson";
/**
 * One step plans at most this many records, and starts no new record once this many chunks are
 * planned: a snapshot change waits for at most one batch (about 0.5 s at a 100 ms round trip
 * with a window of 4), and the window drains once per batch.
 */
export const BATCH_RECORDS = 16;
export const BATCH_FRAMES = 24;

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

/** The bytes the Queen counts for `chunks` numbered from `firstSeq`: each envelope and its newline. */
export function queenSize(chunks: readonly string[], firstSeq: number): number {
  return chunks.reduce((n, c, i) => n + byteLength(envelope(firstSeq + i, c)) + 1, 0);
}

export class TelemetryForwarder {
  readonly #o: ForwarderOptions;
  #blockedUntil = 0;
  #attempt = 0;
  /** Records the Queen acknowledged since start. */
  forwarded = 0;
  /** Stalls the watch has warned about since start. */
  stalls = 0;
  /** Whether the watch found forwarding stuck at its last check (cleared once it moves). */
  stalled = false;
  /** The connection on which the Queen segment was last read back (null: read it back next step). */
  #checked: ConsoleSession | null = null;
  /** The leading chunks the last read-back found in the segment: delivered, not to be resent. */
  #arrived: { seg: string; seq: number } | null = null;
  /** Whether the segment holds lines past its run, or refused a line: continue in a new one. */
  #leave = false;
  #warnedBlind = false;

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
   * Sends the records at the spool's position, resuming the first after its last acknowledged
   * chunk, with up to the session's window of chunks in flight. A batch ends where the Queen
   * segment would pass its byte cap or the lines one read-back answers (the next step asks for a
   * new segment) or at the batch bounds. Link failures throw (the publisher reconnects); refusals
   * pause forwarding and return. The spool advances past a record only once its last chunk is
   * acknowledged, or once a read-back found it in the segment.
   */
  async step(session: ConsoleSession, signal?: AbortSignal): Promise<void> {
    const spool = this.#o.spool;
    const next = spool.next();
    if (next === null) return;
    const cap = this.#o.queenSegmentBytes ?? DEFAULTS.queenSegmentKb * 1024;
    const base = `/queen/telemetry/${this.#o.deviceId}`;
    let appending = false;
    try {
      if (this.#checked !== session) {
        await this.#readBack(session, base, signal);
        this.#checked = session;
      }
      let { queenSeg, seq, queenBytes } = spool.progress;
      const resumed = spool.progress.chunk;
      if (queenSeg !== null && resumed === 0 && seq > 1) {
        const chunks = chunkRecord(encodeRecord(next.record as TelemetryRecord) + "\n", seq);
        if (queenBytes + queenSize(chunks, seq) > cap || seq - 1 + chunks.length > QUEEN.catLines) queenSeg = null;
      }
      if (queenSeg === null) {
        queenSeg = await this.#newSegment(session, base, signal);
        seq = 1;
        queenBytes = 0;
        this.#arrived = null;
        this.#leave = false;
        spool.saveProgress({ queenSeg, seq, queenBytes, chunk: 0 });
      }
      // Chunks are numbered from the seq each record started at, so a resumed record is re-cut identically.
      const plan: { seg: number; index: number; size: number; firstSeq: number; chunks: string[] }[] = [];
      const requests: Outgoing[] = [];
      const owner: { record: number; chunk: number }[] = [];
      let firstSeq = seq - resumed;
      let bytes = queenBytes;
      for (const item of spool.upcoming(BATCH_RECORDS)) {
        const chunks = chunkRecord(encodeRecord(item.record as TelemetryRecord) + "\n", firstSeq);
        const size = queenSize(chunks, firstSeq);
        const full = bytes + size > cap || firstSeq - 1 + chunks.length > QUEEN.catLines;
        if (plan.length > 0 && (full || requests.length >= BATCH_FRAMES)) break;
        for (let c = plan.length === 0 ? resumed : 0; c < chunks.length; c++) {
          requests.push({ line: `ECHO ${base}/seg/${queenSeg} ${envelope(firstSeq + c, chunks[c]!)}`, verb: "ECHO" });
          owner.push({ record: plan.length, chunk: c });
        }
        plan.push({ seg: item.seg, index: item.index, size, firstSeq, chunks });
        firstSeq += chunks.length;
        bytes += size;
      }
      let delivered = queenBytes;
      const acked = (i: number) => {
        const { record, chunk } = owner[i]!;
        const r = plan[record]!;
        const seqAfter = r.firstSeq + chunk + 1;
        const p = spool.progress;
        const current = p.seg === r.seg && p.index === r.index;
        if (chunk < r.chunks.length - 1) {
          // In memory only: after a crash the segment is read back before anything is resent.
          if (current) spool.saveProgress({ chunk: chunk + 1, seq: seqAfter }, false);
          return;
        }
        delivered += r.size;
        this.forwarded++;
        if (current) spool.advance({ queenSeg: queenSeg!, seq: seqAfter, queenBytes: delivered }, false);
        // The size cap dropped this record from the spool while it was in flight: it reached the
        // Queen all the same, so the Queen segment's seqs carry on from it.
        else spool.saveProgress({ queenSeg: queenSeg!, seq: seqAfter, queenBytes: delivered, chunk: 0 }, false);
      };
      // What a read-back found in the segment is delivered already: taken as acknowledged, not resent.
      const arrived = this.#arrived?.seg === queenSeg ? this.#arrived.seq : 0;
      let skip = 0;
      while (skip < requests.length && plan[owner[skip]!.record]!.firstSeq + owner[skip]!.chunk <= arrived) acked(skip++);
      // The position is synced once per batch, and before any error leaves this step.
      const sync = () => spool.saveProgress({});
      if (skip < requests.length && this.#leave) {
        // The segment holds lines past its run: the rest goes to a new one, the record in flight whole.
        this.#leave = false;
        spool.saveProgress({ queenSeg: null, seq: 1, queenBytes: 0, chunk: 0 });
        return;
      }
      appending = true;
      await sendAll(session, requests.slice(skip), signal, (i) => acked(i + skip)).finally(sync);
      this.#attempt = 0;
    } catch (error) {
      if (error instanceof DiskWriteError) {
        // The position could not be saved: the segment is read back before anything is resent,
        // but a new Queen segment must not be used before it is on disk. Pause, as for a
        // refusal, rather than drop a link that is fine.
        const delay = backoffDelay(this.#attempt++);
        this.#blockedUntil = this.#now() + delay;
        this.#checked = null;
        this.#o.log.warn(`telemetry: cannot save the forwarding position: ${error.message}; pausing forwarding for ${delay} ms`);
        return;
      }
      if (!(error instanceof ConsoleError) || error.kind !== "rejected") throw error;
      // Chunks behind a refused one may have been stored: read the segment back before going on,
      // and leave it for a new one if it held anything (most likely it is full).
      const p = spool.progress;
      const hadData = appending && (p.seq > 1 || p.chunk > 0);
      if (appending) {
        this.#checked = null;
        this.#leave = hadData;
      }
      const asked = error.ack === undefined ? undefined : ackDelayMs(error.ack);
      const delay = hadData ? 0 : asked ?? backoffDelay(this.#attempt++);
      this.#blockedUntil = this.#now() + delay;
      this.#o.log.warn(
        `telemetry: ${error.message}; ${hadData ? "starting a new segment" : `pausing forwarding for ${delay} ms, records keep spooling`}`,
      );
    }
  }

  /**
   * Checks every `everyMs` on the clock that forwarding moves while records wait and the
   * console is up (`isUp`), and warns once per stall (with how long the oldest record has
   * waited), then once more when it moves again. A quota pause is not a stall: it was logged.
   * Returns the function that stops the checks.
   */
  watch(isUp: () => boolean, everyMs: number = DEFAULTS.telemetryStallMs): () => void {
    const clock = this.#o.clock ?? systemClock;
    const spool = this.#o.spool;
    const position = () => {
      const p = spool.progress;
      return `${p.seg}/${p.index}/${p.chunk}/${this.forwarded}`;
    };
    let last = position();
    let timer: unknown;
    const check = () => {
      const now = position();
      const waiting = spool.next() !== null;
      if (now !== last || !waiting) {
        if (this.stalled) this.#o.log.info(`telemetry: forwarding moves again (${spool.stats().records} records waiting)`);
        this.stalled = false;
      } else if (!this.stalled && isUp() && this.pausedFor() === 0 && (spool.oldestWaitingMs() ?? 0) >= everyMs) {
        this.stalled = true;
        this.stalls++;
        const age = Math.round((spool.oldestWaitingMs() ?? 0) / 1000);
        this.#o.log.warn(
          `telemetry: forwarding made no progress for ${Math.round(everyMs / 1000)} s while ${spool.stats().records} ` +
            `records wait (the oldest for ${age} s) and the console is up`,
        );
      }
      last = now;
      timer = clock.setTimer(everyMs, check);
    };
    timer = clock.setTimer(everyMs, check);
    return () => clock.clearTimer(timer);
  }

  /**
   * Reads the Queen segment back (one CAT: a segment is kept within its lines) and records how
   * many of its leading chunks are the forwarder's run. A segment gone (evicted, or a Queen that
   * restarted) or that cannot be read leaves the record in flight to a new segment, whole.
   */
  async #readBack(session: ConsoleSession, base: string, signal?: AbortSignal): Promise<void> {
    const spool = this.#o.spool;
    const seg = spool.progress.queenSeg;
    this.#arrived = null;
    if (seg === null) return;
    let lines: string[];
    try {
      lines = await session.requestLines(`CAT ${base}/seg/${seg}`, "CAT", signal);
    } catch (error) {
      if (!(error instanceof ConsoleError) || error.kind !== "rejected") throw error;
      const gone = error.ack?.fields.reason === "not-found" || error.ack?.fields.detail === "invalid-path";
      if (!gone && !this.#warnedBlind) {
        this.#warnedBlind = true;
        this.#o.log.warn(
          `telemetry: cannot read ${base}/seg/${seg} back (${error.ack?.detail ?? error.message}): continuing in a new segment; ` +
            "records whose acknowledgement was lost may reach the Queen twice",
        );
      }
      this.#leave = false;
      spool.saveProgress({ queenSeg: null, seq: 1, queenBytes: 0, chunk: 0 });
      return;
    }
    const run = envelopeRun(lines).count;
    this.#arrived = { seg, seq: run };
    // Fewer chunks than were acknowledged: not the segment the spool wrote to; past the run: not only ours.
    if (run !== lines.length || run < spool.progress.seq - 1) this.#leave = true;
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
