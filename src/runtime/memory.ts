/**
 * Two connected in-memory `Conn`s: what one side writes, the other reads, in order, with no
 * socket. Tests drive the console client, the publisher and the forwarder against the mock
 * console through a pair; closing either side ends both readers, as a TCP close would.
 */
import { AsyncQueue } from "../util/async-queue.ts";
import type { Conn, Connect } from "./transport.ts";

/** A connected pair of in-memory connections. */
export function memoryPair(): [Conn, Conn] {
  const aToB = new AsyncQueue<Uint8Array>();
  const bToA = new AsyncQueue<Uint8Array>();
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    aToB.end();
    bToA.end();
  };
  const side = (out: AsyncQueue<Uint8Array>, inbound: AsyncQueue<Uint8Array>): Conn => ({
    write(bytes) {
      if (closed) return Promise.reject(new Error("Cannot write: the in-memory connection is closed"));
      out.push(bytes.slice()); // the writer may reuse its buffer, as with a socket
      return Promise.resolve();
    },
    readable: inbound,
    close,
  });
  return [side(aToB, bToA), side(bToA, aToB)];
}

/**
 * A `Connect` that hands the far end of a fresh pair to `accept` (a server's per-connection
 * handler), whatever host and port are asked for.
 */
export function memoryConnect(accept: (conn: Conn) => void): Connect {
  return () => {
    const [client, server] = memoryPair();
    accept(server);
    return Promise.resolve(client);
  };
}
