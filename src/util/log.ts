/**
 * Plain line logs on stderr: `<ISO time> <LEVEL> <scope>: <message>`. Registered secrets are
 * masked in every message, so a token echoed back by a peer never reaches the log.
 */

/** How much is logged; the one log-level type (the CLI's --log-level parses to it). */
export type LogLevel = "debug" | "info" | "warn" | "error";
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A scoped logger. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** A logger with the same sink and secrets under another scope. */
  child(scope: string): Logger;
}

/** Where log lines go and which are kept. */
export interface LogSink {
  readonly level: LogLevel;
  readonly write: (line: string) => void;
  readonly now?: () => Date;
  readonly secrets?: readonly string[];
}

/** Creates a logger writing to `sink` under `scope`. */
export function createLogger(sink: LogSink, scope = "bridge"): Logger {
  const min = RANK[sink.level];
  const now = sink.now ?? (() => new Date());
  // A secret is masked where it stands alone (as in an echoed "AUTH <token>" line), never
  // inside other words: masking a short token everywhere would shred the log. Compiled on the
  // first line logged: `--list` logs nothing and should not pay for it.
  let masks: RegExp[] | null = null;
  const compile = () =>
    (sink.secrets ?? [])
      .filter((s) => s.length > 0)
      .map((s) => new RegExp(`(?<![A-Za-z0-9._~+/=-])${s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![A-Za-z0-9._~+/=-])`, "g"));
  const emit = (level: LogLevel, message: string) => {
    if (RANK[level] < min) return;
    let text = message;
    for (const mask of (masks ??= compile())) text = text.replace(mask, "***");
    sink.write(`${now().toISOString()} ${level.toUpperCase().padEnd(5)} ${scope}: ${text}\n`);
  };
  return {
    debug: (m) => emit("debug", m),
    info: (m) => emit("info", m),
    warn: (m) => emit("warn", m),
    error: (m) => emit("error", m),
    child: (s) => createLogger(sink, s),
  };
}
