/**
 * Line logs on stderr, in one of two formats. `text` (the default): `<ISO time> <LEVEL> <scope>:
 * <message>`. `json`: one object per line, `{"time","level","component","message",...fields}`,
 * for journald and log shippers. Registered secrets are masked the same way in both, message and
 * fields alike, so a token echoed back by a peer never reaches the log.
 */

/** How much is logged; the one log-level type (the CLI's --log-level parses to it). */
export type LogLevel = "debug" | "info" | "warn" | "error";
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** How lines are written; the one log-format type (the CLI's --log-format parses to it). */
export type LogFormat = "text" | "json";

/**
 * What a line is about, for machines: the ids its message already names (`lease`, `job`, `gpu`,
 * `worker`, `request`, ...). A text line shows only its message, which must state them; a JSON
 * line carries them as keys of their own besides the message, so a shipper can filter on them.
 */
export type LogFields = Readonly<Record<string, string | number | boolean>>;

/** A scoped logger. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
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
  /** `text` unless given. */
  readonly format?: LogFormat;
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

const unicodeEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

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
  const json = sink.format === "json";
  const mask = (text: string): string => {
    for (const m of (masks ??= compile())) text = text.replace(m, "***");
    return text;
  };
  const make = (scope: string): Logger => {
    const emit = (level: LogLevel, message: string, fields: LogFields | undefined) => {
      if (RANK[level] < min) return;
      if (!json) {
        sink.write(`${now().toISOString()} ${level.toUpperCase().padEnd(5)} ${scope}: ${escapeLogText(mask(message))}\n`);
        return;
      }
      // The record's own keys first; a field cannot replace them.
      const record: Record<string, string | number | boolean> = {
        time: now().toISOString(),
        level,
        component: scope,
        message: mask(message),
      };
      if (fields !== undefined) {
        for (const key in fields) {
          if (Object.hasOwn(record, key)) continue;
          const value = fields[key]!;
          record[key] = typeof value === "string" ? mask(value) : value;
        }
      }
      // JSON.stringify escapes C0 controls but leaves DEL, C1, the bidi controls and U+2028/9 as
      // they are: those are escaped too (\uXXXX, the same string once parsed), as in text mode.
      sink.write(`${JSON.stringify(record).replace(UNSAFE, unicodeEscape)}\n`);
    };
    return {
      debug: (m, f) => emit("debug", m, f),
      info: (m, f) => emit("info", m, f),
      warn: (m, f) => emit("warn", m, f),
      error: (m, f) => emit("error", m, f),
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
