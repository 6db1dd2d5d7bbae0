/**
 * The bytes an attestation's signature covers: JSON with the keys of every object sorted (by
 * UTF-16 code units) and no spaces, numbers and strings as JSON.stringify writes them. For the
 * values a statement holds (strings, safe integers, booleans, null) this is RFC 8785 (JCS), so
 * a verifier can rebuild the bytes with any JCS library, or `jq -cjS`.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    return `{${
      Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")
    }}`;
  }
  return JSON.stringify(value);
}
