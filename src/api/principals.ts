/**
 * Who may call which route, with a tokens file (`serve --tokens FILE`, tokens-file.ts).
 *
 * Every route has one rule in ROUTE_RULES, the least role that may call it: `public` (no token),
 * `reader` (every read and the event stream), `operator` (leases, jobs, shards and telemetry, for
 * the worker ids its patterns allow) or `admin` (everything). A route with no rule is admin-only,
 * so a new route is closed until someone decides; test/api/roles.test.ts fails on it too.
 *
 * The principals are held by a `PrincipalGuard`, which a SIGHUP reloads: the new table replaces
 * the old only once it has parsed whole, so a bad edit keeps the bridge on the old one. Tokens
 * are compared as SHA-256 digests in constant time, against every principal (no early exit).
 *
 * The principal of the request being answered travels in an AsyncLocalStorage (`runAs`), so the
 * scoped façade (scope.ts) can ask who is calling without every route passing it down.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { createHash, timingSafeEqual } from "node:crypto";
import type { ChangeRecord } from "../changes/record.ts";
import type { Logger } from "../util/log.ts";
import { bearerToken, unauthorized } from "./auth.ts";
import { ApiError } from "./errors.ts";
import { type Principal, readTokensFile, type Role, ROLES, workerMatches } from "./tokens-file.ts";

/** The least role a route needs; `public` needs no token at all. */
export type RouteRule = "public" | Role;

/**
 * The rule of every route, by `METHOD /path` as the route table (app.ts apiRoutes) spells it.
 * Resource routes are further scoped for operators (scope.ts): another principal's lease, job or
 * shard answers 404, and a worker id outside the patterns 403.
 */
export const ROUTE_RULES: Readonly<Record<string, RouteRule>> = {
  "GET /healthz": "public",
  "GET /v1/bridge": "reader",
  "GET /v1/snapshot": "reader",
  "GET /metrics": "reader",
  "GET /v1/gpus": "reader",
  "GET /v1/gpus/:id": "reader",
  "GET /v1/gpus/:id/info": "reader",
  "GET /v1/gpus/:id/ctl": "reader",
  "GET /v1/gpus/:id/lease": "reader",
  "GET /v1/gpus/:id/status": "reader",
  // A control line can take, release or reset any worker's lease on the GPU.
  "POST /v1/gpus/:id/ctl": "admin",
  "GET /v1/leases": "reader",
  "POST /v1/leases": "operator",
  "GET /v1/leases/:id": "reader",
  "POST /v1/leases/:id/renew": "operator",
  "DELETE /v1/leases/:id": "operator",
  "POST /v1/leases/:id/jobs": "operator",
  "GET /v1/jobs/:job": "reader",
  "GET /v1/jobs/:job/result": "reader",
  "GET /v1/models": "reader",
  "PUT /v1/models/active": "admin",
  "PUT /v1/models/:id/approval": "admin",
  "POST /v1/telemetry": "operator",
  "GET /v1/telemetry": "reader",
  "POST /v1/leases/:id/shards": "operator",
  "GET /v1/shards": "reader",
  "GET /v1/shards/:id": "reader",
  "DELETE /v1/shards/:id": "operator",
  "POST /v1/shards/:id/verify": "operator",
  "POST /v1/shards/:id/execute-check": "operator",
  "GET /v1/leases/:id/ready": "reader",
  "GET /v1/leases/:id/share": "reader",
  "GET /v1/shards/:id/attestation": "reader",
  "GET /v1/vram/sets/:id": "reader",
  "POST /v1/vram/sets/:id/execute-check": "operator",
  "GET /v1/gpus/:id/vram": "reader",
  "GET /v1/vram/plan": "reader",
  "GET /v1/cdi": "reader",
  "GET /v1/events": "reader",
  "GET /v1/principals/me": "reader",
  // The settings hold paths and choices an operator has no need of; secrets are masked anyway.
  "GET /v1/config": "admin",
  "GET /v1/openapi.json": "reader",
};

/** The rule of `METHOD path`; admin when the table has none. */
export const ruleOf = (method: string, path: string): RouteRule => ROUTE_RULES[`${method} ${path}`] ?? "admin";

const rank = (r: Role) => ROLES.indexOf(r);

/** Whether `p` may call a route of `rule` at all (scoping of its resources aside). */
export function allowed(p: Principal, rule: RouteRule): boolean {
  return rule === "public" || rank(p.role) >= rank(rule);
}

/** The 403 for a principal whose role is short of `rule`, saying which role it needs. */
export function roleRefusal(p: Principal, rule: Role, route: string): ApiError {
  return new ApiError(
    403,
    "forbidden",
    `${route} needs the ${rule} role${rule === "admin" ? "" : " or admin"}; principal "${p.name}" is ${
      p.role === "reader" ? "a" : "an"
    } ${p.role}`,
    "role",
  );
}

/** Whether an operator's patterns allow `workerId` (readers never act; admins act for all). */
export function mayActFor(p: Principal, workerId: string): boolean {
  return p.role === "admin" || (p.role === "operator" && p.workers.some((w) => workerMatches(w, workerId)));
}

/** The 403 for a worker id outside an operator's patterns, naming them. */
export function workerRefusal(p: Principal, workerId: string): ApiError {
  return new ApiError(
    403,
    "forbidden",
    `Principal "${p.name}" may not act for worker ${JSON.stringify(workerId)}: its worker patterns are ${
      p.workers.map((w) => JSON.stringify(w)).join(", ")
    }`,
    "worker_id",
  );
}

const current = new AsyncLocalStorage<Principal>();

/** Runs `fn` as a request of `p` (see `currentPrincipal`). */
export const runAs = <T>(p: Principal, fn: () => T): T => current.run(p, fn);
/** The principal of the request being answered; undefined outside one (or without a tokens file). */
export const currentPrincipal = (): Principal | undefined => current.getStore();

/** What a reload did. */
export type ReloadResult =
  | { readonly ok: true; readonly principals: number; readonly added: string[]; readonly removed: string[]; readonly changed: string[] }
  | { readonly ok: false; readonly error: string };

/** The principals of a tokens file, reloadable. */
export class PrincipalGuard {
  readonly path: string;
  #principals: readonly Principal[];

  /** Reads `path` (throws TokensFileError when it cannot be used). */
  constructor(path: string, principals: readonly Principal[] = readTokensFile(path)) {
    this.path = path;
    this.#principals = principals;
  }

  /** The principals now. */
  get principals(): readonly Principal[] {
    return this.#principals;
  }

  /** The principal named `name` now. */
  byName(name: string): Principal | undefined {
    return this.#principals.find((p) => p.name === name);
  }

  /** The principal whose token `Authorization: Bearer <token>` carries, or null. */
  authenticate(header: string | null | undefined): Principal | null {
    const token = bearerToken(header ?? undefined);
    const given = createHash("sha256").update(token ?? "").digest();
    let found: Principal | null = null;
    // Every principal is compared, whatever matched before: the time says nothing of which.
    for (const p of this.#principals) {
      if (timingSafeEqual(given, p.hash) && found === null) found = p;
    }
    return token === null ? null : found;
  }

  /** Reads the file again; the new principals replace the old only if all of it is good. */
  reload(): ReloadResult {
    let next: Principal[];
    try {
      next = readTokensFile(this.path);
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
    const was = new Map(this.#principals.map((p) => [p.name, p]));
    const now = new Map(next.map((p) => [p.name, p]));
    const added = [...now.keys()].filter((n) => !was.has(n));
    const removed = [...was.keys()].filter((n) => !now.has(n));
    const changed = [...now.values()].filter((p) => {
      const o = was.get(p.name);
      return o !== undefined &&
        JSON.stringify({ ...o, hash: o.hash.toString("hex") }) !== JSON.stringify({ ...p, hash: p.hash.toString("hex") });
    }).map((p) => p.name);
    this.#principals = next;
    return { ok: true, principals: next.length, added, removed, changed };
  }
}

/**
 * The principal of a request to a route of `rule` (not `public`): refused with 401 without a
 * token of the file, with 403 naming the role when the principal's is short of it.
 */
export function admit(guard: PrincipalGuard, rule: Role, route: string, req: Request): Principal {
  const p = guard.authenticate(req.headers.get("authorization"));
  if (p === null) throw unauthorized("a token of the bridge's tokens file");
  if (!allowed(p, rule)) throw roleRefusal(p, rule, route);
  return p;
}

/**
 * Reloads the guard's file (on SIGHUP), logs what changed or why the old principals stay, and
 * records it as a `tokens.reloaded` change (names only: the file holds no token).
 */
export function reloadPrincipals(guard: PrincipalGuard, record: ChangeRecord, log: Logger): ReloadResult {
  const r = guard.reload();
  if (r.ok) {
    const names = (what: string, xs: string[]) => (xs.length > 0 ? `; ${what} ${xs.join(", ")}` : "");
    log.info(
      `reloaded ${guard.path}: ${r.principals} principals${names("added", r.added)}${names("removed", r.removed)}${
        names("changed", r.changed)
      }`,
    );
    record.append({
      type: "tokens.reloaded",
      source: "daemon",
      outcome: "ok",
      data: { file: guard.path, principals: r.principals, added: r.added, removed: r.removed, changed: r.changed },
    });
  } else {
    log.error(`NOT reloaded, still serving the ${guard.principals.length} principals loaded before: ${r.error}`);
    record.append({
      type: "tokens.reloaded",
      source: "daemon",
      outcome: "refused",
      severity: "warning",
      data: { file: guard.path, principals: guard.principals.length, error: r.error },
    });
  }
  return r;
}
