/** What the rest of the bridge needs from the JavaScript runtime it runs on. */
import type { Conn, Connect } from "./transport.ts";

/** A listening TCP server. */
export interface TcpServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Stops accepting and closes every open connection. */
  close(): Promise<void>;
}

/** Called for each accepted connection. */
export type OnConnection = (conn: Conn) => void;

/** A child process started by `spawn`. */
export interface Child {
  readonly pid: number;
  /** Resolves when the child has exited, with what it printed. */
  readonly done: Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>;
  /** Kills the child (SIGKILL): used for timeouts, which a hung kernel will not honour otherwise. */
  kill(): void;
}

export interface Runtime {
  readonly name: "bun" | "deno";
  /** Opens a TCP connection with TCP_NODELAY set. */
  readonly connect: Connect;
  /** Listens on `host:port` (0 picks a free port); accepted connections have TCP_NODELAY set. */
  readonly listen: (host: string, port: number, onConnection: OnConnection) => Promise<TcpServer>;
  /**
   * Starts `cmd` with `stdin` written to it; `passFd`, where `passesFds` says the runtime can,
   * is this process's descriptor handed to the child as its descriptor 3 (a shard's memory).
   */
  readonly spawn: (cmd: readonly string[], stdin: Uint8Array, env?: Record<string, string>, passFd?: number) => Child;
  /** Whether `spawn` can hand a child a descriptor (Bun can; Deno's Command cannot). */
  readonly passesFds?: boolean;
  /** The command that runs this program again (the compiled binary, or the runtime and main.ts). */
  readonly self: () => string[];
  /** Serves HTTP on `host:port` with a Web-standard handler (Bun.serve / Deno.serve). */
  readonly serve: (host: string, port: number, fetch: (req: Request) => Response | Promise<Response>) => Promise<TcpServer>;
}
