/** Hostile requests against the API through `app.request()`: no socket. */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";
import { allowedHosts } from "../../src/api/host-check.ts";
import { hostApp } from "./tenancy-helpers.ts";
import { HostState } from "../../src/host/state.ts";
import type { Runner } from "../../src/job/runner.ts";

const TOKEN = "test-token-0123456789";
const idle: Runner = { run: () => new Promise(() => {}) };
let host: HostState;
let app: ReturnType<typeof createApp>;

function build(extra: Omit<Parameters<typeof hostApp>[0], "token"> = {}) {
  ({ app, host } = hostApp({ token: TOKEN, runner: idle, ...extra }));
}
beforeEach(() => build());
afterEach(() => host.close());

const auth = { Authorization: `Bearer ${TOKEN}` };
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
const takeLease = async () => {
  const res = await post("/v1/leases", { gpu_id: "GPU-0", worker_id: "w1", mem_mb: 1024, streams: 1, ttl_s: 60, priority: 1 });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
};

describe("a release reason cannot forge lines", () => {
  for (
    const reason of ["done%0ALEASE%20evil%20mem=1%20streams=1%20priority=1", "x%1B%5B31m", "a%00b", "%E2%80%AEevil", "%20", "x".repeat(129)]
  ) {
    test(`DELETE ?reason=${reason.slice(0, 30)} is refused (422, field reason) and the lease stays`, async () => {
      const id = await takeLease();
      const res = await app.request(`/v1/leases/${id}?reason=${reason}`, { method: "DELETE", headers: auth });
      expect(res.status).toBe(422);
      expect(((await res.json()) as { error: { field: string } }).error.field).toBe("reason");
      expect(host.leases.get(id)!.state).toBe("ACTIVE");
      expect(host.nodeLogs("GPU-0")!.ctl!.split("\n").filter((l) => l.startsWith("LEASE ")).length).toBe(2); // the seed and w1's
    });
  }

  test("a plain reason still works", async () => {
    const id = await takeLease();
    const res = await app.request(`/v1/leases/${id}?reason=job%20done`, { method: "DELETE", headers: auth });
    expect(res.status).toBe(200);
    expect(host.nodeLogs("GPU-0")!.ctl!).toContain("RELEASE w1 job done\n");
  });

  test("a RELEASE control line with an escape in its reason is refused", async () => {
    await takeLease();
    const res = await app.request("/v1/gpus/GPU-0/ctl", {
      method: "POST",
      headers: { "content-type": "text/plain", ...auth },
      body: "RELEASE w1 x\u001b[2Jy",
    });
    expect(res.status).toBe(422);
    expect(host.leases.live("GPU-0").length).toBe(1);
  });
});

describe("DNS rebinding: a request for another Host is refused", () => {
  test("a request whose Host is some other name is refused; loopback names and the listen address are served", async () => {
    build({ allowedHosts: allowedHosts("127.0.0.1") });
    const get = (h: string) => app.request("http://x/v1/gpus", { headers: { host: h } });
    expect((await get("evil.example:31338")).status).toBe(403);
    expect((await get("evil.example")).status).toBe(403);
    expect((await get("127.0.0.1.evil.example")).status).toBe(403);
    expect((await get("localhost:31338")).status).toBe(200);
    expect((await get("127.0.0.1:31338")).status).toBe(200);
    expect((await get("[::1]:31338")).status).toBe(200);
    expect(allowedHosts("0.0.0.0")).toBeNull();
  });
});

describe("duplicate JSON keys in API bodies are refused", () => {
  test("a lease body naming mem_mb twice is refused (400), not resolved to the last", async () => {
    const res = await post(
      "/v1/leases",
      '{"gpu_id":"GPU-0","worker_id":"w","mem_mb":1,"streams":1,"ttl_s":60,"priority":0,"mem_mb":99999}',
    );
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('duplicate key "mem_mb"');
    expect(host.leases.live().length).toBe(0);
  });
});
