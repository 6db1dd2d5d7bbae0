/**
 * Each quota of a principal (tokens-file.ts QUOTAS) refuses the request that would pass it with
 * a 429 naming the quota, the use and the limit, counts only that principal's holdings, frees
 * room when they end, and shows in `GET /v1/principals/me`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { PrincipalGuard } from "../../src/api/principals.ts";
import { newToken, tokenHash } from "../../src/api/tokens-file.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { memoryLogger, tempDir, until } from "../helpers.ts";
import { hostApp, vaddJob } from "./tenancy-helpers.ts";

const tmp = tempDir("gbh-quotas-");
let bridge: Bridge;
let app: ReturnType<typeof createApp>;
const limited = newToken();
const free = newToken();

beforeAll(async () => {
  const file = join(tmp.path, "tokens.toml");
  writeFileSync(
    file,
    [
      "[principals.team-a]",
      'role = "operator"',
      'workers = ["a-*"]',
      `token_sha256 = "${tokenHash(limited)}"`,
      "quotas = { leases = 2, mem_mb = 48, gpus = 1, sealed_bytes = 8192, queued_jobs = 1 }",
      "[principals.team-b]",
      'role = "operator"',
      'workers = ["b-*"]',
      `token_sha256 = "${tokenHash(free)}"`,
    ].join("\n"),
  );
  const c = parseCommand(["serve", "--mock", "--state-dir", join(tmp.path, "state"), "--runner", "cpu"], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log } = memoryLogger();
  bridge = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() });
  app = createApp({ token: "", log, bridge, principals: new PrincipalGuard(file) });
});
afterEach(() => {
  for (const l of bridge.leases.live()) bridge.leases.release(l.id, "test");
});
afterAll(async () => {
  await bridge.stop();
  tmp.cleanup();
});

const post = (token: string, path: string, body: unknown, type = "application/json") =>
  app.request(path, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${token}`,
      "content-type": type,
      ...(body instanceof Uint8Array && { "content-length": String(body.length) }),
    },
    body: body instanceof Uint8Array ? body : JSON.stringify(body),
  });
const lease = (token: string, worker: string, mem_mb = 16, gpu_id = "GPU-0") =>
  post(token, "/v1/leases", { gpu_id, worker_id: worker, mem_mb, streams: 1, ttl_s: 60, priority: 1 });
const idOf = async (res: Response) => ((await res.json()) as { id: string }).id;
const refusal = async (res: Response) => {
  expect(res.status).toBe(429);
  return ((await res.json()) as { error: { code: string; message: string; field: string } }).error;
};
const me = async (
  token: string,
) => ((await (await app.request("/v1/principals/me", { headers: { Authorization: `Bearer ${token}` } })).json()) as {
  name: string;
  quotas: Record<string, { use: number; limit: number | null }>;
});

describe("quotas", () => {
  test("leases: a third live lease is refused naming the quota, the use and the limit; another principal is not counted", async () => {
    expect((await lease(limited, "a-1")).status).toBe(201);
    expect((await lease(free, "b-1")).status).toBe(201);
    expect((await lease(limited, "a-2")).status).toBe(201);
    const e = await refusal(await lease(limited, "a-3"));
    expect(e).toEqual({
      code: "quota_exceeded",
      field: "leases",
      message: 'Quota leases of principal "team-a" is reached: 2 live leases in use, 1 more asked for, limit 2',
    });
    expect((await lease(free, "b-2")).status).toBe(201);
  });

  test("a lease that ends frees its room", async () => {
    const first = await idOf(await lease(limited, "a-1"));
    await lease(limited, "a-2");
    expect((await lease(limited, "a-3")).status).toBe(429);
    bridge.leases.release(first, "test");
    expect((await lease(limited, "a-3")).status).toBe(201);
  });

  test("mem_mb: the MiB across the principal's leases", async () => {
    expect((await lease(limited, "a-1", 32)).status).toBe(201);
    const e = await refusal(await lease(limited, "a-2", 17));
    expect(e.field).toBe("mem_mb");
    expect(e.message).toContain("32 MiB leased across GPUs in use, 17 more asked for, limit 48");
    expect((await lease(limited, "a-2", 16)).status).toBe(201);
  });

  test("gpus: a lease on a second GPU is refused, another on the same GPU is not", async () => {
    expect((await lease(limited, "a-1", 16, "GPU-0")).status).toBe(201);
    const e = await refusal(await lease(limited, "a-2", 16, "GPU-1"));
    expect(e.field).toBe("gpus");
    expect(e.message).toContain("1 GPUs leased at once in use, 1 more asked for, limit 1");
    expect((await lease(limited, "a-2", 16, "GPU-0")).status).toBe(201);
  });

  test("sealed_bytes: a seal that would pass the bytes sealed on the principal's leases is refused", async () => {
    const id = await idOf(await lease(limited, "a-1", 16));
    const seal = (n: number) => post(limited, `/v1/leases/${id}/shards`, new Uint8Array(n).fill(1), "application/octet-stream");
    expect((await seal(6000)).status).toBe(201);
    const e = await refusal(await seal(3000));
    expect(e.field).toBe("sealed_bytes");
    expect(e.message).toContain("6000 bytes of sealed VRAM in use, 3000 more asked for, limit 8192");
    expect((await seal(2000)).status).toBe(201);
  });

  test("queued_jobs: a second unfinished job is refused; one that ends gives its room back", async () => {
    // A runner that finishes a job only when told, so "unfinished" is in the test's hands.
    const finish: (() => void)[] = [];
    const { app: jobsApp, host } = hostApp({
      token: "",
      principals: new PrincipalGuard(join(tmp.path, "tokens.toml")),
      runner: {
        run: () =>
          new Promise((resolve) =>
            finish.push(() =>
              resolve({
                ok: true,
                output: new Uint8Array(8),
                summary: { kernel: "vadd", size: 2, checksum: 0, max_abs_error: 0, verified: 1, duration_ms: 1 },
              })
            )
          ),
      },
    });
    try {
      const granted = await jobsApp.request("/v1/leases", {
        method: "POST",
        headers: { Authorization: `Bearer ${limited}`, "content-type": "application/json" },
        body: JSON.stringify({ gpu_id: "GPU-0", worker_id: "a-1", mem_mb: 16, streams: 1, ttl_s: 60, priority: 1 }),
      });
      const id = await idOf(granted);
      const job = (name: string) =>
        jobsApp.request(`/v1/leases/${id}/jobs`, {
          method: "POST",
          headers: { Authorization: `Bearer ${limited}`, "content-type": "application/json" },
          body: vaddJob(name),
        });
      expect((await job("q-1")).status).toBe(202);
      const e = await refusal(await job("q-2"));
      expect(e.field).toBe("queued_jobs");
      expect(e.message).toContain("1 jobs queued or running in use, 1 more asked for, limit 1");
      await until(() => finish.length === 1, 5000, "the job to start");
      finish[0]!();
      await until(() => host.jobs.get("q-1")?.state === "OK", 5000, "the job to finish");
      expect((await job("q-2")).status).toBe(202);
    } finally {
      host.close();
    }
  });

  test("GET /v1/principals/me shows each quota's use against its limit", async () => {
    await lease(limited, "a-1", 16, "GPU-0");
    await lease(limited, "a-2", 8, "GPU-0");
    const m = await me(limited);
    expect(m.name).toBe("team-a");
    expect(m.quotas.leases).toMatchObject({ use: 2, limit: 2 });
    expect(m.quotas.mem_mb).toMatchObject({ use: 24, limit: 48 });
    expect(m.quotas.gpus).toMatchObject({ use: 1, limit: 1 });
    expect(m.quotas.sealed_bytes).toMatchObject({ use: 0, limit: 8192 });
    expect((await me(free)).quotas.leases).toMatchObject({ use: 0, limit: null });
  });
});
