/**
 * What the bridge reads in a model's `manifest.toml` beyond what the VM publishes verbatim: the
 * parent (`[model] base`), the approval (`[approval] status`), the files it lists with their
 * SHA-256 (`[artifacts."<file>"]`) and the hash of its parent's manifest (`[provenance]
 * parent_sha256`); and the manifest's own hash, which its children record.
 *
 * A manifest's hash covers everything but its `[approval]` table: approving or rejecting a model
 * is a decision about it, taken after it was imported, and must not break the hash that its
 * children recorded of it. Everything that says what the model is (its files, its parent, its
 * training) is covered.
 */
import { parse as parseToml } from "smol-toml";
import { sha256Hex } from "../util/sha256.ts";

/** One file a manifest lists, as it lists it. */
export interface ListedFile {
  readonly name: string;
  readonly sha256: string;
  /** Null where the manifest gives no size. */
  readonly bytes: number | null;
}

/** What a manifest says of a model, for the approval gate and `models verify`. */
export interface ManifestFacts {
  /** `[model] base`: the parent's id; null for a base model. */
  readonly base: string | null;
  /** `[approval] status` as written; null when the manifest has none. */
  readonly status: string | null;
  /** `[approval] reason`, when given. */
  readonly reason: string | null;
  readonly files: readonly ListedFile[];
  /** `[provenance] parent_sha256`: the parent's manifest hash when this model was imported. */
  readonly parentSha256: string | null;
  /** Why the manifest cannot be read as TOML (its facts are then all empty); null when it can. */
  readonly problem: string | null;
}

type Table = Record<string, unknown>;
const table = (v: unknown): Table | undefined => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Table) : undefined);
const text = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);

/** The facts of `manifest` (TOML text). A manifest that is not TOML has none, and `problem` says why. */
export function manifestFacts(manifest: string): ManifestFacts {
  let doc: Table;
  try {
    doc = parseToml(manifest) as Table;
  } catch (error) {
    const why = (error as Error).message.split("\n")[0]!;
    return { base: null, status: null, reason: null, files: [], parentSha256: null, problem: `it is not valid TOML (${why})` };
  }
  const model = table(doc.model);
  const approval = table(doc.approval);
  const provenance = table(doc.provenance);
  const files: ListedFile[] = [];
  for (const [name, entry] of Object.entries(table(doc.artifacts) ?? {})) {
    const t = table(entry);
    const sha = typeof t?.sha256 === "string" ? t.sha256.toLowerCase() : "";
    const bytes = typeof t?.bytes === "number" && Number.isSafeInteger(t.bytes) ? t.bytes : null;
    files.push({ name, sha256: sha, bytes });
  }
  return {
    base: text(model?.base),
    status: text(approval?.status),
    reason: text(approval?.reason),
    files,
    parentSha256: text(provenance?.parent_sha256)?.toLowerCase() ?? null,
    problem: null,
  };
}

/** A `[table]` header line (not an array of tables), and its name. */
const HEADER = /^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$/;
const ANY_HEADER = /^\s*\[/;

/**
 * The manifest less its `[approval]` table (the header and every line up to the next table),
 * with trailing blank lines dropped and one newline at the end: what `manifestSha256` hashes.
 */
export function withoutApproval(manifest: string): string {
  const out: string[] = [];
  let skipping = false;
  for (const line of manifest.split("\n")) {
    if (ANY_HEADER.test(line)) skipping = HEADER.exec(line)?.[1]?.replace(/^"(.*)"$/, "$1") === "approval";
    if (!skipping) out.push(line);
  }
  while (out.length > 0 && out.at(-1)!.trim() === "") out.pop();
  return out.join("\n") + "\n";
}

/** A manifest's hash: SHA-256 (hex) of its text less the `[approval]` table (see the header). */
export function manifestSha256(manifest: string): string {
  return sha256Hex(withoutApproval(manifest));
}

const TOML_ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"',
  "\\": "\\\\",
  "\b": "\\b",
  "\t": "\\t",
  "\n": "\\n",
  "\f": "\\f",
  "\r": "\\r",
};

// deno-lint-ignore no-control-regex
const TOML_UNSAFE = /["\\\u0000-\u001f\u007f]/g;

/**
 * `s` as a TOML basic string: quote and backslash escaped, and every control character that
 * TOML forbids in a string (U+0000-U+001F but tab, and U+007F) written as an escape.
 */
export const tomlString = (s: string): string =>
  `"${s.replace(TOML_UNSAFE, (c) => TOML_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}"`;

/** A decision on a model's approval, as its manifest records it. */
export interface ApprovalRecord {
  readonly status: string;
  readonly reason?: string;
  /** Who decided (an API principal or route). */
  readonly by?: string;
  /** RFC 3339. */
  readonly at?: string;
}

/** The `[approval]` table for `a`. */
export function approvalTable(a: ApprovalRecord): string {
  return [
    "[approval]",
    `status = ${tomlString(a.status)}`,
    ...(a.reason !== undefined ? [`reason = ${tomlString(a.reason)}`] : []),
    ...(a.by !== undefined ? [`by = ${tomlString(a.by)}`] : []),
    ...(a.at !== undefined ? [`at = ${tomlString(a.at)}`] : []),
  ].join("\n") + "\n";
}

/** `manifest` with its `[approval]` table replaced by `a` (written last); its hash is unchanged. */
export function withApproval(manifest: string, a: ApprovalRecord): string {
  return `${withoutApproval(manifest)}\n${approvalTable(a)}`;
}
