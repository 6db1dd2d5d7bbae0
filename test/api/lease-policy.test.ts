/**
 * The lease policy and the allowed kernels through the API, on a host wired from serve's parsed
 * flags as the daemon wires it: POST /v1/leases, renew and control lines refused past a maximum
 * (422, naming the field, the value, the limit and the setting), terms left out filled in with
 * the defaults, a job of a kernel the policy leaves out refused, and GET /v1/config showing it all.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";
import { maskedSettings } from "../../src/app/daemon.ts";
import { bridgeFacade } from "../../src/app/bridge.ts";
import { leasePolicyOf } from "../../src/app/wiring.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { HostState } from "../../src/host/state.ts";
import { MOCK_GPUS, mockStats } from "../../src/inventory/mock.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { memoryLogger, vaddJob } from "../helpers.ts";
import { NEVER } from "./tenancy-helpers.ts";

const TOKEN = "policy-test-token-0123456789abcdef";
const auth = { Authorization: `Bearer ${TOKEN}` };
let hosts: HostState[] = [];

afterEach(() => {
  for (const h of hosts) h.close();
  hosts = [];
});

/** The API of a bridge started with `flags` (serve's), its host wired from them as wiring.ts does. */
function bridgeWith(...flags: string[]) {
  const c = parseCommand(["serve", "--mock", "--api-token", TOKEN, ...flags], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const o = c.options;
  const { log } = memoryLogger();
  const host = new HostState({
    gpus: () => MOCK_GPUS,
    runner: NEVER,
    runnerKind: "cpu",
    log,
    onChange: () => {},
    policy: leasePolicyOf(o),
    allowedKernels: o.allowedKernels,
  });
  hosts.push(host);
  const app = createApp({
    log,
    token: TOKEN,
    settings: maskedSettings(o),
    bridge: bridgeFacade({ gpus: () => MOCK_GPUS, stats: () => mockStats(), host, models: { catalog: builtinCatalog } }),
  });
  const post = (path: string, body: unknown, type = "application/json") =>
    app.request(path, {
      method: "POST",
      headers: { ...auth, "content-type": type },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  return { app, host, post };
}

const error = async (res: Response) => ((await res.json()) as { error: { code: string; message: string; field?: string } }).error;
const over = (field: string, value: number, max: number, key: string) =>
  `${field} ${value} is over ${key} ${max} (a serve flag and --config key)`;

describe("POST /v1/leases under a lease policy", () => {
  test("each term past its maximum is a 422 naming the field, the value, the limit and the setting; at the maximum it is granted", async () => {
    const { post } = bridgeWith("--max-lease-mem-mb", "4096", "--max-lease-streams", "2", "--max-ttl-s", "600");
    const base = { gpu_id: "GPU-0", mem_mb: 1024, streams: 1, ttl_s: 60 };
    for (
      const [terms, field, message] of [
        [{ mem_mb: 4097 }, "mem_mb", over("mem_mb", 4097, 4096, "max-lease-mem-mb")],
        [{ streams: 3 }, "streams", over("streams", 3, 2, "max-lease-streams")],
        [{ ttl_s: 601 }, "ttl_s", over("ttl_s", 601, 600, "max-ttl-s")],
      ] as const
    ) {
      const res = await post("/v1/leases", { ...base, worker_id: `w-${field}`, ...terms });
      expect(res.status).toBe(422);
      expect(await error(res)).toEqual({ code: "invalid", field, message });
    }
    const ok = await post("/v1/leases", { ...base, worker_id: "w-max", mem_mb: 4096, streams: 2, ttl_s: 600 });
    expect(ok.status).toBe(201);
  });

  test("terms left out take the bridge's defaults", async () => {
    const { post } = bridgeWith("--lease-mem-mb", "2048", "--lease-streams", "2", "--lease-ttl-s", "90");
    const res = await post("/v1/leases", { gpu_id: "GPU-0", worker_id: "w1" });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ mem_mb: 2048, streams: 2, ttl_s: 90, priority: 0 });
    const some = await post("/v1/leases", { gpu_id: "GPU-0", worker_id: "w2", streams: 1 });
    expect(await some.json()).toMatchObject({ mem_mb: 2048, streams: 1, ttl_s: 90 });
  });

  test("without a default, a term left out is a 422 naming it and the setting; the TTL's default is 120 s", async () => {
    const { post } = bridgeWith();
    const res = await post("/v1/leases", { gpu_id: "GPU-0", worker_id: "w1", streams: 1 });
    expect(res.status).toBe(422);
    expect(await error(res)).toEqual({
      code: "invalid",
      field: "mem_mb",
      message: "mem_mb is required: this bridge sets no default lease-mem-mb (a serve flag and --config key)",
    });
    const noStreams = await post("/v1/leases", { gpu_id: "GPU-0", worker_id: "w1", mem_mb: 64 });
    expect((await error(noStreams)).field).toBe("streams");
    const ok = await post("/v1/leases", { gpu_id: "GPU-0", worker_id: "w1", mem_mb: 64, streams: 1 });
    expect(await ok.json()).toMatchObject({ ttl_s: 120 });
  });

  test("a default lease over a maximum set by another setting cannot happen: the default TTL follows a shorter maximum", async () => {
    const { post } = bridgeWith("--max-ttl-s", "45", "--lease-mem-mb", "64", "--lease-streams", "1");
    const res = await post("/v1/leases", { gpu_id: "GPU-0", worker_id: "w1" });
    expect(await res.json()).toMatchObject({ ttl_s: 45 });
  });
});

describe("renewals and control lines under a lease policy", () => {
  test("POST /v1/leases/{id}/renew past max-ttl-s is a 422 and the lease keeps its deadline", async () => {
    const { post, host } = bridgeWith("--max-ttl-s", "600");
    const l = await (await post("/v1/leases", { gpu_id: "GPU-0", worker_id: "w1", mem_mb: 64, streams: 1, ttl_s: 60 })).json() as {
      id: string;
    };
    const before = host.leases.get(l.id)!.expires_at;
    const res = await post(`/v1/leases/${l.id}/renew`, { ttl_s: 601 });
    expect(res.status).toBe(422);
    expect(await error(res)).toEqual({ code: "invalid", field: "ttl_s", message: over("ttl_s", 601, 600, "max-ttl-s") });
    expect(host.leases.get(l.id)!.expires_at).toBe(before);
    expect((await post(`/v1/leases/${l.id}/renew`, { ttl_s: 600 })).status).toBe(200);
  });

  test("a LEASE control line is held to the maxima and takes the defaults for what it leaves out", async () => {
    const { post, host } = bridgeWith("--max-lease-mem-mb", "4096", "--lease-streams", "3", "--lease-ttl-s", "30");
    const refused = await post("/v1/gpus/GPU-0/ctl", "LEASE w1 mem=8192 streams=1 priority=1", "text/plain");
    expect(refused.status).toBe(422);
    expect(await error(refused)).toEqual({ code: "invalid", field: "mem_mb", message: over("mem_mb", 8192, 4096, "max-lease-mem-mb") });
    expect((await post("/v1/gpus/GPU-0/ctl", "LEASE w1 mem=512 priority=1", "text/plain")).status).toBe(200);
    expect(host.leases.ofWorker("GPU-0", "w1")).toMatchObject({ mem_mb: 512, streams: 3, ttl_s: 30 });
    const noMem = await post("/v1/gpus/GPU-0/ctl", "LEASE w2 streams=1 priority=1", "text/plain");
    expect(await error(noMem)).toEqual({
      code: "invalid",
      field: "mem_mb",
      message: "LEASE needs mem=<n>: this bridge sets no default lease-mem-mb (a serve flag and --config key)",
    });
  });
});

describe("jobs under --allowed-kernels", () => {
  test("a job whose kernel the bridge does not allow is a 422 naming the kernel and the setting; an allowed one is queued", async () => {
    const { post } = bridgeWith("--allowed-kernels", "matmul,ptx");
    const l = await (await post("/v1/leases", { gpu_id: "GPU-0", worker_id: "w1", mem_mb: 64, streams: 1, ttl_s: 60 })).json() as {
      id: string;
    };
    const res = await post(`/v1/leases/${l.id}/jobs`, vaddJob("j1"));
    expect(res.status).toBe(422);
    expect(await error(res)).toEqual({
      code: "invalid",
      field: "kernel",
      message: 'Invalid job descriptor: kernel: kernel "vadd" is not in allowed-kernels (matmul,ptx), a serve flag and --config key',
    });
    const { post: open } = bridgeWith();
    const l2 = await (await open("/v1/leases", { gpu_id: "GPU-0", worker_id: "w1", mem_mb: 64, streams: 1, ttl_s: 60 })).json() as {
      id: string;
    };
    expect((await open(`/v1/leases/${l2.id}/jobs`, vaddJob("j1"))).status).toBe(202);
  });
});

describe("GET /v1/config", () => {
  test("shows every policy setting in force, the defaults filled in, the token masked", async () => {
    const { app } = bridgeWith("--max-ttl-s", "3600", "--lease-mem-mb", "1024", "--verify-mode", "sampled", "--allowed-kernels", "vadd");
    const res = await app.request("/v1/config", { headers: auth });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(TOKEN);
    expect(JSON.parse(text)).toMatchObject({
      apiToken: "(hidden)",
      maxTtlS: 3600,
      maxLeaseMemMb: null,
      maxLeaseStreams: 1024,
      leaseMemMb: 1024,
      leaseStreams: null,
      leaseTtlS: 120,
      verifyMode: "sampled",
      verifySweepMs: 60000,
      allowedKernels: ["vadd"],
    });
  });
});
