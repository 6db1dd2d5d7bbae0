/**
 * The mock console as a real TCP server: framing, an 8-line inbound queue that drops the
 * oldest line when full (as Cohesix does), the auth deadline and the scripted faults.
 */
import { parseAck } from "../../src/contract/ack.ts";
import { encodeFrame, FrameDecoder } from "../../src/contract/frame.ts";
import { concatBytes } from "../../src/util/bytes.ts";
import type { Conn, Connect } from "../../src/runtime/transport.ts";
import { memoryConnect } from "../../src/runtime/memory.ts";
import type { Runtime, TcpServer } from "../../src/runtime/types.ts";
import { type Clock, delay, systemClock } from "../../src/util/clock.ts";
import { LIMITS } from "../../src/contract/limits.ts";
import { linkConn } from "./link.ts";
import { ConsoleConnection, type ConsoleSettings, ConsoleState, isAck, NOISE_LINES } from "./core.ts";

const QUEUE_LINES = LIMITS.consoleQueueLines;

/** A running mock console. */
export interface MockConsole {
  readonly port: number;
  readonly state: ConsoleState;
  close(): Promise<void>;
}

/** Starts a mock console on `host:port` (port 0 picks a free one). */
export async function startMockConsole(
  runtime: Runtime,
  settings: ConsoleSettings & { readonly host?: string; readonly port?: number },
): Promise<MockConsole> {
  const state = new ConsoleState(settings);
  const server: TcpServer = await runtime.listen(settings.host ?? "127.0.0.1", settings.port ?? 0, (conn) => serveConnection(state, conn));
  return { port: server.port, state, close: () => server.close() };
}

/**
 * Serves one accepted connection (a socket, or one end of `memoryPair()`); `clock` times the
 * auth deadline and the scripted ack delay. The link faults (latency, jitter, loss) run on the
 * real timers, so tests on a fake clock leave them off.
 */
export function serveConnection(state: ConsoleState, socket: Conn, clock: Clock = systemClock): void {
  const conn = linkConn(socket, () => state.faults, state.random);
  const session = new ConsoleConnection(state);
  state.emit({ type: "connect", conn: session.id });
  const queue: string[] = [];
  let working = false;
  let closed = false;
  const hangUp = () => {
    if (closed) return;
    closed = true;
    conn.close();
    state.emit({ type: "disconnect", conn: session.id });
  };
  const authTimer = clock.setTimer(state.authTimeoutMs, () => {
    if (!session.authed) hangUp();
  });

  const send = async (lines: string[]) => {
    const faults = state.faults;
    if (faults.silent || closed) return;
    const out: Uint8Array[] = [];
    for (const line of lines) {
      if (faults.noise && isAck(line)) out.push(...NOISE_LINES.map(encodeFrame));
      if (isAck(line) && faults.garbageAfterFrames !== undefined && --faults.garbageAfterFrames <= 0) {
        delete faults.garbageAfterFrames;
        out.push(new Uint8Array([2, 0, 0, 0, 0x41, 0x42]));
        continue;
      }
      out.push(encodeFrame(line));
      if (faults.duplicateAcks?.includes(parseAck(line)?.verb ?? "") === true) out.push(encodeFrame(line));
    }
    await conn.write(concatBytes(out)).catch(hangUp);
  };

  const work = async () => {
    if (working) return;
    working = true;
    while (queue.length > 0 && !closed) {
      const line = queue.shift()!;
      state.faults.beforeLine?.(session.id, line);
      if (closed) break;
      const reply = session.handle(line);
      const ackDelay = state.faults.ackDelayMs ?? 0;
      if (ackDelay > 0) await delay(ackDelay, undefined, clock);
      await send(reply.lines);
      if (reply.close) hangUp();
    }
    working = false;
  };

  void (async () => {
    const decoder = new FrameDecoder();
    try {
      for await (const chunk of conn.readable) {
        for (const line of decoder.push(chunk)) {
          const f = state.faults;
          if (f.closeAfterFrames !== undefined && --f.closeAfterFrames <= 0) {
            delete f.closeAfterFrames;
            hangUp();
            return;
          }
          queue.push(line);
          state.maxUnanswered = Math.max(state.maxUnanswered, queue.length + (working ? 1 : 0));
          if (queue.length > QUEUE_LINES) state.emit({ type: "dropped", conn: session.id, line: queue.shift()! });
        }
        void work();
      }
    } catch {
      // a bad frame or a reset: the connection is over either way
    } finally {
      clock.clearTimer(authTimer);
      hangUp();
    }
  })();
}

/** The mock console without a socket: each `connect` gets one end of an in-memory pair. */
export function memoryMockConsole(settings: ConsoleSettings, clock: Clock = systemClock): { state: ConsoleState; connect: Connect } {
  const state = new ConsoleState({ now: () => clock.now(), ...settings });
  return { state, connect: memoryConnect((conn) => serveConnection(state, conn, clock)) };
}
