/**
 * The reference bridge's string escaper (contract section 4). It is deliberately not
 * `JSON.stringify`: non-ASCII is written as is and control characters use lowercase hex.
 */

// deno-lint-ignore no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

/** Escapes `text` for a JSON string body exactly as the reference does. */
export function escapeString(text: string): string {
  if (!NEEDS_ESCAPE.test(text)) return text;
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    const code = text.charCodeAt(i);
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20) out += "\\u" + code.toString(16).padStart(4, "0");
    else out += ch;
  }
  return out;
}

/** A quoted JSON string in the reference's escaping. */
export function quote(text: string): string {
  return `"${escapeString(text)}"`;
}
