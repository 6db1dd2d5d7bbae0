/**
 * `gpu-bridge-host console ls|cat|echo …`: a small console client speaking what `cohsh` speaks
 * (AUTH, ATTACH <role> <ticket>, then one LS, CAT or ECHO), so "what does the VM see?" is one
 * command, and a person can play the Queen or a worker-gpu against a VM (or the mock console).
 */
import { type FlagTable, parseFlags, UsageError } from "./cli/flags.ts";
import { DEFAULT_TCP_HOST, DEFAULT_TCP_PORT, resolveAuthToken } from "./cli/options.ts";
import { ConsoleError } from "./console/errors.ts";
import { openSession, sendAll } from "./console/publish.ts";
import type { Connect } from "./console/transport.ts";

const FLAGS: FlagTable = {
  "tcp-host": "string",
  "tcp-port": "int:1:65535",
  "auth-token": "string:blank",
  "role": "choice:queen|worker-gpu",
  "ticket": "string:blank",
  "ack-timeout-ms": "int:1:600000",
  "help": "bool",
};

export const CONSOLE_USAGE = `gpu-bridge-host console: one request to a Cohesix console, as cohsh would send it.

Usage:
  gpu-bridge-host console ls DIR [options]            list a directory (bare names)
  gpu-bridge-host console cat FILE [options]          print a file's lines
  gpu-bridge-host console echo FILE LINE... [options] append one line (the words joined by spaces)

Options:
  --tcp-host HOST        console host (default ${DEFAULT_TCP_HOST})
  --tcp-port PORT        console port (default ${DEFAULT_TCP_PORT})
  --auth-token TOKEN     console token; same fallbacks as the bridge (default "changeme")
  --role ROLE            queen or worker-gpu (default queen)
  --ticket TICKET        ticket sent with ATTACH (worker-gpu needs one)
  --ack-timeout-ms MS    how long to wait for the answer (default 5000)

Examples (against make run):
  gpu-bridge-host console ls /gpu
  gpu-bridge-host console echo /queen/ctl '{"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":4096,"streams":1,"ttl_s":120}}'
  gpu-bridge-host console cat /gpu/GPU-0/lease
`;

/** A parsed `console` invocation. */
export interface ConsoleRequest {
  readonly verb: "LS" | "CAT" | "ECHO";
  readonly path: string;
  readonly line: string;
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly role: "queen" | "worker-gpu";
  readonly ticket: string;
  readonly ackTimeoutMs: number;
}

/** Parses `console …` arguments; null for --help. Throws UsageError naming what is wrong. */
export function parseConsoleArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ConsoleRequest | null {
  const { values, positionals } = parseFlags(argv, FLAGS);
  if (values.help === true) return null;
  const [sub, path, ...words] = positionals;
  const verb = sub === "ls" ? "LS" : sub === "cat" ? "CAT" : sub === "echo" ? "ECHO" : null;
  if (verb === null) throw new UsageError(`console: expected ls, cat or echo, got ${JSON.stringify(sub ?? "")}`);
  if (path === undefined || !path.startsWith("/")) throw new UsageError(`console ${sub}: needs an absolute path, got ${JSON.stringify(path ?? "")}`);
  if (verb === "ECHO" && words.length === 0) throw new UsageError("console echo: needs a line to append after the path");
  if (verb !== "ECHO" && words.length > 0) throw new UsageError(`console ${sub}: unexpected argument ${JSON.stringify(words[0])}`);
  const role = (values.role as "queen" | "worker-gpu" | undefined) ?? "queen";
  const ticket = (values.ticket as string | undefined) ?? "";
  if (role === "worker-gpu" && ticket.trim() === "") throw new UsageError("console: --role worker-gpu needs --ticket");
  return {
    verb,
    path,
    line: words.join(" "),
    host: (values["tcp-host"] as string | undefined) ?? DEFAULT_TCP_HOST,
    port: (values["tcp-port"] as number | undefined) ?? DEFAULT_TCP_PORT,
    token: resolveAuthToken(values["auth-token"] as string | undefined, env),
    role,
    ticket,
    ackTimeoutMs: (values["ack-timeout-ms"] as number | undefined) ?? 5000,
  };
}

/** Runs one request; returns what to print (the listing, the lines, or the ack). Throws ConsoleError. */
export async function consoleRequest(connect: Connect, req: ConsoleRequest): Promise<string[]> {
  const target = { host: req.host, port: req.port, token: req.token, ticket: req.ticket };
  const session = await openSession(connect, target, { ackTimeoutMs: req.ackTimeoutMs, window: 1 });
  try {
    await sendAll(session, [
      { line: `AUTH ${req.token}`, verb: "AUTH" },
      { line: `ATTACH ${req.role} ${req.ticket}`, verb: "ATTACH" },
    ]);
    if (req.verb === "ECHO") {
      const ack = await session.request(`ECHO ${req.path} ${req.line}`, "ECHO");
      return [`OK ECHO ${ack.detail}`];
    }
    return await session.requestLines(`${req.verb} ${req.path}`, req.verb);
  } finally {
    session.close();
  }
}

/** The `console` command: prints the answer; exit 0, or 1 with the console's refusal on stderr. */
export async function consoleCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  io: { connect: Connect; out: (s: string) => unknown; err: (s: string) => void },
): Promise<number> {
  const req = parseConsoleArgs(argv, env);
  if (req === null) {
    await io.out(CONSOLE_USAGE);
    return 0;
  }
  try {
    const lines = await consoleRequest(io.connect, req);
    await io.out(lines.map((l) => l + "\n").join(""));
    return 0;
  } catch (error) {
    if (!(error instanceof ConsoleError)) throw error;
    io.err(`gpu-bridge-host console: ${error.message}\n`);
    return 1;
  }
}
