/** Byte-level helpers shared by the codecs, the spool and the mocks. */

const utf8 = new TextEncoder();

/** Bytes of `text` on the wire: UTF-8, a byte kept by decodeLossless counting one. */
export function byteLength(text: string): number {
  return text.isWellFormed() ? utf8.encode(text).length : encodeLossless(text).length;
}

/** The longest prefix of `text` of at most `maxBytes` UTF-8 bytes, never splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = utf8.encode(text);
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

/** `chunks` joined into one buffer (one allocation, one copy each). */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) (out.set(c, at), (at += c.length));
  return out;
}

// Bytes that are not UTF-8 (a VM line holding Latin-1, a cut character) travel as lone low
// surrogates U+DC80..U+DCFF, one per byte ("surrogateescape"): a decoder never produces a lone
// surrogate from valid UTF-8, so the mapping is lossless both ways and JSON keeps it (as \udcXX).
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** `bytes` as text, each byte that is not part of valid UTF-8 kept as U+DC80+byte (see encodeLossless). */
export function decodeLossless(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    let out = "";
    let i = 0;
    while (i < bytes.length) {
      const n = validSequence(bytes, i);
      if (n === 0) {
        out += String.fromCharCode(0xdc00 + bytes[i]!);
        i++;
      } else {
        out += strictUtf8.decode(bytes.subarray(i, i + n));
        i += n;
      }
    }
    return out;
  }
}

/** Length of the valid UTF-8 sequence at `i` (1-4), or 0 when the byte there starts none. */
function validSequence(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // no surrogates
  if (c >= 0xe1 && c <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** The bytes of `text`: UTF-8, with each lone U+DC80..U+DCFF (decodeLossless's escapes) back as its byte. */
export function encodeLossless(text: string): Uint8Array {
  if (text.isWellFormed()) return utf8.encode(text);
  const parts: Uint8Array[] = [];
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const u = text.charCodeAt(i);
    if (u >= 0xd800 && u <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++; // a pair: one character
      continue;
    }
    if (u >= 0xdc80 && u <= 0xdcff) {
      parts.push(utf8.encode(text.slice(from, i)), Uint8Array.of(u - 0xdc00));
      from = i + 1;
    }
  }
  parts.push(utf8.encode(text.slice(from)));
  return concatBytes(parts);
}
