/**
 * Bearer-token auth for mutating routes. The token is compared in constant time (both sides
 * hashed first, so their lengths never leak either), and it is never logged: only the path of
 * a generated token file is.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { apiTokenProblem } from "../util/api-token.ts";
import { ApiError } from "./errors.ts";
import { openRegular, replaceFileDurably } from "../util/files.ts";
import { stateDirError } from "../util/state-dir.ts";

/** The token of `Authorization: Bearer <token>` (any case of the scheme, blanks around), or null. */
export function bearerToken(header: string | undefined): string | null {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1] ?? null;
}

/** True if `header` is `Bearer <token>` for exactly `token`. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const given = bearerToken(header);
  const digest = createHash("sha256").update(given ?? "").digest();
  const expected = createHash("sha256").update(token).digest();
  return timingSafeEqual(digest, expected) && given !== null;
}

/** The 401 for a request without a valid token, with the challenge; `what` says which tokens count. */
export function unauthorized(what = "the bridge's API token"): ApiError {
  return new ApiError(401, "unauthorized", `This route needs 'Authorization: Bearer <token>' with ${what}`, undefined, {
    "WWW-Authenticate": 'Bearer realm="gpu-bridge-host"',
  });
}

/** Where the API token came from. */
export type TokenSource = { kind: "flag" } | { kind: "env" } | { kind: "file"; path: string; created: boolean };

/** Where a state directory keeps its API token. */
export const tokenPath = (stateDir: string) => `${stateDir.replace(/\/+$/, "")}/api-token`;

/**
 * The API token if one is set: `--api-token`, else `GPU_BRIDGE_API_TOKEN` (each trimmed, ignored
 * if blank), else the one in `<stateDir>/api-token`. Never creates one: clients use this.
 */
export function findApiToken(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  stateDir: string,
): { token: string; source: TokenSource } | null {
  if (flag !== undefined && flag.trim() !== "") return { token: flag.trim(), source: { kind: "flag" } };
  const fromEnv = env.GPU_BRIDGE_API_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, source: { kind: "env" } };
  const path = tokenPath(stateDir);
  if (existsSync(path)) {
    let token: string;
    try {
      const fd = openRegular(path); // a FIFO here must not freeze start-up
      try {
        token = readFileSync(fd, "utf8").trim();
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      throw stateDirError(stateDir, error) ?? error;
    }
    if (apiTokenProblem(token) === null) return { token, source: { kind: "file", path, created: false } };
  }
  return null;
}

/**
 * The API token the bridge serves with: as `findApiToken`, else one generated (mode 0600) into
 * `<stateDir>/api-token` on first use, so it survives restarts.
 */
export function resolveApiToken(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  stateDir: string,
): { token: string; source: TokenSource } {
  const found = findApiToken(flag, env, stateDir);
  if (found !== null) return found;
  const path = tokenPath(stateDir);
  const token = randomBytes(24).toString("base64url");
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Whole or not at all: a half-written token file would be refused at every later start.
    replaceFileDurably(path, token + "\n", 0o600);
    chmodSync(path, 0o600);
  } catch (error) {
    throw stateDirError(stateDir, error) ?? error;
  }
  return { token, source: { kind: "file", path, created: true } };
}
