/**
 * Checks on a peer's JSON or CBOR made before it is decoded, so the decoder's output is
 * bounded by what the bridge will hold, not by how densely the peer packs containers (a 1 MiB
 * CBOR array of empty maps decodes to a million objects, ~125 MB). JSON's duplicate keys,
 * which `JSON.parse` silently resolves to the last, are refused here too.
 */

/** Objects and arrays (JSON) or maps and arrays (CBOR) one body may hold: more than a 1 MiB batch of real records needs (~6 each), and at most ~8 MB of decoded empty objects. */
export const MAX_CONTAINERS = 64 * 1024;
/** Nesting deeper than this is refused (no record nests beyond 3). */
export const MAX_DEPTH = 32;

/** Raised for input that breaks a limit or repeats a key; `message` says which. */
export class StrictInputError extends Error {
  override name = "StrictInputError";
}

/**
 * Scans JSON `text` and throws StrictInputError on a repeated key in one object, more than
 * `maxContainers` objects and arrays, or nesting past MAX_DEPTH. Syntax is left to
 * `JSON.parse`, which runs after: on malformed text this returns without judging it.
 */
export function checkJson(text: string, maxContainers = MAX_CONTAINERS): void {
  const stack: (Set<string> | null)[] = [];
  let containers = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let end = i;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end < 0) return; // unterminated: JSON.parse reports it
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
        if (slashes % 2 === 0) break;
      }
      const keys = stack.at(-1);
      if (keys != null) {
        let j = end + 1;
        while (
          j < text.length &&
          (text.charCodeAt(j) === 0x20 || text.charCodeAt(j) === 0x0a || text.charCodeAt(j) === 0x0d || text.charCodeAt(j) === 0x09)
        ) j++;
        if (text.charCodeAt(j) === 0x3a /* : */) {
          let key: string;
          try {
            key = JSON.parse(text.slice(i, end + 1)) as string;
          } catch {
            return;
          }
          if (keys.has(key)) throw new StrictInputError(`duplicate key ${JSON.stringify(key)} in one object`);
          keys.add(key);
        }
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++containers > maxContainers) throw new StrictInputError(`more than ${maxContainers} objects and arrays`);
      stack.push(c === 0x7b ? new Set() : null);
      if (stack.length > MAX_DEPTH) throw new StrictInputError(`nested deeper than ${MAX_DEPTH}`);
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
    }
  }
}

/**
 * Walks CBOR `bytes` header by header, allocating nothing, and throws StrictInputError past
 * `maxContainers` maps and arrays, past MAX_DEPTH, or on a length the body cannot hold.
 * Malformed input is left to the decoder.
 */
export function checkCbor(bytes: Uint8Array, maxContainers = MAX_CONTAINERS): void {
  let at = 0;
  let containers = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const arg = (ai: number): number | null => {
    if (ai < 24) return ai;
    const n = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : -1;
    if (n < 0 || at + n > bytes.length) return null;
    const v = n === 1 ? bytes[at]! : n === 2 ? view.getUint16(at) : n === 4 ? view.getUint32(at) : Number(view.getBigUint64(at));
    at += n;
    return v;
  };
  // Returns false where the input is malformed (the decoder will say so).
  const item = (depth: number): boolean => {
    if (depth > MAX_DEPTH) throw new StrictInputError(`nested deeper than ${MAX_DEPTH}`);
    if (at >= bytes.length) return false;
    const b = bytes[at++]!;
    const major = b >> 5;
    const ai = b & 31;
    if (ai === 31 && (major === 4 || major === 5)) {
      if (++containers > maxContainers) throw new StrictInputError(`more than ${maxContainers} maps and arrays`);
      while (at < bytes.length && bytes[at] !== 0xff) if (!item(depth + 1) || (major === 5 && !item(depth + 1))) return false;
      at++;
      return true;
    }
    if (ai === 31 && (major === 2 || major === 3)) {
      while (at < bytes.length && bytes[at] !== 0xff) if (!item(depth + 1)) return false;
      at++;
      return true;
    }
    if (major === 7) {
      at += ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : 0;
      return at <= bytes.length;
    }
    const n = arg(ai);
    if (n === null) return false;
    if (major === 2 || major === 3) {
      at += n;
      return at <= bytes.length;
    }
    if (major === 4 || major === 5) {
      if (++containers > maxContainers) throw new StrictInputError(`more than ${maxContainers} maps and arrays`);
      // Every item takes at least a byte: a count the body cannot hold is malformed.
      if (n * (major === 5 ? 2 : 1) > bytes.length - at) return false;
      for (let k = 0; k < n * (major === 5 ? 2 : 1); k++) if (!item(depth + 1)) return false;
      return true;
    }
    if (major === 6) return item(depth + 1);
    return true;
  };
  while (at < bytes.length) if (!item(0)) return;
}
