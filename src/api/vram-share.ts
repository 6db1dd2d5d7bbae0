/**
 * The routes a consumer of sealed shards uses beside the seal (docs/vram-sharing.md):
 *   GET  /v1/leases/:id/share          the lease's socket, its share token and who holds which shard
 *   GET  /v1/leases/:id/ready          the sealed handles; ready is false if any failed; the sets they belong to
 *   POST /v1/shards/:id/execute-check  "may I execute now?", after a fresh enough verification
 */
import { type Shard, unknownShard, VramError } from "../vram/shards.ts";
import { SHARE_MOUNT } from "../vram/share.ts";
import { VRAM_ERRORS } from "./errors.ts";
import type { ApiShardStore, ApiVram, BridgeFacade } from "./facade.ts";
import { param, type RouteDoc, type SubApp } from "./router.ts";
import { NO_QUERY, parseQuery } from "./schemas.ts";

/** What every shard handler reaches: the façade, the shard part of it, and the store when there is one. */
export interface Shards {
  readonly bridge: BridgeFacade;
  readonly vram: NonNullable<BridgeFacade["vram"]>;
  /** The store, or a 503 saying why this bridge has none. */
  store(): ApiShardStore;
  view(s: Shard): Record<string, unknown>;
}

const DOCS = {
  share: {
    summary: "Where the lease's holder gets its shards' memory: the Unix socket, the share token's file and each shard's consumers",
    description: "The socket hands out a file descriptor of a shard's memory, to be mapped read-only (clients/python/). " +
      "In a container the lease's CDI device mounts the socket and the token at `socket_in_container` and `token_in_container`.",
    query: NO_QUERY,
    ok: {
      status: 200,
      description: "`{lease_id, available, reason?, socket, token_file, socket_in_container, token_in_container, " +
        "shards: [{shard_id, shareable, shareable_reason?, consumers: [{pid, uid, at, running}]}]}`.",
    },
    errors: VRAM_ERRORS,
  },
  ready: {
    summary: "The lease's sealed handles, and whether it is ready: every shard SEALED (false if any failed, or none is sealed)",
    description: "`ready` speaks for this lease's own shards. The tensor-parallel sets they are members of are listed in `sets` " +
      "with their own state: a set with members in other leases is ready only when all of them are (GET /v1/vram/sets/{id}).",
    query: NO_QUERY,
    ok: {
      status: 200,
      description: "`{lease_id, ready, shards: [{shard_id, state, digest, vram_bytes, gpu_device, verified_at, failure?, set_id?, " +
        "shard_index?, total_shards?}], failed: [shard_id], sets: [{set_id, state, ready, total_shards, missing, failed, set_digest}]}`.",
    },
    errors: VRAM_ERRORS,
  },
  executeCheck: {
    summary: "May the consumer execute from this shard now? Yes only after a verification newer than --verify-max-age-ms",
    description: "Under the full gate a verification older than that is run now; under the sampled gate k leaves are rehashed " +
      "now and the last full verification must be fresh. A failure marks the shard FAILED and revokes its hand-outs. " +
      "An id that is not there (or is another principal's) is a 404 not_sealed, as on every shard route.",
    query: NO_QUERY,
    ok: {
      status: 200,
      description: "`{ok: true, may_execute: true, mode, verified_now, leaves_checked, full_verified_at, age_ms, max_age_ms}`, or " +
        "`{ok: false, may_execute: false, code: not_sealed | seal_verification_failed | stale_verification, message, retryable}`.",
    },
    errors: VRAM_ERRORS,
  },
} as const satisfies Record<string, RouteDoc>;

/** A shard's `shareable` and, when false, `shareable_reason`: the memory's own, or the bridge's lack of sharing. */
export function shareability(vram: ApiVram, s: Shard): { shareable: boolean; shareable_reason?: string } {
  const held = vram.store?.get(s.shard_id) === s;
  const why = !held
    ? "the shard is released"
    : vram.share === null
    ? "sharing is unavailable on this bridge"
    : vram.share.unavailable ?? vram.store?.shareRefusal(s.shard_id);
  return why === null || why === undefined ? { shareable: true } : { shareable: false, shareable_reason: why };
}

/** Adds the consumer routes to the shard sub-app. */
export function shareRoutes(r: SubApp, x: Shards): void {
  r.on("GET", "/v1/leases/:id/share", DOCS.share, (c) => {
    parseQuery(NO_QUERY, c.req.raw);
    const lease = liveLease(x, param(c, "id"));
    const share = x.vram.share;
    const paths = share?.paths(lease.id);
    return c.json({
      lease_id: lease.id,
      available: share !== null && share.unavailable === null,
      ...(share?.unavailable !== null && { reason: share?.unavailable ?? "sharing is unavailable on this bridge" }),
      socket: paths?.socket ?? null,
      // Never the token itself: GETs need no bearer token. The file is the bridge user's alone (0600).
      token_file: paths?.token ?? null,
      socket_in_container: SHARE_MOUNT.socket,
      token_in_container: SHARE_MOUNT.token,
      shards: x.store().list(lease.id).map((s) => ({
        shard_id: s.shard_id,
        ...shareability(x.vram, s),
        consumers: share?.consumers(s.shard_id).map((k) => ({ ...k, at: new Date(k.at).toISOString() })) ?? [],
      })),
    });
  });
  r.on("GET", "/v1/leases/:id/ready", DOCS.ready, (c) => {
    parseQuery(NO_QUERY, c.req.raw);
    const lease = liveLease(x, param(c, "id"));
    const shards = x.store().list(lease.id);
    const failed = shards.filter((s) => s.state !== "SEALED").map((s) => s.shard_id);
    return c.json({
      lease_id: lease.id,
      ready: shards.length > 0 && failed.length === 0,
      shards: shards.map((s) => ({
        shard_id: s.shard_id,
        state: s.state,
        digest: s.digest,
        vram_bytes: s.vram_bytes,
        gpu_device: s.gpu_device,
        verified_at: s.verified_at === null ? null : new Date(s.verified_at).toISOString(),
        ...(s.failure !== null && { failure: s.failure }),
        ...(s.set_id !== undefined && { set_id: s.set_id, shard_index: s.shard_index, total_shards: s.total_shards }),
      })),
      failed,
      sets: [...new Set(shards.flatMap((s) => s.set_id ?? []))].flatMap((id) => {
        const set = x.vram.set(id);
        return set === undefined ? [] : [{
          set_id: id,
          state: set.state,
          ready: set.state === "ready",
          total_shards: set.total_shards,
          missing: set.missing,
          failed: set.failed.map((f) => f.shard_index),
          set_digest: set.set_digest,
        }];
      }),
    });
  });
  r.on("POST", "/v1/shards/:id/execute-check", DOCS.executeCheck, async (c) => {
    parseQuery(NO_QUERY, c.req.raw);
    const id = param(c, "id");
    // Unknown here answers as every shard route does (404), so another principal's id is no different.
    if (x.store().get(id) === undefined) throw unknownShard(id);
    return c.json(await x.vram.executeCheck(id));
  });
}

function liveLease(x: Shards, id: string) {
  const lease = x.bridge.leases.get(id);
  if (lease?.state !== "ACTIVE") throw new VramError("not_found", `Unknown or ended lease ${JSON.stringify(id)}`, "id");
  return lease;
}
