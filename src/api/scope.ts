/**
 * The bridge as one principal may see and change it (with a tokens file): a façade over the
 * bridge's façade that the routes call unchanged.
 *
 * - An operator sees only its own leases, and the jobs and shards on them: a lease is its own
 *   when its worker id matches the operator's patterns and no other principal took it. Anything
 *   else answers as unknown (404), so ids do not leak; its event stream leaves out the changes
 *   of leases it cannot see.
 * - A lease taken for a worker id outside the patterns is refused (403, naming them).
 * - Quotas (tokens-file.ts QUOTAS) are checked before the change, against what the principal
 *   holds now: its live leases, their memory and GPUs, the VRAM sealed on them (and being
 *   sealed), its unfinished jobs. A refusal is a 429 naming the quota, the use and the limit.
 *
 * Who took a lease is kept on the lease (`principal`), and so in the lease journal: after a
 * restart a restored lease is still its principal's, seen by it alone and counted in its quotas.
 * A lease taken without a principal (the VM's, Kubernetes', or one journalled before principals
 * were kept) belongs to no principal: every operator whose patterns match its worker id sees it,
 * and it counts against nobody's quota.
 */
import type { Lease } from "../lease/types.ts";
import { unknownSet } from "../vram/sets.ts";
import { unknownShard, VramError } from "../vram/shards.ts";
import { ApiError } from "./errors.ts";
import type { ApiPrincipals, ApiShardStore, BridgeFacade, PrincipalView } from "./facade.ts";
import { currentPrincipal, mayActFor, type PrincipalGuard, workerRefusal } from "./principals.ts";
import { type Principal, type QuotaName, QUOTAS } from "./tokens-file.ts";

/** What a principal holds now, quota by quota. */
export type Usage = Record<QuotaName, number>;

/** `bridge` scoped to the calling principal (`currentPrincipal`), and the principal routes' view. */
export function scopedFacade(bridge: BridgeFacade, guard: PrincipalGuard): BridgeFacade & { readonly principals: ApiPrincipals } {
  /** Principal to the ids of its jobs not known finished. */
  const jobsOf = new Map<string, Set<string>>();
  /** Principal to the bytes of its seals in progress. */
  const sealing = new Map<string, number>();

  const ownedBy = (p: Principal, l: Lease) => (l.principal ?? p.name) === p.name;
  /** Whether the caller may see `lease` (everyone but an operator sees all). */
  const sees = (lease: Lease | undefined, p = currentPrincipal()): boolean =>
    lease !== undefined && (p?.role !== "operator" || (mayActFor(p, lease.worker_id) && ownedBy(p, lease)));
  const leaseOf = (id: string) => bridge.leases.get(id);

  function usage(p: Principal): Usage {
    const live = bridge.leases.live().filter((l) => l.principal === p.name);
    const store = bridge.vram?.store ?? null;
    let sealed = sealing.get(p.name) ?? 0;
    if (store !== null) { for (const l of live) for (const s of store.list(l.id)) sealed += s.vram_bytes; }
    const jobs = jobsOf.get(p.name);
    for (const id of jobs ?? []) {
      const state = bridge.jobs.get(id)?.state;
      if (state !== "QUEUED" && state !== "RUNNING") jobs!.delete(id);
    }
    return {
      leases: live.length,
      mem_mb: live.reduce((n, l) => n + l.mem_mb, 0),
      gpus: new Set(live.map((l) => l.gpu_id)).size,
      sealed_bytes: sealed,
      queued_jobs: jobs?.size ?? 0,
    };
  }

  /** Refuses (429) when `more` on top of `use` passes the principal's quota `name`. */
  function checkQuota(p: Principal, name: QuotaName, use: number, more: number): void {
    const limit = p.quotas[name];
    if (limit === undefined || use + more <= limit) return;
    throw new ApiError(
      429,
      "quota_exceeded",
      `Quota ${name} of principal "${p.name}" is reached: ${use} ${QUOTAS[name]} in use, ${more} more asked for, limit ${limit}`,
      name,
    );
  }

  const store = bridge.vram?.store ?? null;
  const scopedStore: ApiShardStore | null = store === null ? null : {
    backend: store.backend,
    leaseRoom: (lease) => store.leaseRoom(lease),
    usedBytes: (ordinal) => store.usedBytes(ordinal),
    shareRefusal: (id) => store.shareRefusal(visibleShard(id)),
    get: (id) => {
      const s = store.get(id);
      return s !== undefined && sees(leaseOf(s.lease_id)) ? s : undefined;
    },
    list: (leaseId) => store.list(leaseId).filter((s) => sees(leaseOf(s.lease_id))),
    release: (id, reason) => store.release(visibleShard(id), reason),
    verify: (id, mode, k, path) => store.verify(visibleShard(id), mode, k, path),
    seal: async (leaseId, source, opts) => {
      const p = currentPrincipal();
      if (p === undefined) return store.seal(leaseId, source, opts);
      let bytes = 0;
      try {
        if (!sees(leaseOf(leaseId), p)) throw new VramError("not_found", `Unknown lease ${JSON.stringify(leaseId)}`, "id");
        checkQuota(p, "sealed_bytes", usage(p).sealed_bytes, source.length);
        if (opts.set_id !== undefined) ownSet(opts.set_id, p);
        bytes = source.length;
        sealing.set(p.name, (sealing.get(p.name) ?? 0) + bytes);
      } catch (error) {
        await source.close?.().catch(() => {});
        throw error;
      }
      let sealed: Awaited<ReturnType<typeof store.seal>>;
      try {
        sealed = await store.seal(leaseId, source, opts);
      } finally {
        sealing.set(p.name, (sealing.get(p.name) ?? 0) - bytes);
      }
      if (opts.set_id !== undefined) {
        try {
          ownSet(opts.set_id, p); // another principal's member may have been sealed meanwhile
        } catch (error) {
          if (sealed.created) store.release(sealed.shard.shard_id, "its set belongs to another principal");
          throw error;
        }
      }
      return sealed;
    },
  };
  /** Whether the caller may see every member of a set (a set has one holder: seal checks it). */
  const seesSet = (members: readonly { lease_id: string }[], p = currentPrincipal()) => members.every((m) => sees(leaseOf(m.lease_id), p));
  /** Refuses a seal into a set that has members `p` may not see (409: set ids are one namespace, as shard ids are). */
  function ownSet(setId: string, p: Principal): void {
    const set = bridge.vram?.set(setId);
    if (set === undefined || seesSet(set.members, p)) return;
    throw new VramError(
      "conflict",
      `Cannot seal into set ${JSON.stringify(setId)}: that set_id is taken by another principal's shards; pick another set_id`,
      "set_id",
    );
  }
  /** The set `id` if the caller may see it (else the 404 of an unknown set). */
  const visibleSet = (id: string) => {
    const set = bridge.vram?.set(id);
    return set !== undefined && seesSet(set.members) ? set : undefined;
  };

  /** `id` if the caller may see that shard; else the store's own not-found. */
  function visibleShard(id: string): string {
    const s = store?.get(id);
    if (s !== undefined && !sees(leaseOf(s.lease_id))) throw unknownShard(id);
    return id;
  }

  const hub = bridge.events;
  return {
    ...bridge,
    leases: {
      ...bridge.leases,
      list: () => bridge.leases.list().filter((l) => sees(l)),
      get: (id) => {
        const l = bridge.leases.get(id);
        return sees(l) ? l : undefined;
      },
      grant: (req) => {
        const p = currentPrincipal();
        if (p === undefined) return bridge.leases.grant(req);
        if (!mayActFor(p, req.worker_id)) throw workerRefusal(p, req.worker_id);
        const u = usage(p);
        checkQuota(p, "leases", u.leases, 1);
        checkQuota(p, "mem_mb", u.mem_mb, req.mem_mb);
        const onGpu = bridge.leases.live(req.gpu_id).some((l) => l.principal === p.name);
        checkQuota(p, "gpus", u.gpus, onGpu ? 0 : 1);
        return bridge.leases.grant({ ...req, principal: p.name });
      },
    },
    jobs: {
      ...bridge.jobs,
      get: (job) => {
        const j = bridge.jobs.get(job);
        return j !== undefined && sees(leaseOf(j.lease_id)) ? j : undefined;
      },
      submit: (leaseId, descriptor) => {
        const p = currentPrincipal();
        if (p === undefined) return bridge.jobs.submit(leaseId, descriptor);
        checkQuota(p, "queued_jobs", usage(p).queued_jobs, 1);
        const j = bridge.jobs.submit(leaseId, descriptor);
        let mine = jobsOf.get(p.name);
        if (mine === undefined) jobsOf.set(p.name, mine = new Set());
        mine.add(j.job);
        return j;
      },
    },
    ...(bridge.vram !== undefined &&
      {
        vram: {
          ...bridge.vram,
          store: scopedStore,
          // Another principal's shard is not there for this one (404, as for every shard route).
          executeCheck: (id: string) => bridge.vram!.executeCheck(visibleShard(id)),
          set: visibleSet,
          executeCheckSet: (id: string) => {
            if (visibleSet(id) === undefined) throw unknownSet(id);
            return bridge.vram!.executeCheckSet(id);
          },
        },
      }),
    ...(hub !== undefined && {
      events: {
        get clients() {
          return hub.clients;
        },
        get dropped() {
          return hub.dropped;
        },
        counts: () => hub.counts(),
        open: (filter, after) => {
          const p = currentPrincipal();
          if (p?.role !== "operator") return hub.open(filter, after);
          // Read when each change comes, not now: a lease taken later is seen once it is the caller's.
          return hub.open(
            { ...filter, visible: (c) => c.lease_id === undefined || sees(leaseOf(c.lease_id), guard.byName(p.name) ?? p) },
            after,
          );
        },
      },
    }),
    principals: {
      me: () => {
        const p = currentPrincipal();
        if (p === undefined) throw new ApiError(401, "unauthorized", "This route needs 'Authorization: Bearer <token>'");
        const u = usage(p);
        const quotas = Object.fromEntries(
          (Object.keys(QUOTAS) as QuotaName[]).map((k) => [k, { use: u[k], limit: p.quotas[k] ?? null, what: QUOTAS[k] }]),
        ) as PrincipalView["quotas"];
        return { name: p.name, role: p.role, workers: p.workers, quotas };
      },
    },
  };
}
