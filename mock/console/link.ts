/**
 * A long wire in front of a connection: every chunk, in both directions, arrives `latencyMs`
 * (plus up to `jitterMs`) after it was sent, in order, and chunks travel side by side rather than
 * one after another: a frame sent while another is on the wire is not held up by it. This is
 * what a 100 ms round trip does to a client, unlike `ackDelayMs`, which models a slow server
 * that answers one line at a time. With `lossPerChunk`, each chunk may instead be the moment the
 * link dies: what is on the wire is lost and both ends see the connection close.
 */
import type { Conn } from "../../src/console/transport.ts";
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
  // The arrival time of the last chunk each way: a later chunk never overtakes it.
  let lastIn = 0;
  let lastOut = 0;
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
  /** Runs `deliver` when a chunk sent now arrives; returns the new last arrival time. */
  const carry = (last: number, deliver: () => void): number => {
    const s = settings();
    if ((s.lossPerChunk ?? 0) > 0 && random() < s.lossPerChunk!) {
      die();
      return last;
    }
    const latency = s.latencyMs ?? 0;
    const jitter = (s.jitterMs ?? 0) * random();
    if (latency + jitter <= 0 && last <= performance.now()) {
      deliver();
      return last;
    }
    const at = Math.max(last, performance.now() + latency + jitter);
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!cut) deliver();
    }, at - performance.now());
    timers.add(timer);
    return at;
  };

  void (async () => {
    try {
      for await (const chunk of conn.readable) {
        if (cut) break;
        const copy = chunk.slice();
        lastIn = carry(lastIn, () => inbound.push(copy));
      }
    } catch {
      // a reset: the connection is over either way
    }
    // What was already on the wire still arrives, then the reader sees the end.
    if (!cut) lastIn = carry(lastIn, () => inbound.end());
  })();

  return {
    readable: inbound,
    write(bytes: Uint8Array): Promise<void> {
      if (cut) return Promise.reject(new Error("the link is down"));
      const copy = bytes.slice();
      // Like a socket buffer, the write returns at once; the bytes arrive later.
      lastOut = carry(lastOut, () => void (writing = writing.then(() => conn.write(copy)).catch(die)));
      return Promise.resolve();
    },
    close(): void {
      // A close travels the wire too: what was sent before it still arrives.
      if (cut) return;
      lastOut = carry(lastOut, die);
    },
  };
}
