/**
 * Ack parsing (docs/protocol.md#8-the-console): `OK <VERB>[ <detail>]` or `ERR <VERB> <detail>`. Log-mirror
 * lines, `PONG`, `END` and anything else interleaved are not acks and yield null.
 */

/** A parsed ack line. */
export interface Ack {
  readonly ok: boolean;
  readonly verb: string;
  readonly detail: string;
  /** `key=value` pairs of the detail (`reason`, `detail`, `delay_ms`, …). */
  readonly fields: Readonly<Record<string, string>>;
}

// `s`: a detail may hold any character (a CAT ack's summary is a VM line, U+2028 included),
// and without it `.` stops at a line separator and the ack would pass for noise.
const ACK = /^(OK|ERR) ([A-Z][A-Z0-9_-]*)(?: (.*))?$/s;

/** The ack in `line`, or null when the line is something else. */
export function parseAck(line: string): Ack | null {
  const m = ACK.exec(line);
  if (m === null) return null;
  const detail = m[3] ?? "";
  return { ok: m[1] === "OK", verb: m[2]!, detail, fields: parseFields(detail) };
}

/** Splits `a=1 b=two words c=3` into pairs; a value runs until the next ` key=`. */
export function parseFields(detail: string): Record<string, string> {
  const fields: Record<string, string> = {};
  const re = /(?:^| )([A-Za-z_][A-Za-z0-9_-]*)=/g;
  const marks: { key: string; start: number; valueStart: number }[] = [];
  for (let m = re.exec(detail); m !== null; m = re.exec(detail)) {
    marks.push({ key: m[1]!, start: m.index, valueStart: m.index + m[0].length });
  }
  marks.forEach((mark, i) => {
    const end = i + 1 < marks.length ? marks[i + 1]!.start : detail.length;
    if (!Object.hasOwn(fields, mark.key)) fields[mark.key] = detail.slice(mark.valueStart, end);
  });
  return fields;
}

/** The server-requested wait in a refusal (`delay_ms=N`), if any. */
export function ackDelayMs(ack: Ack): number | undefined {
  const raw = ack.fields.delay_ms;
  if (raw === undefined || !/^[0-9]{1,9}$/.test(raw)) return undefined;
  return Number(raw);
}
