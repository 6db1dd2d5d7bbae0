/** The Bun adapter: the only module besides `ffi/bun*.ts` that names `Bun.*`. */
import { CHILD_OUTPUT_CAP, CHILD_STDERR_CAP, quietTail } from "../util/stream.ts";
import type { Conn } from "./transport.ts";
import { AsyncQueue } from "../util/async-queue.ts";
import process from "node:process";
import type { Child, OnConnection, Runtime, TcpServer } from "./types.ts";

interface BunSocket<T = unknown> {
  data: T;
  write(data: Uint8Array): number;
  end(): void;
  setNoDelay(noDelay?: boolean): boolean;
}
interface SocketHandlers<T> {
  open?(s: BunSocket<T>): void;
  data?(s: BunSocket<T>, data: Uint8Array): void;
  drain?(s: BunSocket<T>): void;
  close?(s: BunSocket<T>): void;
  error?(s: BunSocket<T>, error: Error): void;
  end?(s: BunSocket<T>): void;
}
interface BunSubprocess {
  readonly pid: number;
  /** A FileSink: writes and ends return a promise while bytes wait for the pipe, which rejects if it breaks. */
  readonly stdin: { write(b: Uint8Array): number | Promise<number>; end(): number | Promise<number> };
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly exited: Promise<number>;
  kill(signal?: number | string): void;
}
interface BunApi {
  serve(options: {
    hostname: string;
    port: number;
    fetch: (req: Request, server: { timeout(req: Request, seconds: number): void }) => Response | Promise<Response>;
    maxRequestBodySize?: number;
  }): {
    port: number;
    stop(closeActive?: boolean): void;
  };
  spawn(
    cmd: string[],
    options: {
      stdin: "pipe";
      stdout: "pipe";
      stderr: "pipe";
      env?: Record<string, string | undefined>;
      /** Descriptors 0-2 as above, then descriptors to hand over (3, 4, ...). */
      stdio?: ["pipe", "pipe", "pipe", ...number[]];
    },
  ): BunSubprocess;
  connect(options: { hostname: string; port: number; socket: SocketHandlers<undefined> }): Promise<BunSocket<undefined>>;
  listen<T>(options: { hostname: string; port: number; socket: SocketHandlers<T> }): { port: number; stop(closeActive?: boolean): void };
}

const bun = (globalThis as unknown as { Bun: BunApi }).Bun;

/** Per-socket state shared by the client and server paths. */
class SocketConn implements Conn {
  readonly readable = new AsyncQueue<Uint8Array>();
  #socket: BunSocket<unknown> | null = null;
  #drained: (() => void) | null = null;
  #open = true;

  attach(socket: BunSocket<unknown>): void {
    this.#socket = socket;
    socket.setNoDelay(true);
  }
  // Copied: the reader consumes it later, after Bun may have reused the buffer.
  onData = (data: Uint8Array) => this.readable.push(new Uint8Array(data));
  onDrain = () => {
    const d = this.#drained;
    this.#drained = null;
    d?.();
  };
  onClose = () => {
    this.#open = false;
    this.readable.end();
    this.onDrain();
  };
  onError = (error: Error) => this.readable.fail(error);

  async write(bytes: Uint8Array): Promise<void> {
    let rest = bytes;
    while (rest.length > 0) {
      if (!this.#open || this.#socket === null) throw new Error("the socket is closed");
      const n = this.#socket.write(rest);
      if (n < 0) throw new Error("the socket is closed");
      rest = rest.subarray(n);
      if (rest.length > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    }
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#socket?.end();
    this.readable.end();
  }
}

function handlers<T>(get: (s: BunSocket<T>) => SocketConn | undefined): SocketHandlers<T> {
  return {
    data: (s, d) => get(s)?.onData(d),
    drain: (s) => get(s)?.onDrain(),
    end: (s) => get(s)?.readable.end(),
    close: (s) => get(s)?.onClose(),
    error: (s, e) => get(s)?.onError(e),
  };
}

async function connect(host: string, port: number): Promise<Conn> {
  const conn = new SocketConn();
  const socket = await bun.connect({ hostname: host, port, socket: handlers(() => conn) });
  conn.attach(socket);
  return conn;
}

function listen(host: string, port: number, onConnection: OnConnection): Promise<TcpServer> {
  const conns = new Set<SocketConn>();
  const server = bun.listen<SocketConn | undefined>({
    hostname: host,
    port,
    socket: {
      ...handlers<SocketConn | undefined>((s) => s.data),
      open(s) {
        const conn = new SocketConn();
        conn.attach(s);
        s.data = conn;
        conns.add(conn);
        onConnection(conn);
      },
      close(s) {
        s.data?.onClose();
        if (s.data) conns.delete(s.data);
      },
    },
  });
  return Promise.resolve({
    port: server.port,
    close: () => {
      for (const c of conns) c.close();
      server.stop(true);
      return Promise.resolve();
    },
  });
}

function spawn(cmd: readonly string[], stdin: Uint8Array, env?: Record<string, string>, passFd?: number): Child {
  const proc = bun.spawn([...cmd], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    ...(env && { env: { ...process.env, ...env } }),
    ...(passFd !== undefined && { stdio: ["pipe", "pipe", "pipe", passFd] }),
  });
  feed(proc.stdin, stdin);
  // A pipe that fails mid-read (the child killed) reads as what came before it: its exit and
  // the missing result say the rest.
  const done = Promise.all([proc.exited, quietTail(proc.stdout, CHILD_OUTPUT_CAP), quietTail(proc.stderr, CHILD_STDERR_CAP)]).then((
    [code, stdout, stderr],
  ) => ({
    code,
    stdout,
    stderr,
  }));
  return { pid: proc.pid, done, kill: () => proc.kill("SIGKILL") };
}

/**
 * Writes `bytes` to a child's stdin and closes it. The child may die before it has read them
 * all (a timeout or a lease's end kills it mid-write; a crash at start): the broken pipe is
 * that child's outcome, seen through its exit, never an unhandled rejection that ends the bridge.
 */
function feed(sink: BunSubprocess["stdin"], bytes: Uint8Array): void {
  const quiet = (r: number | Promise<number>) => r instanceof Promise && r.catch(() => {});
  try {
    quiet(sink.write(bytes));
    quiet(sink.end());
  } catch {
    // the pipe broke at once: the child is gone, and its exit says so
  }
}

/** This program: the compiled binary itself, or Bun running src/main.ts. */
function self(): string[] {
  const main = new URL("../main.ts", import.meta.url);
  return main.pathname.includes("$bunfs") ? [process.execPath] : [process.execPath, main.pathname];
}

function serve(host: string, port: number, fetch: (req: Request) => Response | Promise<Response>): Promise<TcpServer> {
  // No body cap here: routes cap their own bodies, and a shard streamed to VRAM can be gigabytes.
  const server = bun.serve({
    hostname: host,
    port,
    // An event stream is meant to stay open while nothing happens: Bun's idle timeout (10 s) would
    // cut it between heartbeats, so it is lifted for that response alone.
    fetch: async (req, server) => {
      const res = await fetch(req);
      if (res.headers.get("content-type")?.startsWith("text/event-stream")) server.timeout(req, 0);
      return res;
    },
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
  });
  return Promise.resolve({ port: server.port, close: () => Promise.resolve(server.stop(true)) });
}

/** The Bun runtime adapter. */
export function bunRuntime(): Runtime {
  return { name: "bun", connect, listen, spawn, self, serve, passesFds: true };
}
