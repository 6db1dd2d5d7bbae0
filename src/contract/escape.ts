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

/**
 * Lines the bridge writes into the VM's node files from text it did not choose (a VM client's
 * control line, an error naming a field, a worker id it refused) must stay one line, read as
 * they are and fit their file: a newline in a refused id once became a control line of its own.
 * The writers below escape such text by the rule above and, beyond it, the characters that
 * reorder or hide text or end a line for some readers: C1 controls, DEL, the line and paragraph
 * separators, bidi overrides and isolates, zero-width and BOM characters, and lone surrogates
 * (as `\uXXXX`, which every JSON reader decodes to the same string). Text without them is
 * written exactly as `quote` writes it.
 */
const VM_UNSAFE =
  // deno-lint-ignore no-control-regex
  /["\\\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const u4 = (ch: string) => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0");
const vmEscapeOne = (ch: string) => NAMED[ch] ?? u4(ch);
const utf8 = new TextEncoder();
/** The mark a cut text ends with (an ellipsis): never part of a safe id, so a cut id cannot name another worker. */
const CUT = "\u2026";
const CUT_ESCAPED = "\\u2026";

/** `text` escaped for a JSON string body of a line the bridge writes into the VM. */
export function escapeForVm(text: string): string {
  return text.replace(VM_UNSAFE, vmEscapeOne);
}

/** `"<escaped text>"`, at most `maxBytes` UTF-8 bytes with its quotes; a cut text ends in an ellipsis. */
export function quoteForVm(text: string, maxBytes = Infinity): string {
  return `"${fitEscaped(text, maxBytes - 2, vmEscapeOne, VM_UNSAFE, CUT)}"`;
}

// Whitespace, `\`, and everything outside printable ASCII: a ctl line is split on spaces by
// whoever reads it, so a word of it must be one word and show what it holds.
const TOKEN_UNSAFE = /[^\x21-\x5b\x5d-\x7e]/g;
const TEXT_UNSAFE = /[^\x20-\x5b\x5d-\x7e]/g;
const tokenEscapeOne = (ch: string) => (ch === "\\" ? "\\\\" : u4(ch));

/**
 * A word of a ctl line (`RELEASE <worker> …`): as is when printable ASCII without spaces or
 * `\`, otherwise every other character as `\uXXXX` (`\` as `\\`), so it stays one word, can
 * never equal a safe id and cannot start a line; at most `maxBytes`, ending in `\u2026` if cut.
 */
export function ctlToken(text: string, maxBytes = 128): string {
  if (text === "") return "\\u0000"; // an empty word would shift the words after it
  return fitEscaped(text, maxBytes, tokenEscapeOne, TOKEN_UNSAFE, CUT_ESCAPED);
}

/** The free text at the end of a ctl line (a reason): like ctlToken, with spaces kept. */
export function ctlText(text: string, maxBytes = 128): string {
  return fitEscaped(text, maxBytes, tokenEscapeOne, TEXT_UNSAFE, CUT_ESCAPED);
}

/** `text` escaped by `one` for the characters `unsafe` matches, cut to `maxBytes` on a whole escape. */
function fitEscaped(text: string, maxBytes: number, one: (ch: string) => string, unsafe: RegExp, cut: string): string {
  const escaped = text.replace(unsafe, one);
  if (escaped.length <= maxBytes / 3 || utf8.encode(escaped).length <= maxBytes) return escaped;
  // Cut piece by piece (a whole escape, a surrogate pair, or one character), leaving room for the mark.
  const budget = Math.max(0, maxBytes - utf8.encode(cut).length);
  let out = "";
  let bytes = 0;
  for (const m of text.matchAll(new RegExp(`(${unsafe.source})|[\\ud800-\\udbff][\\udc00-\\udfff]|[^]`, "g"))) {
    const piece = m[1] !== undefined ? one(m[1]) : m[0];
    const n = utf8.encode(piece).length;
    if (bytes + n > budget) break;
    out += piece;
    bytes += n;
  }
  return out + cut;
}
