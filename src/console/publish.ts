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

/** `AUTH <token>` then `ATTACH queen <ticket>`. */
export async function handshake(session: ConsoleSession, target: ConsoleTarget, signal?: AbortSignal): Promise<void> {
  await session.request(`AUTH ${target.token}`, "AUTH", signal);
  await session.request(`ATTACH queen ${target.ticket}`, "ATTACH", signal);
}

/** Echoes each publish line into `/gpu/bridge/ctl`, waiting for every ack. */
export async function sendLines(session: ConsoleSession, lines: readonly string[], signal?: AbortSignal): Promise<void> {
  for (const line of lines) await session.request(`ECHO ${CTL_PATH} ${line}`, "ECHO", signal);
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

/** Connects, authenticates, attaches, sends `lines`, and closes: the one-shot `--publish`. */
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
    await handshake(session, target);
    await sendLines(session, lines);
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
