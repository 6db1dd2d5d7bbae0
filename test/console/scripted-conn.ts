/**
 * A scripted console for hostile-peer tests: each line the bridge sends goes to `reply`, which
 * answers with lines (framed for real) and may keep the connection open whatever it says.
 */
import { encodeFrame, FrameDecoder } from "../../src/contract/frame.ts";
import type { Conn, Connect } from "../../src/runtime/transport.ts";
import { AsyncQueue } from "../../src/util/async-queue.ts";

export interface ScriptedConsole {
  readonly connect: Connect;
  /** Every line received, per connection. */
  readonly connections: string[][];
  /** Connections the bridge closed. */
  closed: number;
}

export function scriptedConsole(reply: (line: string, conn: number, push: (line: string) => void) => void): ScriptedConsole {
  const state: ScriptedConsole = {
    connections: [],
    closed: 0,
    connect: () => {
      const index = state.connections.length;
      const received: string[] = [];
      state.connections.push(received);
      const queue = new AsyncQueue<Uint8Array>();
      const decoder = new FrameDecoder();
      const push = (line: string) => queue.push(encodeFrame(line));
      const conn: Conn = {
        readable: queue,
        write: (bytes) => {
          for (const line of decoder.push(bytes)) {
            received.push(line);
            reply(line, index, push);
          }
          return Promise.resolve();
        },
        close: () => {
          state.closed++;
          queue.end();
        },
      };
      return Promise.resolve(conn);
    },
  };
  return state;
}
