/** The Deno adapter: the only module besides `ffi/deno*.ts` that names `Deno.*`. */
import { CHILD_OUTPUT_CAP, CHILD_STDERR_CAP, quietTail } from "../util/stream.ts";
import type { Conn } from "./transport.ts";
import type { Child, OnConnection, Runtime, TcpServer } from "./types.ts";

interface DenoTcpConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
  setNoDelay(noDelay?: boolean): void;
}
interface DenoListener extends AsyncIterable<DenoTcpConn> {
  readonly addr: { port: number };
  close(): void;
}
interface DenoChild {
  readonly pid: number;
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<{ code: number }>;
  kill(signal?: string): void;
}
interface DenoApi {
  serve(
    options: { hostname: string; port: number; onListen?: () => void },
    handler: (req: Request) => Response | Promise<Response>,
  ): { addr: { port: number }; shutdown(): Promise<void> };
  Command: new (
    cmd: string,
    options: { args: string[]; stdin: "piped"; stdout: "piped"; stderr: "piped"; env?: Record<string, string> },
  ) => {
    spawn(): DenoChild;
  };
  execPath(): string;
  mainModule: string;
  connect(options: { hostname: string; port: number; transport?: "tcp" }): Promise<DenoTcpConn>;
  listen(options: { hostname: string; port: number; transport?: "tcp" }): DenoListener;
}

const deno = (globalThis as unknown as { Deno: DenoApi }).Deno;

function wrap(conn: DenoTcpConn): Conn {
  conn.setNoDelay(true);
  let open = true;
  async function* read(): AsyncGenerator<Uint8Array> {
    const buf = new Uint8Array(16 * 1024);
    while (open) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch (error) {
        if (!open) return; // closed by us while reading
        throw error;
      }
      if (n === null) return;
      yield buf.slice(0, n);
    }
  }
  return {
    readable: read(),
    async write(bytes) {
      let rest = bytes;
      while (rest.length > 0) rest = rest.subarray(await conn.write(rest));
    },
    close() {
      if (!open) return;
      open = false;
      try {
        conn.close();
      } catch {
        // already closed by the peer
      }
    },
  };
}

async function connect(host: string, port: number): Promise<Conn> {
  return wrap(await deno.connect({ hostname: host, port, transport: "tcp" }));
}

function listen(host: string, port: number, onConnection: OnConnection): Promise<TcpServer> {
  const listener = deno.listen({ hostname: host, port, transport: "tcp" });
  const conns = new Set<Conn>();
  void (async () => {
    try {
      for await (const raw of listener) {
        const inner = wrap(raw);
        // Forgotten once closed, so a long-running server does not hoard ended connections.
        const conn: Conn = {
          readable: inner.readable,
          write: (bytes) => inner.write(bytes),
          close: () => {
            conns.delete(conn);
            inner.close();
          },
        };
        conns.add(conn);
        onConnection(conn);
      }
    } catch {
      // the listener was closed
    }
  })();
  return Promise.resolve({
    port: listener.addr.port,
    close: () => {
      listener.close();
      for (const c of conns) c.close();
      return Promise.resolve();
    },
  });
}

function spawn(cmd: readonly string[], stdin: Uint8Array, env?: Record<string, string>): Child {
  const child = new deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    ...(env && { env }),
  }).spawn();
  const writer = child.stdin.getWriter();
  void writer.write(stdin).then(() => writer.close()).catch(() => {});
  // A child that dies mid-write or mid-read is that job's outcome (its exit says so), never the bridge's.
  const done = Promise.all([child.status, quietTail(child.stdout, CHILD_OUTPUT_CAP), quietTail(child.stderr, CHILD_STDERR_CAP)])
    .then(([status, stdout, stderr]) => ({ code: status.code, stdout, stderr }));
  return {
    pid: child.pid,
    done,
    kill: () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
    },
  };
}

/** This program: Deno running src/main.ts with all permissions it needs. */
function self(): string[] {
  return [deno.execPath(), "run", "-A", new URL("../main.ts", import.meta.url).pathname];
}

function serve(host: string, port: number, fetch: (req: Request) => Response | Promise<Response>): Promise<TcpServer> {
  const server = deno.serve({ hostname: host, port, onListen: () => {} }, fetch);
  return Promise.resolve({ port: server.addr.port, close: () => server.shutdown() });
}

/** The Deno runtime adapter. */
export function denoRuntime(): Runtime {
  return { name: "deno", connect, listen, spawn, self, serve };
}
