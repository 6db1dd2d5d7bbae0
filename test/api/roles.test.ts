/**
 * Every route of the API against every kind of caller, with a tokens file: no token, a reader,
 * an operator on its own lease (and the job and shard on it), an operator on another's, and an
 * admin. The routes come from the app's own route table, so a route added without a row here
 * (or without a rule in ROUTE_RULES) fails the first test.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { apiRoutes, createApp } from "../../src/api/app.ts";
import { PrincipalGuard, ROUTE_RULES } from "../../src/api/principals.ts";
import { addPrincipal } from "../../src/api/tokens-file.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { maskedSettings } from "../../src/app/daemon.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { record } from "../telemetry/helpers.ts";
import { memoryLogger, tempDir, until } from "../helpers.ts";
import { vaddJob } from "./tenancy-helpers.ts";

type Who = "none" | "reader" | "own" | "other" | "admin";
const WHO: readonly Who[] = ["none", "reader", "own", "other", "admin"];

/** What a cell's request needs made first, owned by operator op-a (worker a-1). */
interface Fixture {
  lease: string;
  job: string;
  shard: string;
  /** The set the shard is the one member of (`needs: "set"`). */
  set: string;
}
interface Row {
  /** The request, given the fixture and who asks. */
  readonly req: (f: Fixture, who: Who) => { path: string; body?: string | Uint8Array; type?: string };
  /** Status per caller: none, reader, operator-own, operator-other, admin. */
  readonly expect: readonly [number, number, number, number, number];
  /** What the fixture needs: a job, a finished job, a shard, a shard that is a set of one. */
  readonly needs?: "job" | "shard" | "set";
}

const READ = [401, 200, 200, 200, 200] as const;
const OWNED_READ = [401, 200, 200, 404, 200] as const;
const OWNED_WRITE = [401, 403, 200, 404, 200] as const;
const ADMIN_ONLY = [401, 403, 403, 403, 200] as const;
const json = (body: unknown) => ({ body: JSON.stringify(body), type: "application/json" });
/** A worker id the caller may lease for: op-b asks for one of op-a's, outside its patterns. */
const worker = (who: Who) => (who === "other" ? "a-9" : who === "admin" ? "root-1" : "a-2");
const jobBody = (id: string) => ({ body: vaddJob(id), type: "application/json" });
let jobs = 0;

/** Every route, by `METHOD /path` as apiRoutes spells it. */
const ROWS: Readonly<Record<string, Row>> = {
  "GET /healthz": { req: () => ({ path: "/healthz" }), expect: [200, 200, 200, 200, 200] },
  "GET /v1/bridge": { req: () => ({ path: "/v1/bridge" }), expect: READ },
  "GET /v1/snapshot": { req: () => ({ path: "/v1/snapshot" }), expect: READ },
  "GET /metrics": { req: () => ({ path: "/metrics" }), expect: READ },
  "GET /v1/gpus": { req: () => ({ path: "/v1/gpus" }), expect: READ },
  "GET /v1/gpus/:id": { req: () => ({ path: "/v1/gpus/GPU-0" }), expect: READ },
  "GET /v1/gpus/:id/info": { req: () => ({ path: "/v1/gpus/GPU-0/info" }), expect: READ },
  "GET /v1/gpus/:id/ctl": { req: () => ({ path: "/v1/gpus/GPU-0/ctl" }), expect: READ },
  "GET /v1/gpus/:id/lease": { req: () => ({ path: "/v1/gpus/GPU-0/lease" }), expect: READ },
  "GET /v1/gpus/:id/status": { req: () => ({ path: "/v1/gpus/GPU-0/status" }), expect: READ },
  "POST /v1/gpus/:id/ctl": {
    req: () => ({ path: "/v1/gpus/GPU-1/ctl", body: "LEASE ctl-1 mem=16 streams=1 priority=1 ttl=60\n", type: "text/plain" }),
    expect: ADMIN_ONLY,
  },
  "GET /v1/leases": { req: () => ({ path: "/v1/leases" }), expect: READ },
  "POST /v1/leases": {
    req: (_f, who) => ({
      path: "/v1/leases",
      ...json({ gpu_id: "GPU-0", worker_id: worker(who), mem_mb: 16, streams: 1, ttl_s: 60, priority: 1 }),
    }),
    expect: [401, 403, 201, 403, 201],
  },
  "GET /v1/leases/:id": { req: (f) => ({ path: `/v1/leases/${f.lease}` }), expect: OWNED_READ },
  "POST /v1/leases/:id/renew": { req: (f) => ({ path: `/v1/leases/${f.lease}/renew` }), expect: OWNED_WRITE },
  "DELETE /v1/leases/:id": { req: (f) => ({ path: `/v1/leases/${f.lease}` }), expect: OWNED_WRITE },
  "POST /v1/leases/:id/jobs": {
    req: (f) => ({ path: `/v1/leases/${f.lease}/jobs`, ...jobBody(`cell-${++jobs}`) }),
    expect: [401, 403, 202, 404, 202],
  },
  "GET /v1/jobs/:job": { req: (f) => ({ path: `/v1/jobs/${f.job}` }), expect: OWNED_READ, needs: "job" },
  "GET /v1/jobs/:job/result": { req: (f) => ({ path: `/v1/jobs/${f.job}/result` }), expect: OWNED_READ, needs: "job" },
  "GET /v1/models": { req: () => ({ path: "/v1/models" }), expect: READ },
  // The admin passes the role check; the built-in catalog then refuses the switch (409).
  "PUT /v1/models/active": {
    req: () => ({ path: "/v1/models/active", ...json({ model_id: "vision-base-v1" }) }),
    expect: [401, 403, 403, 403, 409],
  },
  "PUT /v1/models/:id/approval": {
    req: () => ({ path: "/v1/models/vision-base-v1/approval", ...json({ status: "approved", reason: "reviewed" }) }),
    expect: [401, 403, 403, 403, 409],
  },
  // Telemetry records name no worker: any operator may post them.
  "POST /v1/telemetry": {
    req: () => ({ path: "/v1/telemetry", ...json(record(1, { model_id: "vision-base-v1" })) }),
    expect: [401, 403, 202, 202, 202],
  },
  "GET /v1/telemetry": { req: () => ({ path: "/v1/telemetry" }), expect: READ },
  "POST /v1/leases/:id/shards": {
    req: (f) => ({ path: `/v1/leases/${f.lease}/shards`, body: new Uint8Array(4096).fill(7), type: "application/octet-stream" }),
    expect: [401, 403, 201, 404, 201],
  },
  "GET /v1/shards": { req: () => ({ path: "/v1/shards" }), expect: READ },
  "GET /v1/shards/:id": { req: (f) => ({ path: `/v1/shards/${f.shard}` }), expect: OWNED_READ, needs: "shard" },
  "DELETE /v1/shards/:id": { req: (f) => ({ path: `/v1/shards/${f.shard}` }), expect: OWNED_WRITE, needs: "shard" },
  "POST /v1/shards/:id/verify": { req: (f) => ({ path: `/v1/shards/${f.shard}/verify` }), expect: OWNED_WRITE, needs: "shard" },
  "POST /v1/shards/:id/execute-check": {
    req: (f) => ({ path: `/v1/shards/${f.shard}/execute-check` }),
    expect: OWNED_WRITE,
    needs: "shard",
  },
  "GET /v1/leases/:id/ready": { req: (f) => ({ path: `/v1/leases/${f.lease}/ready` }), expect: OWNED_READ },
  "GET /v1/leases/:id/share": { req: (f) => ({ path: `/v1/leases/${f.lease}/share` }), expect: OWNED_READ },
  "GET /v1/shards/:id/attestation": { req: (f) => ({ path: `/v1/shards/${f.shard}/attestation` }), expect: OWNED_READ, needs: "shard" },
  "GET /v1/vram/sets/:id": { req: (f) => ({ path: `/v1/vram/sets/${f.set}` }), expect: OWNED_READ, needs: "set" },
  "POST /v1/vram/sets/:id/execute-check": {
    req: (f) => ({ path: `/v1/vram/sets/${f.set}/execute-check` }),
    expect: OWNED_WRITE,
    needs: "set",
  },
  "GET /v1/gpus/:id/vram": { req: () => ({ path: "/v1/gpus/GPU-0/vram" }), expect: READ },
  "GET /v1/vram/plan": { req: () => ({ path: "/v1/vram/plan?bytes=1024" }), expect: READ },
  // CDI is off on this bridge: past the role check it is a 404 for everyone.
  "GET /v1/cdi": { req: () => ({ path: "/v1/cdi" }), expect: [401, 404, 404, 404, 404] },
  "GET /v1/events": { req: () => ({ path: "/v1/events" }), expect: READ },
  "GET /v1/principals/me": { req: () => ({ path: "/v1/principals/me" }), expect: READ },
  "GET /v1/openapi.json": { req: () => ({ path: "/v1/openapi.json" }), expect: READ },
  "GET /v1/config": { req: () => ({ path: "/v1/config" }), expect: ADMIN_ONLY },
};

const tmp = tempDir("gbh-roles-");
let bridge: Bridge;
let app: ReturnType<typeof createApp>;
const tokens: Record<Who, string | null> = { none: null, reader: "", own: "", other: "", admin: "" };

beforeAll(async () => {
  const file = join(tmp.path, "tokens.toml");
  tokens.reader = addPrincipal(file, "ro", "reader", []).token;
  tokens.own = addPrincipal(file, "op-a", "operator", ["a-*"]).token;
  tokens.other = addPrincipal(file, "op-b", "operator", ["b-*"]).token;
  tokens.admin = addPrincipal(file, "root", "admin", []).token;
  const c = parseCommand(["serve", "--mock", "--state-dir", join(tmp.path, "state"), "--runner", "cpu"], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log } = memoryLogger();
  bridge = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() });
  app = createApp({ token: "", log, bridge, principals: new PrincipalGuard(file), settings: maskedSettings(c.options) });
});
afterAll(async () => {
  await bridge.stop();
  tmp.cleanup();
});

const call = (who: Who, method: string, r: { path: string; body?: string | Uint8Array; type?: string }) =>
  app.request(r.path, {
    method,
    headers: {
      ...(tokens[who] !== null && { Authorization: `Bearer ${tokens[who]}` }),
      ...(r.type !== undefined && { "content-type": r.type }),
      ...(r.body instanceof Uint8Array && { "content-length": String(r.body.length) }),
    },
    ...(r.body !== undefined && { body: r.body }),
  });

/** A lease of op-a's (worker a-1), with a finished job or a shard on it when the row needs one. */
async function fixture(needs: Row["needs"]): Promise<Fixture> {
  const made = await call("own", "POST", {
    path: "/v1/leases",
    ...json({ gpu_id: "GPU-0", worker_id: "a-1", mem_mb: 16, streams: 1, ttl_s: 60, priority: 1 }),
  });
  expect(made.status).toBe(201);
  const lease = ((await made.json()) as { id: string }).id;
  let job = "none";
  let shard = "none";
  let set = "none";
  if (needs === "job") {
    job = `fixture-${++jobs}`;
    expect((await call("own", "POST", { path: `/v1/leases/${lease}/jobs`, ...jobBody(job) })).status).toBe(202);
    await until(() => bridge.jobs.get(job)?.state === "OK", 20000, `job ${job} done`);
  }
  if (needs === "shard" || needs === "set") {
    const req = ROWS["POST /v1/leases/:id/shards"]!.req({ lease, job, shard, set }, "own");
    if (needs === "set") set = `set-${lease}`;
    const sealed = await call(
      "own",
      "POST",
      needs === "set" ? { ...req, path: `${req.path}?set_id=${set}&shard_index=0&total_shards=1` } : req,
    );
    expect(sealed.status).toBe(201);
    shard = ((await sealed.json()) as { shard_id: string }).shard_id;
  }
  return { lease, job, shard, set };
}

describe("every route against every role", () => {
  test("the table has one row for each route the app serves, and each route has a rule", () => {
    const served = apiRoutes(bridge).map((r) => `${r.method} ${r.path}`);
    expect(served.filter((k) => !(k in ROWS))).toEqual([]);
    expect(Object.keys(ROWS).filter((k) => !served.includes(k))).toEqual([]);
    expect(served.filter((k) => !(k in ROUTE_RULES))).toEqual([]);
  });

  for (const [key, row] of Object.entries(ROWS)) {
    test(key, async () => {
      const [method] = key.split(" ");
      const got: Record<string, number> = {};
      for (const who of WHO) {
        const f = await fixture(row.needs);
        const res = await call(who, method!, row.req(f, who));
        got[who] = res.status;
        await res.body?.cancel();
        for (const l of bridge.leases.live()) bridge.leases.release(l.id, "test");
      }
      expect(got).toEqual(Object.fromEntries(WHO.map((w, i) => [w, row.expect[i]!])));
    }, 60000);
  }
});
