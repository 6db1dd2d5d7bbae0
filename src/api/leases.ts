/** `/v1/leases` and `/v1/jobs`: take, renew and release leases; submit and watch jobs, fetch their results. */
import { MAX_PAYLOAD_BYTES } from "../job/descriptor.ts";
import type { Lease } from "../lease/types.ts";
import { base64Length } from "../util/base64.ts";
import { readJson } from "./body.ts";
import { ApiError } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { param, type SubApp, subApp } from "./router.ts";
import { LeaseBody, parseBody, RenewBody } from "./schemas.ts";
import { jobView, leaseView, leaseViewWithCdi } from "./views.ts";

const JOB_BODY_LIMIT = base64Length(MAX_PAYLOAD_BYTES) + 64 * 1024;

/** The lease routes, to mount at `/v1/leases`. */
export function leaseRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  const view = leaseViewWithCdi(bridge);
  const lease = (id: string): Lease => {
    const l = bridge.leases.get(id);
    if (l === undefined) throw new ApiError(404, "not_found", `Unknown lease ${JSON.stringify(id)}`, "id");
    return l;
  };

  r.on("GET", "/", (c) => {
    const state = c.req.query("state");
    return c.json(bridge.leases.list().filter((l) => state === undefined || l.state === state.toUpperCase()).map(leaseView));
  });
  r.on("POST", "/", async (c) => {
    const body = parseBody(LeaseBody, await readJson(c.req.raw));
    const l = bridge.leases.grant(body);
    return c.json(view(l), 201, { Location: `/v1/leases/${l.id}` });
  });
  r.on("GET", "/:id", (c) => c.json(view(lease(param(c, "id")))));
  r.on("POST", "/:id/renew", async (c) => {
    const l = lease(param(c, "id"));
    const hasBody = (c.req.header("content-length") ?? "0") !== "0" || c.req.header("content-type") !== undefined;
    const body = hasBody ? parseBody(RenewBody, await readJson(c.req.raw)) : {};
    return c.json(view(bridge.leases.renew(l.id, body.ttl_s)));
  });
  r.on("DELETE", "/:id", (c) => {
    const l = lease(param(c, "id"));
    return c.json(view(bridge.leases.release(l.id, c.req.query("reason") ?? "released")));
  });
  r.on("POST", "/:id/jobs", async (c) => {
    const l = lease(param(c, "id"));
    const job = bridge.jobs.submit(l.id, await readJson(c.req.raw, JOB_BODY_LIMIT));
    return c.json(jobView(job), 202, { Location: `/v1/jobs/${job.job}` });
  });
  return r;
}

/** The job routes, to mount at `/v1/jobs`. */
export function jobRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  r.on("GET", "/:job", (c) => {
    const j = bridge.jobs.get(param(c, "job"));
    if (j === undefined) throw new ApiError(404, "not_found", `Unknown job ${JSON.stringify(param(c, "job"))}`, "job");
    return c.json(jobView(j));
  });
  // The result as the VM expects it at the job's output path: raw little-endian f32.
  r.on("GET", "/:job/result", (c) => {
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
