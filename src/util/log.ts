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
  /**
   * Masks `secret` in every later line of this logger, its parent and its children (a token
   * learnt after start-up: the API token, a seal key). Blank or very short values are ignored.
   */
  addSecret?(secret: string): void;
}

/** Where log lines go and which are kept. */
export interface LogSink {
  readonly level: LogLevel;
  readonly write: (line: string) => void;
  readonly now?: () => Date;
  readonly secrets?: readonly string[];
}

// C0 and C1 controls, DEL, and the bidirectional overrides and isolates (U+202A-U+202E,
// U+2066-U+2069) and line separators: a peer's text must not forge lines, colours or reorder
// what an operator reads.
// deno-lint-ignore no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const escapeChar = (c: string) => {
  const code = c.charCodeAt(0);
  return code === 10 ? "\\n" : code === 13 ? "\\r" : code === 9 ? "\\t" : `\\u${code.toString(16).padStart(4, "0")}`;
};

/** `text` with every control or bidi character written as an escape: one line, shown as sent. */
export function escapeLogText(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}

/** Creates a logger writing to `sink` under `scope`. */
export function createLogger(sink: LogSink, scope = "bridge"): Logger {
  const min = RANK[sink.level];
  const now = sink.now ?? (() => new Date());
  // A loop, not Array.prototype.filter: that builtin is compiled on its first call, which would
  // put ~0.1 M instructions on every `--list`, where nothing is ever logged.
  const secrets: string[] = [];
  const given = sink.secrets ?? [];
  for (let i = 0; i < given.length; i++) if (given[i]!.length > 0) secrets.push(given[i]!);
  // A secret is masked where it stands alone (as in an echoed "AUTH <token>" line), never
  // inside other words: masking a short token everywhere would shred the log. Compiled on the
  // first line logged: `--list` logs nothing and should not pay for it.
  let masks: RegExp[] | null = null;
  const compile = () =>
    secrets.map((s) => new RegExp(`(?<![A-Za-z0-9._~+/=-])${s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![A-Za-z0-9._~+/=-])`, "g"));
  const make = (scope: string): Logger => {
    const emit = (level: LogLevel, message: string) => {
      if (RANK[level] < min) return;
      let text = message;
      for (const mask of (masks ??= compile())) text = text.replace(mask, "***");
      sink.write(`${now().toISOString()} ${level.toUpperCase().padEnd(5)} ${scope}: ${escapeLogText(text)}\n`);
    };
    return {
      debug: (m) => emit("debug", m),
      info: (m) => emit("info", m),
      warn: (m) => emit("warn", m),
      error: (m) => emit("error", m),
      child: (s) => make(s),
      addSecret: (secret) => {
        if (secret.trim().length < 4 || secrets.includes(secret)) return;
        secrets.push(secret);
        masks = null;
      },
    };
  };
  return make(scope);
}
