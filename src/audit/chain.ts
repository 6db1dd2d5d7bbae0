/**
 * The audit trail's lines and their chain, pure: how a record is written (its canonical form),
 * how it is hashed, and how a line read back is told apart. No files here.
 *
 * A line is one JSON object with its keys sorted (recursively), no spaces, UTF-8, ending in "\n".
 * Its hash is the SHA-256 of those bytes less the newline, in lowercase hex. Every line carries
 * `prev`, the hash of the line before it (the first line of a trail: 64 zeros), so editing,
 * removing or reordering any line breaks the chain at the line after it. Three kinds of line:
 *
 * - a change (`src/changes/record.ts`'s fields, plus `prev`);
 * - an anchor, the first line of every file after the first: `{"anchor":{"file","last_id"},"prev"}`
 *   names the previous file and its last change, and its `prev` is that file's last hash, so the
 *   chain runs across files, and a trail whose oldest files were dropped still verifies from here;
 * - a gap, written before the next change when changes could not be written (a full disk):
 *   `{"gap":{"from","to","error"},"prev"}`, so the missing ids are declared, not hidden.
 */
import { canonicalJson, sortKeys } from "../util/canonical-json.ts";
import { sha256Hex } from "../util/sha256.ts";

/** `prev` of a trail's very first line. */
export const GENESIS = "0".repeat(64);

/** A trail file's name: `audit-00000001.jsonl`, numbered from 1, never reused. */
export const trailFileName = (n: number): string => `audit-${String(n).padStart(8, "0")}.jsonl`;
/** The number of a trail file, or null for any other name. */
export function trailFileNumber(name: string): number | null {
  const m = /^audit-(\d{8})\.jsonl$/.exec(name);
  return m === null ? null : Number(m[1]);
}

export { canonicalJson } from "../util/canonical-json.ts";

/** The line (without its newline) for `body` chained after `prev`, and its hash. */
export function chainLine(body: Readonly<Record<string, unknown>>, prev: string): { line: string; hash: string } {
  // `body` with `prev`, keys sorted, in one copy (not a spread and then a sorted copy of it).
  const out: Record<string, unknown> = {};
  for (const k of [...Object.keys(body), "prev"].sort()) {
    const v = k === "prev" ? prev : body[k];
    if (v !== undefined) out[k] = sortKeys(v);
  }
  const line = JSON.stringify(out);
  return { line, hash: sha256Hex(line) };
}

/** A line read back, by kind. */
export type TrailLine =
  | { readonly kind: "change"; readonly id: number; readonly prev: string; readonly value: Record<string, unknown> }
  | { readonly kind: "anchor"; readonly file: string; readonly lastId: number; readonly prev: string }
  | { readonly kind: "gap"; readonly from: number; readonly to: number; readonly prev: string };

const isHash = (x: unknown): x is string => typeof x === "string" && /^[0-9a-f]{64}$/.test(x);
const isId = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;

/** Parses one line; a string saying what is wrong when it is no trail line in canonical form. */
export function parseTrailLine(line: string): TrailLine | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return "it is not JSON";
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return "it is not a JSON object";
  if (canonicalJson(value) !== line) return "it is not in canonical form (sorted keys, no spaces)";
  const o = value as Record<string, unknown>;
  if (!isHash(o.prev)) return "its prev is not a SHA-256 in hex";
  if (o.anchor !== undefined) {
    const a = o.anchor as Record<string, unknown>;
    if (typeof a?.file !== "string" || !isId(a.last_id)) return "its anchor lacks file or last_id";
    return { kind: "anchor", file: a.file, lastId: a.last_id, prev: o.prev };
  }
  if (o.gap !== undefined) {
    const g = o.gap as Record<string, unknown>;
    if (!isId(g?.from) || !isId(g.to) || g.to < g.from) return "its gap lacks from or to";
    return { kind: "gap", from: g.from, to: g.to, prev: o.prev };
  }
  if (!isId(o.id) || o.id < 1) return "its id is not a positive integer";
  if (typeof o.type !== "string" || typeof o.time !== "string") return "it lacks type or time";
  return { kind: "change", id: o.id, prev: o.prev, value: o };
}

/** The id of the last change a line accounts for (an anchor's last_id, a gap's to). */
export function lastIdOf(l: TrailLine): number {
  return l.kind === "change" ? l.id : l.kind === "anchor" ? l.lastId : l.to;
}
