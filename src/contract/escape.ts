/**
 * The reference bridge's string escaper (docs/protocol.md#4-the-list-json-and-escaping): `"` `\` newline, carriage return
 * and tab get their short escapes, every other character below U+0020 becomes `\u00XX` in
 * lowercase hex, and everything else, non-ASCII included, is written as is.
 *
 * That is exactly what `JSON.stringify` does to a string, except in three cases: it writes
 * backspace and form feed as `\b` and `\f`, and a lone surrogate as `\udXXX`. `quote` takes the
 * native `JSON.stringify` whenever none of those is present, and the rule's own regex pass
 * otherwise: on `--list` the regex pass, with a JavaScript callback per escaped character,
 * costs 3% of the start-up and warms the JIT enough to start a compiler thread.
 */

// deno-lint-ignore no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/g;
const NAMED: Readonly<Record<string, string>> = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
const escapeOne = (ch: string) => NAMED[ch] ?? "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0");

/** Escapes `text` for a JSON string body exactly as the reference does. */
export function escapeString(text: string): string {
  return text.replace(NEEDS_ESCAPE, escapeOne);
}

/** A quoted JSON string in the reference's escaping. */
export function quote(text: string): string {
  if (text.isWellFormed() && !text.includes("\b") && !text.includes("\f")) return JSON.stringify(text);
  return `"${escapeString(text)}"`;
}
