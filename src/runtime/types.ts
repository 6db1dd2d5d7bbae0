/** What the rest of the bridge needs from the JavaScript runtime it runs on. */
import type { Conn, Connect } from "../console/transport.ts";

/** A listening TCP server. */
export interface TcpServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Stops accepting and closes every open connection. */
  close(): Promise<void>;
}

/** Called for each accepted connection. */
export type OnConnection = (conn: Conn) => void;

export interface Runtime {
  readonly name: "bun" | "deno";
  /** Opens a TCP connection with TCP_NODELAY set. */
  readonly connect: Connect;
  /** Listens on `host:port` (0 picks a free port); accepted connections have TCP_NODELAY set. */
  readonly listen: (host: string, port: number, onConnection: OnConnection) => Promise<TcpServer>;
}
