/**
 * A long wire in front of a connection: every chunk, in both directions, arrives `latencyMs`
 * (plus up to `jitterMs`) after it was sent, in order, and chunks travel side by side rather than
 * one after another: a frame sent while another is on the wire is not held up by it. This is
 * what a 100 ms round trip does to a client, unlike `ackDelayMs`, which models a slow server
 * that answers one line at a time. With `lossPerChunk`, each chunk may instead be the moment the
 * link dies: what is on the wire is lost and both ends see the connection close.
 */
import type { Conn } from "../../src/runtime/transport.ts";
import { AsyncQueue } from "../../src/util/async-queue.ts";

/** The wire's behaviour; read for every chunk, so a test can change it on a live connection. */
export interface LinkSettings {
  /** One-way latency in milliseconds (the round trip is twice this). */
  latencyMs?: number;
  /** Extra delay, uniform in 0..jitterMs, per chunk; order is kept, as TCP keeps it. */
  jitterMs?: number;
  /** Probability, per chunk in either direction, that the link dies instead of carrying it. */
  lossPerChunk?: number;
}

/** `conn` seen through a wire with `settings()`; `random` drives jitter and loss. */
export function linkConn(conn: Conn, settings: () => LinkSettings, random: () => number = Math.random): Conn {
  const inbound = new AsyncQueue<Uint8Array>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let cut = false;
  // Chunks on the wire each way, in sending order, with their arrival times (never decreasing,
  // so a later chunk never overtakes an earlier one, as TCP guarantees).
  const inWire = wire(() => cut, timers);
  const outWire = wire(() => cut, timers);
  // Writes reach the socket one after another: a runtime may take a large one in parts.
  let writing: Promise<void> = Promise.resolve();

  const die = () => {
    if (cut) return;
    cut = true;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    conn.close();
    inbound.end();
  };
  /** Puts a chunk on `w`, or kills the link instead when the loss draw says so. */
  const carry = (w: Wire, deliver: () => void): void => {
    const s = settings();
    if ((s.lossPerChunk ?? 0) > 0 && random() < s.lossPerChunk!) return die();
    w.send((s.latencyMs ?? 0) + (s.jitterMs ?? 0) * random(), deliver);
  };

  void (async () => {
    try {
      for await (const chunk of conn.readable) {
        if (cut) break;
        const copy = chunk.slice();
        carry(inWire, () => inbound.push(copy));
      }
    } catch {
      // a reset: the connection is over either way
    }
    // What was already on the wire still arrives, then the reader sees the end.
    if (!cut) inWire.send(settings().latencyMs ?? 0, () => inbound.end());
  })();

  return {
    readable: inbound,
    write(bytes: Uint8Array): Promise<void> {
      if (cut) return Promise.reject(new Error("the link is down"));
      const copy = bytes.slice();
      // Like a socket buffer, the write returns at once; the bytes arrive later.
      carry(outWire, () => void (writing = writing.then(() => conn.write(copy)).catch(die)));
      return Promise.resolve();
    },
    close(): void {
      // A close travels the wire too: what was sent before it still arrives.
      if (cut) return;
      outWire.send(settings().latencyMs ?? 0, die);
    },
  };
}

interface Wire {
  /** Runs `deliver` `delayMs` from now, but never before what was sent earlier. */
  send(delayMs: number, deliver: () => void): void;
}

/** One direction of the wire: a queue drained in order by one timer at a time. */
function wire(isCut: () => boolean, timers: Set<ReturnType<typeof setTimeout>>): Wire {
  const queue: { at: number; deliver: () => void }[] = [];
  let armed = false;
  const drain = () => {
    armed = false;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.at <= now && !isCut()) queue.shift()!.deliver();
    if (queue.length > 0 && !isCut()) arm();
  };
  const arm = () => {
    armed = true;
    const timer = setTimeout(() => {
      timers.delete(timer);
      drain();
    }, Math.max(0, queue[0]!.at - performance.now()));
    timers.add(timer);
  };
  return {
    send(delayMs, deliver) {
      const now = performance.now();
      if (delayMs <= 0 && queue.length === 0) return deliver();
      queue.push({ at: Math.max(queue.at(-1)?.at ?? 0, now + delayMs), deliver });
      if (!armed) arm();
    },
  };
}
