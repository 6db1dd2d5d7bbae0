/**
 * Canonical JSON, the bytes the audit chain hashes and attestations are signed over: the keys of
 * every object sorted (by UTF-16 code units, as Array.prototype.sort orders strings), no spaces,
 * undefined members left out, numbers and strings as JSON.stringify writes them. For the values
 * those hold (strings, safe integers, booleans, null) this is RFC 8785 (JCS), so a verifier can
 * rebuild the bytes with any JCS library, or `jq -cjS`.
 */

/** `value` as canonical JSON. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

/** `value` with every plain object's keys in canonical order (a copy only where one is needed). */
export function sortKeys(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(sortKeys);
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  // A plain object already in order, holding no object and no undefined, is its own canonical
  // form: most of a change's `data` is, so the common case copies nothing.
  let asIs = Object.getPrototypeOf(o) === Object.prototype;
  for (let i = 0; asIs && i < keys.length; i++) {
    const v = o[keys[i]!];
    asIs = v !== undefined && (v === null || typeof v !== "object") && (i === 0 || keys[i - 1]! < keys[i]!);
  }
  if (asIs) return o;
  const out: Record<string, unknown> = {};
  for (const k of keys.sort()) {
    const v = o[k];
    if (v !== undefined) out[k] = sortKeys(v);
  }
  return out;
}
