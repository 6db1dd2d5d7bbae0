/**
 * Bearer-token auth for mutating routes. The token is compared in constant time (both sides
 * hashed first, so their lengths never leak either), and it is never logged: only the path of
 * a generated token file is.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** True if `header` is `Bearer <token>` for exactly `token`. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  const given = createHash("sha256").update(m?.[1] ?? "").digest();
  const expected = createHash("sha256").update(token).digest();
  return timingSafeEqual(given, expected) && m !== null;
}

/** Where the API token came from. */
export type TokenSource = { kind: "flag" } | { kind: "env" } | { kind: "file"; path: string; created: boolean };

/**
 * The API token: `--api-token`, else `GPU_BRIDGE_API_TOKEN`, else the one in `<stateDir>/api-token`,
 * generated (mode 0600) on first use so it survives restarts.
 */
export function resolveApiToken(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  stateDir: string,
): { token: string; source: TokenSource } {
  if (flag !== undefined && flag.trim() !== "") return { token: flag.trim(), source: { kind: "flag" } };
  const fromEnv = env.GPU_BRIDGE_API_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, source: { kind: "env" } };
  const path = `${stateDir.replace(/\/+$/, "")}/api-token`;
  if (existsSync(path)) {
    const token = readFileSync(path, "utf8").trim();
    if (token.length >= 16) return { token, source: { kind: "file", path, created: false } };
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const token = randomBytes(24).toString("base64url");
  writeFileSync(path, token + "\n", { mode: 0o600 });
  chmodSync(path, 0o600);
  return { token, source: { kind: "file", path, created: true } };
}
