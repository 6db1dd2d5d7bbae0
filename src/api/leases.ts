/** `/v1/leases` and `/v1/jobs`: take, renew and release leases; submit and watch jobs, fetch their results. */
import type { Context } from "hono";
import * as v from "valibot";
import { JobDescriptorSchema, MAX_PAYLOAD_BYTES } from "../job/descriptor.ts";
import type { Lease } from "../lease/types.ts";
import { DEFAULT_LEASE_POLICY, withDefaults } from "../lease/policy.ts";
import { base64Length } from "../util/base64.ts";
import { readJson } from "./body.ts";
import { ApiError, JOB_STATUS, LEASE_STATUS, statusesOf, STORAGE_STATUS } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { param, type SubApp, subApp } from "./router.ts";
import { LeaseBody, parseBody, queryText, RenewBody } from "./schemas.ts";
import { jobView, leaseView, leaseViewWithCdi } from "./views.ts";

const JOB_BODY_LIMIT = base64Length(MAX_PAYLOAD_BYTES) + 64 * 1024;
const LEASE_FIELDS = "`{id, gpu_id, mig_uuid?, worker_id, principal?, mem_mb, streams, ttl_s, priority, state, granted_at, " +
  "expires_at, released_reason?, cdi_device?}`: times in ISO 8601; mig_uuid when the lease holds a MIG device (asked for by its " +
  "UUID as gpu_id); principal when a principal of the tokens file took it; cdi_device while the lease is live and the bridge " +
  "keeps a CDI spec.";
const JOB_FIELDS = "`{job, state, detail, lease_id, gpu_id, worker_id, kernel, submitted_at, started_at, finished_at, result, " +
  "output?: {bytes, sha256, href, available}, message, input_shard?: {shard_id, digest, vram_bytes, verified_at, mode, path, access}}`: " +
  "input_shard once the job has read a sealed shard of its lease as operand b (`/shards/<shard_id>` in inputs), with the verification it passed.";
const WRITES = statusesOf(STORAGE_STATUS);
// These two read their query with `c.req.query`, which takes any other parameter silently: the
// schemas describe the parameters they read.
const ListQuery = v.object({
  state: queryText(
    "state",
    "Only the leases in this state (active or released, in any case); ended: the leases that ended, from the audit trail.",
  ),
  since: queryText("since", "With state=ended: only the leases that ended at or after this RFC 3339 time (default: all the trail keeps)."),
});
const ENDED_FIELDS =
  "`{id, gpu_id, worker_id, ended: released|expired, ended_at, reason, source, actor, granted: {at, mem_mb, streams, ttl_s} | null}`";
/** An RFC 3339 date-time with its zone. */
const RFC3339_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
const ReleaseQuery = v.object({ reason: queryText("reason", "Why, as the lease's released_reason (default: released).") });

/** The lease routes, to mount at `/v1/leases`. */
export function leaseRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  const view = leaseViewWithCdi(bridge);
  const lease = (id: string): Lease => {
    const l = bridge.leases.get(id);
    if (l === undefined) throw new ApiError(404, "not_found", `Unknown lease ${JSON.stringify(id)}`, "id");
    return l;
  };

  r.on("GET", "/", {
    summary: "Every known lease, live ones first; or, with state=ended, the leases that ended, from the audit trail",
    query: ListQuery,
    ok: {
      status: 200,
      description: `An array of leases, each ${LEASE_FIELDS}; with state=ended, oldest first, each ${ENDED_FIELDS}, ` +
        "and X-Truncated: true when more ended than one answer holds (ask again from the last ended_at)",
    },
    errors: [422, 503],
  }, (c) => {
    const state = c.req.query("state");
    const since = c.req.query("since");
    if (state?.toLowerCase() === "ended") return endedLeases(since, c);
    if (since !== undefined) throw new ApiError(422, "invalid", "since is read only with state=ended", "since");
    return c.json(bridge.leases.list().filter((l) => state === undefined || l.state === state.toUpperCase()).map(leaseView));
  });
  const endedLeases = (since: string | undefined, c: Context) => {
    const sinceMs = since === undefined ? 0 : RFC3339_TIME.test(since) ? Date.parse(since) : NaN;
    if (Number.isNaN(sinceMs)) {
      throw new ApiError(422, "invalid", `since ${JSON.stringify(since)} is not an RFC 3339 time such as 2026-12-05T12:00:00Z`, "since");
    }
    if (bridge.leaseHistory === undefined) {
      throw new ApiError(503, "unavailable", "This bridge keeps no audit trail, so no lease history", "state");
    }
    const { leases, truncated } = bridge.leaseHistory(sinceMs);
    return c.json(leases, 200, truncated ? { "X-Truncated": "true" } : {});
  };
  r.on("POST", "/", {
    summary: "Takes a lease on a GPU: memory, streams and a time to live for one worker",
    description: "Terms left out are the bridge's defaults (`lease-mem-mb`, `lease-streams`, `lease-ttl-s`); terms over its maxima " +
      "(`max-lease-mem-mb`, `max-lease-streams`, `max-ttl-s`) are refused with 422 naming the field, the value, the limit and the setting.",
    body: { required: true, content: { "application/json": LeaseBody } },
    ok: { status: 201, description: `The lease granted: ${LEASE_FIELDS}`, headers: { Location: "/v1/leases/<id>" } },
    errors: [...statusesOf(LEASE_STATUS), ...WRITES],
  }, async (c) => {
    const body = parseBody(LeaseBody, await readJson(c.req.raw));
    // Terms left out are the bridge's defaults (serve --lease-mem-mb, --lease-streams, --lease-ttl-s).
    const l = bridge.leases.grant(withDefaults(bridge.leases.policy ?? DEFAULT_LEASE_POLICY, body, (term) => `${term} is required`));
    return c.json(view(l), 201, { Location: `/v1/leases/${l.id}` });
  });
  r.on("GET", "/:id", {
    summary: "One lease",
    ok: { status: 200, description: LEASE_FIELDS },
    errors: [404],
  }, (c) => c.json(view(lease(param(c, "id")))));
  r.on("POST", "/:id/renew", {
    summary: "Renews a live lease, for its own time to live or the one given",
    body: { required: false, content: { "application/json": RenewBody } },
    ok: { status: 200, description: `The lease renewed: ${LEASE_FIELDS}` },
    errors: [...statusesOf(LEASE_STATUS), ...WRITES],
  }, async (c) => {
    const l = lease(param(c, "id"));
    const hasBody = (c.req.header("content-length") ?? "0") !== "0" || c.req.header("content-type") !== undefined;
    const body = hasBody ? parseBody(RenewBody, await readJson(c.req.raw)) : {};
    return c.json(view(bridge.leases.renew(l.id, body.ttl_s)));
  });
  r.on("DELETE", "/:id", {
    summary: "Releases a lease: its jobs are cancelled and its shards freed",
    query: ReleaseQuery,
    ok: { status: 200, description: `The lease released: ${LEASE_FIELDS}` },
    errors: [...statusesOf(LEASE_STATUS), ...WRITES],
  }, (c) => {
    const l = lease(param(c, "id"));
    return c.json(view(bridge.leases.release(l.id, c.req.query("reason") ?? "released")));
  });
  r.on("POST", "/:id/jobs", {
    summary: "Submits a job (a kernel launch descriptor with its operands) to run under the lease",
    body: { required: true, content: { "application/json": JobDescriptorSchema } },
    ok: { status: 202, description: `The job, queued: ${JOB_FIELDS}`, headers: { Location: "/v1/jobs/<job>" } },
    errors: [404, ...statusesOf(JOB_STATUS), ...WRITES],
  }, async (c) => {
    const l = lease(param(c, "id"));
    const job = bridge.jobs.submit(l.id, await readJson(c.req.raw, JOB_BODY_LIMIT));
    return c.json(jobView(job), 202, { Location: `/v1/jobs/${job.job}` });
  });
  return r;
}

/** The job routes, to mount at `/v1/jobs`. */
export function jobRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  r.on("GET", "/:job", {
    summary: "One job: its state, and its result's size and digest once it has one",
    ok: { status: 200, description: JOB_FIELDS },
    errors: [404],
  }, (c) => {
    const j = bridge.jobs.get(param(c, "job"));
    if (j === undefined) throw new ApiError(404, "not_found", `Unknown job ${JSON.stringify(param(c, "job"))}`, "job");
    return c.json(jobView(j));
  });
  // The result as the VM expects it at the job's output path: raw little-endian f32.
  r.on("GET", "/:job/result", {
    summary: "A finished job's result, as the VM expects it at the job's output path: raw little-endian f32",
    ok: { status: 200, type: "application/octet-stream", description: "The result's bytes." },
    errors: [404],
  }, (c) => {
    const j = bridge.jobs.get(param(c, "job"));
    if (j === undefined) throw new ApiError(404, "not_found", `Unknown job ${JSON.stringify(param(c, "job"))}`, "job");
    if (j.output === null) {
      const p = bridge.jobs.policy;
      const kept = p === undefined ? "" : ` (results are kept for ${p.resultAgeMs / 1000} s, up to ${p.resultBytes / 1048576} MiB in all)`;
      const why = j.output_bytes !== null ? `its result was freed${kept}` : `it is ${j.state}, with no result`;
      throw new ApiError(404, "not_found", `Job ${j.job} has no result to serve: ${why}`, "job");
    }
    return new Response(j.output as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": "application/octet-stream", "content-length": String(j.output.length) },
    });
  });
  return r;
}
