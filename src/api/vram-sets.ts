/**
 * Tensor-parallel sets of sealed shards (src/vram/sets.ts, docs/vram-sharing.md):
 *   GET  /v1/vram/sets/:id                 the set's state, members, set digest and attestation
 *   POST /v1/vram/sets/:id/execute-check   "may I execute now?" for every member at once
 * A set no member of which is held here (or, for an operator, another principal's) is a 404.
 */
import { memberPlace, SET_DIGEST_ALG, type ShardSetView, unknownSet } from "../vram/sets.ts";
import { VRAM_ERRORS } from "./errors.ts";
import type { ApiVram } from "./facade.ts";
import { param, type RouteDoc, type SubApp } from "./router.ts";
import { NO_QUERY, parseQuery } from "./schemas.ts";
import type { Shards } from "./vram-share.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

const SET_FIELDS = "`{set_id, worker_id, total_shards, state: incomplete | ready | failed, ready, missing: [index], " +
  "failed: [{shard_index, shard_id, failure}], stale: [index], max_age_ms, set_digest, set_digest_algorithm, " +
  "members: [{shard_index, shard_id, lease_id, gpu_id, gpu_device, vram_bytes, digest, state, failure?, verified_at, " +
  "full_verified_at}]}`";

const DOCS = {
  get: {
    summary: "A tensor-parallel set: its state, its members on their GPUs, the set digest and its signed attestation",
    description: "`ready` when every index from 0 to total_shards - 1 is sealed and none failed; `set_digest` (null until every " +
      "index is sealed) is SHA-256 over the encoding docs/vram-sharing.md spells out. `stale` lists the members whose last " +
      "full verification is older than --verify-max-age-ms (the set's execute-check verifies them first). Nothing is verified " +
      "by this read.",
    query: NO_QUERY,
    ok: { status: 200, description: `${SET_FIELDS}, with \`attestation\` (null while indexes are missing).` },
    errors: VRAM_ERRORS,
  },
  executeCheck: {
    summary: "May the consumer execute from the whole set now? Yes only when every member is sealed and passes its execute-check",
    description: "Each member gets the shard's execute-check (a verification newer than --verify-max-age-ms, run now where " +
      "needed), side by side. A member that fails is marked FAILED, and the set with it.",
    query: NO_QUERY,
    ok: {
      status: 200,
      description: "`{ok: true, may_execute: true, set_id, total_shards, set_digest, members: [execute-check], max_age_ms}`, or " +
        "`{ok: false, may_execute: false, code: set_incomplete | seal_verification_failed | stale_verification, message, " +
        "retryable, missing, failed, members, max_age_ms}`.",
    },
    errors: VRAM_ERRORS,
  },
} as const satisfies Record<string, RouteDoc>;

/** A set as the API shows it (never a pointer). */
export function setBody(set: ShardSetView) {
  return {
    set_id: set.set_id,
    worker_id: set.worker_id,
    total_shards: set.total_shards,
    state: set.state,
    ready: set.state === "ready",
    missing: set.missing,
    failed: set.failed,
    stale: set.stale,
    max_age_ms: set.max_age_ms,
    set_digest: set.set_digest,
    set_digest_algorithm: SET_DIGEST_ALG,
    members: set.members.map((m) => ({
      ...memberPlace(m),
      state: m.state,
      ...(m.failure !== null && { failure: m.failure }),
      verified_at: iso(m.verified_at),
      full_verified_at: iso(m.full_verified_at),
    })),
  };
}

/** The set `id` the caller may see, or the 404 every unknown set gets. */
export function knownSet(vram: Pick<ApiVram, "set">, id: string): ShardSetView {
  const set = vram.set(id);
  if (set === undefined) throw unknownSet(id);
  return set;
}

/** Adds the set routes to the shard sub-app. */
export function setRoutes(r: SubApp, x: Shards): void {
  r.on("GET", "/v1/vram/sets/:id", DOCS.get, (c) => {
    parseQuery(NO_QUERY, c.req.raw);
    x.store();
    const set = knownSet(x.vram, param(c, "id"));
    return c.json({ ...setBody(set), attestation: x.vram.attestSet(set) });
  });
  r.on("POST", "/v1/vram/sets/:id/execute-check", DOCS.executeCheck, async (c) => {
    parseQuery(NO_QUERY, c.req.raw);
    x.store();
    return c.json(await x.vram.executeCheckSet(param(c, "id")));
  });
}
