/**
 * The audit trail in a running --mock bridge over real HTTP: X-Request-Id accepted or generated,
 * returned on every answer, in the record and in the log line; one api.request record per request
 * that could change something, refused ones included; lease history from the trail; a restart
 * that numbers on from the trail's last change and leaves it verifiable.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import { verifyTrail } from "../../src/audit/verify.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";

const tmp = tempDir("gbh-audit-");
const state = join(tmp.path, "state");
const clock = new FakeClock(Date.parse("2026-12-05T12:00:00Z"));
const options = () => {
  const c = parseCommand(["serve", "--mock", "--state-dir", state, "--listen", "127.0.0.1:0", "--audit-fsync", "record"], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  return c.options;
};
const { log, lines: logLines } = memoryLogger();
let daemon: Bridge;
let api: { port: number; token: string; close(): Promise<void> };

beforeAll(async () => {
  daemon = await createBridge(options(), { runtime: bunRuntime(), log, backend: mockBackend() }, { clock });
  api = await startApi(options(), daemon, { runtime: bunRuntime(), log });
});
afterAll(async () => {
  await api.close();
  await daemon.stop();
  tmp.cleanup();
});

const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(`http://127.0.0.1:${api.port}${path}`, {
    method,
    headers: { Authorization: `Bearer ${api.token}`, "content-type": "application/json", ...headers },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
/** Every change line of the trail so far. */
// deno-lint-ignore no-explicit-any
const trail = (): any[] =>
  readdirSync(join(state, "audit")).filter((f) => f.endsWith(".jsonl")).sort().flatMap((f) =>
    readFileSync(join(state, "audit", f), "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l))
  ).filter((l) => l.id !== undefined);
const lease = { gpu_id: "GPU-0", worker_id: "w-audit", mem_mb: 64, streams: 1, ttl_s: 60 };

describe("request ids and api.request", () => {
  test("a client's X-Request-Id comes back, names the lease's grant and the api.request record, and is in the log line", async () => {
    const res = await call("POST", "/v1/leases", lease, { "X-Request-Id": "req-42.a/b" });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-request-id")).toBe("req-42.a/b");
    const id = ((await res.json()) as { id: string }).id;
    const granted = trail().find((c) => c.type === "lease.granted" && c.lease_id === id);
    expect(granted).toMatchObject({
      source: "api",
      actor: { route: "POST /v1/leases", request_id: "req-42.a/b", principal: "api-token" },
      data: { worker_id: "w-audit", mem_mb: 64 },
    });
    const request = trail().find((c) => c.type === "api.request" && c.actor.request_id === "req-42.a/b");
    expect(request).toMatchObject({ outcome: "ok", actor: { principal: "api-token", route: "POST /v1/leases" }, data: { status: 201 } });
    expect(request.id).toBeGreaterThan(granted.id);
    expect(logLines.some((l) => l.includes("POST /v1/leases") && l.includes("201") && l.includes("request req-42.a/b"))).toBe(true);
  });

  test("without one, an id is made; GETs, 404s and errors carry one too", async () => {
    const res = await call("POST", "/v1/leases", { ...lease, mem_mb: -1 });
    expect(res.status).toBe(422);
    const made = res.headers.get("x-request-id")!;
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
    expect(trail().find((c) => c.type === "api.request" && c.actor.request_id === made)).toMatchObject({
      outcome: "refused",
      data: { status: 422 },
    });
    for (const path of ["/v1/gpus", "/v1/nothing-here"]) {
      const r = await call("GET", path, undefined, { "X-Request-Id": "get-1" });
      expect(r.headers.get("x-request-id")).toBe("get-1");
    }
    expect(trail().some((c) => c.actor?.request_id === "get-1")).toBe(false); // a read changes nothing
  });

  test("an unprintable or overlong id is refused naming the header; an unauthenticated change is recorded as denied", async () => {
    for (const bad of ["has space", "x".repeat(129)]) {
      const res = await call("POST", "/v1/leases", lease, { "X-Request-Id": bad });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_request_id", field: "X-Request-Id" } });
      expect(res.headers.get("x-request-id")).not.toBe(bad);
    }
    const res = await fetch(`http://127.0.0.1:${api.port}/v1/leases`, {
      method: "POST",
      headers: { "content-type": "application/json", "X-Request-Id": "no-token" },
      body: JSON.stringify(lease),
    });
    expect(res.status).toBe(401);
    const denied = trail().find((c) => c.actor?.request_id === "no-token");
    expect(denied).toMatchObject({ type: "api.request", outcome: "denied", data: { status: 401 } });
    expect(denied.actor.principal).toBeUndefined();
  });
});

describe("lease history", () => {
  test("GET /v1/leases?state=ended answers from the trail, with who ended each and its terms", async () => {
    const before = new Date(clock.now()).toISOString();
    const made = (await (await call("POST", "/v1/leases", { ...lease, worker_id: "w-hist", mem_mb: 128 })).json()) as { id: string };
    clock.advance(1000);
    expect((await call("DELETE", `/v1/leases/${made.id}`, undefined, { "X-Request-Id": "end-it" })).status).toBe(200);
    const res = await call("GET", `/v1/leases?state=ended&since=${before}`);
    expect(res.status).toBe(200);
    const ended = (await res.json()) as Record<string, unknown>[];
    expect(ended.find((e) => e.id === made.id)).toMatchObject({
      worker_id: "w-hist",
      ended: "released",
      source: "api",
      actor: { request_id: "end-it", principal: "api-token" },
      granted: { mem_mb: 128, ttl_s: 60 },
    });
    const later = new Date(clock.now() + 60_000).toISOString();
    expect(await (await call("GET", `/v1/leases?state=ended&since=${later}`)).json()).toEqual([]);
  });

  test("a bad since is refused naming it", async () => {
    for (const [q, needle] of [["state=ended&since=yesterday", "yesterday"], ["since=2026-12-05T12:00:00Z", "state=ended"]] as const) {
      const res = await call("GET", `/v1/leases?${q}`);
      expect(res.status).toBe(422);
      const body = (await res.json()) as { error: { field: string; message: string } };
      expect(body.error.field).toBe("since");
      expect(body.error.message).toContain(needle);
    }
  });
});

describe("restart", () => {
  test("a new bridge on the same state numbers on from the trail, and the trail verifies across both runs", async () => {
    const last = daemon.changes.lastId;
    expect(last).toBeGreaterThan(3);
    await api.close();
    await daemon.stop();
    daemon = await createBridge(options(), { runtime: bunRuntime(), log, backend: mockBackend() }, { clock });
    api = await startApi(options(), daemon, { runtime: bunRuntime(), log });
    expect(daemon.changes.lastId).toBe(last);
    expect((await call("POST", "/v1/leases", { ...lease, worker_id: "w-after" })).status).toBe(201);
    expect(daemon.changes.lastId).toBeGreaterThan(last);
    const ids = trail().map((c) => c.id);
    expect(ids).toEqual(ids.map((_, i) => ids[0] + i)); // one numbering, no id reused
    expect(verifyTrail(join(state, "audit"))).toMatchObject({ ok: true, lastId: daemon.changes.lastId });
  });
});
