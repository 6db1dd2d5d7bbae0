/**
 * `gpu-bridge-host console ls|cat|echo …`: a small console client speaking what `cohsh` speaks
 * (AUTH, ATTACH <role> <ticket>, then one LS, CAT or ECHO), so "what does the VM see?" is one
 * command, and a person can play the Queen or a worker-gpu against a VM (or the mock console).
 * A refusal is a ConsoleError: the entry point prints the console's answer and exits 1.
 */
import type { Command, ConsoleRequest } from "../cli/options.ts";
import { openSession, sendAll } from "../console/publish.ts";
import { detectRuntime } from "../runtime/mod.ts";
import type { Connect } from "../runtime/transport.ts";
import type { CommandIo } from "./types.ts";
import { escapeLogText } from "../util/log.ts";

/** Runs one request; resolves with what to print (the listing, the lines, or the ack). Throws ConsoleError. */
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

/**
 * Prints the console's answer, one line each; 0 when it said OK. `connect` defaults to the
 * runtime's. What the VM holds was written by its clients: unless `--raw` asks for the bytes,
 * control characters (escape sequences), bidirectional overrides and line separators are shown
 * escaped, so a file's text can neither drive the terminal nor reorder what is read.
 */
export async function run(command: Extract<Command, { kind: "console" }>, io: CommandIo, connect?: Connect): Promise<number> {
  const lines = await consoleRequest(connect ?? (await detectRuntime()).connect, command.request);
  const show = command.request.raw ? (l: string) => l : escapeLogText;
  await io.stdout(lines.map((l) => show(l) + "\n").join(""));
  return 0;
}
