/**
 * The reference bridge's string escaper (contract section 4). It is deliberately not
 * `JSON.stringify`: non-ASCII is written as is and control characters use lowercase hex.
 */

// deno-lint-ignore no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/g;
const NAMED: Readonly<Record<string, string>> = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
const escapeOne = (ch: string) => NAMED[ch] ?? "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0");

/**
 * Escapes `text` for a JSON string body exactly as the reference does. One native regex pass:
 * a character-by-character loop costs about a million interpreted instructions on `--list`.
 */
export function escapeString(text: string): string {
  return text.replace(NEEDS_ESCAPE, escapeOne);
}

/** A quoted JSON string in the reference's escaping. */
export function quote(text: string): string {
  return `"${escapeString(text)}"`;
}
