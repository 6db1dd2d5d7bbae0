/**
 * The tokens file (`serve --tokens FILE`): named principals, each with a role, the worker ids an
 * operator may act for, optional quotas, and the SHA-256 of its token, never the token itself.
 *
 * ```toml
 * [principals.team-a]
 * role = "operator"
 * workers = ["team-a-*"]
 * token_sha256 = "9f86d0…"
 * quotas = { leases = 4, mem_mb = 16384, gpus = 2, sealed_bytes = 1073741824, queued_jobs = 8 }
 * ```
 *
 * Parsing is pure (text in, principals or an error naming the field out); reading and the
 * atomic rewrite of `tokens add` are the two functions at the end.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, existsSync, readFileSync } from "node:fs";
import { parse as parseToml } from "smol-toml";
import * as v from "valibot";
import { SAFE_ID, SAFE_ID_RULE } from "../contract/ids.ts";
import { openRegular, replaceFileDurably } from "../util/files.ts";
import { describeIssue } from "../util/issues.ts";

/** What a principal may do: read; lease, run and seal for its workers; everything. */
export const ROLES = ["reader", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** The quotas a principal may have, each the most it may hold at once. */
export const QUOTAS = {
  leases: "live leases",
  mem_mb: "MiB leased across GPUs",
  gpus: "GPUs leased at once",
  sealed_bytes: "bytes of sealed VRAM",
  queued_jobs: "jobs queued or running",
} as const;
export type QuotaName = keyof typeof QUOTAS;
export type Quotas = { readonly [K in QuotaName]?: number };

/** A principal as the bridge holds it. */
export interface Principal {
  readonly name: string;
  readonly role: Role;
  /** Worker-id patterns (`*` matches any run of characters); empty for readers and admins. */
  readonly workers: readonly string[];
  readonly quotas: Quotas;
  /** SHA-256 of the token. */
  readonly hash: Buffer;
}

/** The name the single API token's requests carry in the record of changes. */
export const SINGLE_TOKEN_PRINCIPAL = "api-token";

/** A worker-id pattern: the safe-id characters and `*`. */
const PATTERN = /^[A-Za-z0-9._*-]{1,64}$/;
const HEX64 = /^[0-9a-f]{64}$/;

const count = (name: string) =>
  v.pipe(
    v.number(`quotas.${name} must be a non-negative integer`),
    v.integer(`quotas.${name} must be a non-negative integer`),
    v.minValue(0, `quotas.${name} must be a non-negative integer`),
    v.maxValue(Number.MAX_SAFE_INTEGER, `quotas.${name} is too large`),
  );
const QuotasSchema = v.strictObject(
  Object.fromEntries(Object.keys(QUOTAS).map((k) => [k, v.optional(count(k))])) as Record<
    QuotaName,
    v.OptionalSchema<ReturnType<typeof count>, undefined>
  >,
);
const PrincipalSchema = v.strictObject({
  role: v.picklist(ROLES, `role must be one of ${ROLES.join(", ")}`),
  workers: v.optional(v.array(
    v.pipe(v.string("workers must be strings"), v.regex(PATTERN, "workers must be patterns of A-Z a-z 0-9 . _ - and *, 1-64 long")),
    "workers must be an array of patterns",
  )),
  token_sha256: v.pipe(v.string("token_sha256 must be a string"), v.regex(HEX64, "token_sha256 must be 64 lower-case hex digits")),
  quotas: v.optional(QuotasSchema),
});
const FileSchema = v.strictObject({
  principals: v.optional(v.record(v.string(), v.unknown(), "principals must be a table of principals"), {}),
});

/** A tokens file the bridge refuses: the message names the file and the field. */
export class TokensFileError extends Error {
  override name = "TokensFileError";
}

/** The principals of a tokens file's text; throws TokensFileError naming `path` and the field. */
export function parseTokensFile(text: string, path: string): Principal[] {
  const bad = (why: string) => new TokensFileError(`Cannot use the tokens file ${path}: ${why}`);
  let doc: unknown;
  try {
    doc = parseToml(text);
  } catch (error) {
    throw bad(`it is not TOML: ${(error as Error).message.split("\n")[0]}`);
  }
  const top = v.safeParse(FileSchema, doc);
  if (!top.success) {
    const d = describeIssue(top.issues[0], "principals");
    throw bad(d.field === "principals" && !d.message.startsWith("principals") ? `principals: ${d.message}` : d.message);
  }
  const out: Principal[] = [];
  const byHash = new Map<string, string>();
  for (const [name, raw] of Object.entries(top.output!.principals)) {
    if (!SAFE_ID.test(name)) throw bad(`principal ${JSON.stringify(name)}: a name must be ${SAFE_ID_RULE}`);
    if (name === SINGLE_TOKEN_PRINCIPAL) throw bad(`principal "${name}": the name is the single API token's; choose another`);
    const parsed = v.safeParse(PrincipalSchema, raw);
    if (!parsed.success) {
      const d = describeIssue(parsed.issues[0], "(principal)");
      throw bad(`principals.${name}.${d.field}: ${d.message}`);
    }
    const p = parsed.output!;
    const workers = p.workers ?? [];
    if (p.role === "operator" && workers.length === 0) {
      throw bad(`principals.${name}.workers: an operator needs at least one worker-id pattern (e.g. ["${name}-*"])`);
    }
    if (p.role !== "operator" && workers.length > 0) throw bad(`principals.${name}.workers: only an operator has worker patterns`);
    const other = byHash.get(p.token_sha256);
    if (other !== undefined) throw bad(`principals.${name}.token_sha256: the same token as principal "${other}"`);
    byHash.set(p.token_sha256, name);
    const quotas: Record<string, number> = {};
    for (const [k, n] of Object.entries(p.quotas ?? {})) if (n !== undefined) quotas[k] = n;
    out.push({ name, role: p.role, workers, quotas, hash: Buffer.from(p.token_sha256, "hex") });
  }
  return out;
}

/** Reads and parses the tokens file at `path` (a FIFO or device there is refused, not waited on). */
export function readTokensFile(path: string): Principal[] {
  return parseTokensFile(readText(path), path);
}

function readText(path: string): string {
  try {
    const fd = openRegular(path, true);
    try {
      return readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw new TokensFileError(`Cannot read the tokens file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** Whether `workerId` matches `pattern` (`*`: any run of characters, the rest literally). */
export function workerMatches(pattern: string, workerId: string): boolean {
  if (!pattern.includes("*")) return pattern === workerId;
  const parts = pattern.split("*");
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (workerId.length < first.length + last.length || !workerId.startsWith(first) || !workerId.endsWith(last)) return false;
  let at = first.length;
  const end = workerId.length - last.length;
  for (const part of parts.slice(1, -1)) {
    const i = workerId.indexOf(part, at);
    if (i < 0 || i + part.length > end) return false;
    at = i + part.length;
  }
  return true;
}

/** A new token: 32 random bytes, base64url, with a prefix that says what it is. */
export const newToken = (): string => `gbh_${randomBytes(32).toString("base64url")}`;
export const tokenHash = (token: string): string => createHash("sha256").update(token).digest("hex");

/**
 * Adds principal `name` to the tokens file at `path` (made if absent) with a new token, which is
 * returned and stored nowhere: the file gets its hash. The new text is parsed whole before it
 * replaces the old one (atomically, mode 0600), so a refusal leaves the file as it was; the
 * file's other lines, comments included, are kept as they are.
 */
export function addPrincipal(path: string, name: string, role: Role, workers: readonly string[]): { token: string } {
  const before = existsSync(path) ? readText(path) : "";
  const known = parseTokensFile(before, path);
  if (known.some((p) => p.name === name)) {
    throw new TokensFileError(`Cannot add principal "${name}": ${path} has one of that name already (edit or remove it first)`);
  }
  const token = newToken();
  const block = [
    `[principals.${JSON.stringify(name)}]`,
    `role = "${role}"`,
    ...(workers.length > 0 ? [`workers = [${workers.map((w) => JSON.stringify(w)).join(", ")}]`] : []),
    `token_sha256 = "${tokenHash(token)}"`,
    "",
  ].join("\n");
  const text = before === "" ? block : `${before.replace(/\n*$/, "\n")}\n${block}`;
  parseTokensFile(text, path);
  replaceFileDurably(path, text, 0o600);
  return { token };
}
