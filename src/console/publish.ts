/**
 * Handshake and snapshot publishing over a ConsoleSession (docs/protocol.md#6-snapshot-format-and-publish-lines, #8-the-console).
 */
import { ConsoleError } from "./errors.ts";
import { ConsoleSession, type SessionOptions } from "./session.ts";
import type { Connect } from "../runtime/transport.ts";

export const CTL_PATH = "/gpu/bridge/ctl";

/** Where and as whom to connect. */
export interface ConsoleTarget {
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly ticket: string;
}

/** One console line and the verb of its ack. */
export interface Outgoing {
  readonly line: string;
  readonly verb: string;
}

/** `AUTH <token>` then `ATTACH queen <ticket>`. */
export function handshakeLines(target: ConsoleTarget): Outgoing[] {
  return [
    { line: `AUTH ${target.token}`, verb: "AUTH" },
    { line: `ATTACH queen ${target.ticket}`, verb: "ATTACH" },
  ];
}

/** Each publish line as an `ECHO` into `/gpu/bridge/ctl`. */
export function echoLines(lines: readonly string[]): Outgoing[] {
  return lines.map((line) => ({ line: `ECHO ${CTL_PATH} ${line}`, verb: "ECHO" }));
}

/**
 * Sends `requests` in order through the session's window and resolves once every one is
 * acknowledged, calling `onAck(i)` for each in order. On the first refusal or failure the lines
 * not yet written are withdrawn, as if never sent (those already on the wire are still answered
 * by the console, and the session matches and drops those answers), and that first error is
 * thrown: a snapshot then restarts from `begin`, telemetry from its first unacknowledged chunk.
 */
export async function sendAll(
  session: ConsoleSession,
  requests: readonly Outgoing[],
  signal?: AbortSignal,
  onAck?: (index: number) => void,
): Promise<void> {
  const batch = new AbortController();
  const stop = () => batch.abort();
  signal?.addEventListener("abort", stop, { once: true });
  if (signal?.aborted) stop();
  const acks = requests.map((r) => session.request(r.line, r.verb, batch.signal));
  for (const ack of acks) ack.catch(() => {}); // each is awaited below, or withdrawn
  try {
    for (let i = 0; i < acks.length; i++) {
      await acks[i];
      onAck?.(i);
    }
  } catch (error) {
    batch.abort(new ConsoleError("closed", "Withdrawn: an earlier line in the window failed"));
    throw error;
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}

/** `AUTH <token>` then `ATTACH queen <ticket>`, in one window. */
export function handshake(session: ConsoleSession, target: ConsoleTarget, signal?: AbortSignal): Promise<void> {
  return sendAll(session, handshakeLines(target), signal);
}

/** Echoes each publish line into `/gpu/bridge/ctl`, up to the session's window in flight. */
export function sendLines(session: ConsoleSession, lines: readonly string[], signal?: AbortSignal): Promise<void> {
  return sendAll(session, echoLines(lines), signal);
}

/** Opens a connection and a session on it, mapping connection failures to `refused`. */
export async function openSession(connect: Connect, target: ConsoleTarget, options: SessionOptions): Promise<ConsoleSession> {
  let conn;
  try {
    conn = await connect(target.host, target.port);
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new ConsoleError("refused", `Cannot connect to the console at ${target.host}:${target.port}: ${why}`, { cause });
  }
  return new ConsoleSession(conn, options);
}

/** What one publish did. */
export interface PublishReport {
  readonly bytes: number;
  readonly sha256: string;
  readonly frames: number;
  readonly durationMs: number;
}

/**
 * Connects, authenticates, attaches, sends `lines`, and closes: the one-shot `--publish`. The
 * handshake shares the window with the snapshot: the frames and their order are the reference's,
 * and a refused AUTH or ATTACH leaves the ECHOs behind it refused, never applied.
 */
export async function publishOnce(
  connect: Connect,
  target: ConsoleTarget,
  snapshot: { readonly bytes: Uint8Array; readonly sha256: string },
  lines: readonly string[],
  options: SessionOptions = {},
): Promise<PublishReport> {
  const started = performance.now();
  const session = await openSession(connect, target, options);
  try {
    await sendAll(session, [...handshakeLines(target), ...echoLines(lines)]);
    return {
      bytes: snapshot.bytes.length,
      sha256: snapshot.sha256,
      frames: session.framesSent,
      durationMs: performance.now() - started,
    };
  } finally {
    session.close();
  }
}
