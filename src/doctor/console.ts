/**
 * Does the console answer and take the token? Read only: AUTH, then ATTACH as the bridge would,
 * and nothing else (no ECHO, no publish). The whole exchange, connect included, has one
 * deadline on the given clock, so a black-holed address costs `timeoutMs`, not a TCP timeout.
 */
import { ConsoleError } from "../console/errors.ts";
import { openSession, sendAll } from "../console/publish.ts";
import type { Connect } from "../runtime/transport.ts";
import { type Clock, delay, systemClock } from "../util/clock.ts";
import { type Check, check } from "./types.ts";

export interface ConsoleProbe {
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly ticket: string;
  readonly role: string;
}

/** AUTH and ATTACH within `timeoutMs`; the check says what the console answered. */
export async function consoleCheck(connect: Connect, p: ConsoleProbe, timeoutMs: number, clock: Clock = systemClock): Promise<Check> {
  const where = `${p.host}:${p.port}`;
  const stop = new AbortController();
  const timeout = new ConsoleError("timeout", `no answer from ${where} within ${timeoutMs} ms`);
  let session: Awaited<ReturnType<typeof openSession>> | undefined;
  const exchange = (async () => {
    session = await openSession(connect, p, { ackTimeoutMs: timeoutMs, window: 1, clock });
    // Connected after the deadline: the check has answered already; hang up at once.
    if (stop.signal.aborted) return session.close();
    await sendAll(
      session,
      [{ line: `AUTH ${p.token}`, verb: "AUTH" }, { line: `ATTACH ${p.role} ${p.ticket}`, verb: "ATTACH" }],
      stop.signal,
    );
  })();
  exchange.catch(() => {});
  try {
    await Promise.race([exchange, delay(timeoutMs, stop.signal, clock).then(() => Promise.reject(timeout))]);
    return check("console", where, "ok", `answers, and accepts the token (AUTH and ATTACH ${p.role} acknowledged)`);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const refused = e instanceof ConsoleError && e.kind === "rejected";
    return check(
      "console",
      where,
      "fail",
      why,
      e === timeout
        ? "check --tcp-host/--tcp-port and that the VM's console is listening (a firewall dropping packets looks like this)"
        : refused
        ? "check --auth-token (or $COH_AUTH_TOKEN) and --ticket against the VM's configuration"
        : "check --tcp-host/--tcp-port and that the VM's console is running",
    );
  } finally {
    stop.abort();
    session?.close();
  }
}
