/**
 * `GET /v1/events` on a running --mock bridge over real HTTP: every event type comes from its
 * real producer (the API, the lease TTL, the job runner, the shard store, the registry, the
 * inventory, the console), with who caused it; resume with Last-Event-ID; filters; bad
 * parameters named; the counts in /metrics; a client that stops reading dropped while one that
 * reads gets everything.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { cpSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCommand } from "../../src/cli/options.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, REPO, tempDir, until, vaddJob } from "../helpers.ts";

const tmp = tempDir("gbh-events-");
const clock = new FakeClock();
const inner = mockBackend();
/** GPUs the inventory hides (a GPU that fell off the bus). */
const hidden = new Set<string>();
let daemon: Bridge;
let api: { port: number; token: string; close(): Promise<void> };

beforeAll(async () => {
  cpSync(join(REPO, "mock", "registry"), join(tmp.path, "registry"), { recursive: true });
  const c = parseCommand(
    ["serve", "--mock", "--state-dir", join(tmp.path, "state"), "--registry", join(tmp.path, "registry"), "--listen", "127.0.0.1:0"],
    {},
  );
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log } = memoryLogger();
  const backend = { ...inner, list: async () => (await inner.list()).filter((g) => !hidden.has(g.id)) };
  daemon = await createBridge(c.options, { runtime: bunRuntime(), log, backend }, { clock, registryPollMs: 1000 });
  api = await startApi(c.options, daemon, { runtime: bunRuntime(), log });
});
afterAll(async () => {
  await api.close();
  await daemon.stop();
  tmp.cleanup();
});

const url = (path: string) => `http://127.0.0.1:${api.port}${path}`;
const call = async (method: string, path: string, body?: unknown, type = "application/json") => {
  const res = await fetch(url(path), {
    method,
    headers: { Authorization: `Bearer ${api.token}`, "content-type": type },
    ...(body !== undefined && { body: body instanceof Uint8Array ? body : JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
};

interface Frame {
  event: string;
  id?: number;
  // deno-lint-ignore no-explicit-any
  data: Record<string, any>;
}

/** An open event stream, read as it comes. */
async function stream(query = "", headers: Record<string, string> = {}) {
  const res = await fetch(url(`/v1/events${query}`), { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
  const reader = res.body!.getReader();
  let text = "";
  const got: Frame[] = [];
  const pump = (async () => {
    for (;;) {
      const r = await reader.read().catch(() => ({ done: true as const, value: undefined }));
      if (r.done) return;
      text += new TextDecoder().decode(r.value);
      let cut: number;
      while ((cut = text.indexOf("\n\n")) >= 0) {
        const f = text.slice(0, cut);
        text = text.slice(cut + 2);
        if (f.startsWith(":")) continue;
        const field = (name: string) => f.split("\n").find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
        const id = field("id");
        got.push({ event: field("event")!, ...(id !== undefined && { id: Number(id) }), data: JSON.parse(field("data")!) });
      }
    }
  })();
  return {
    got,
    /** Waits until a frame satisfies `pred`, and returns it. */
    async next(pred: (f: Frame) => boolean, what: string): Promise<Frame> {
      await until(() => got.some(pred), 10_000, what);
      return got.find(pred)!;
    },
    async close() {
      await reader.cancel();
      await pump;
    },
  };
}

const leaseBody = (worker: string, ttl_s = 600) => ({ gpu_id: "GPU-0", worker_id: worker, mem_mb: 16, streams: 1, ttl_s, priority: 1 });

describe("every event type, from its real producer", () => {
  test("leases: granted and renewed by the API (naming the route), released, and expired on the TTL (the daemon's doing)", async () => {
    const s = await stream("?types=lease.*");
    const l = (await call("POST", "/v1/leases", leaseBody("ev-a"))).body;
    const granted = await s.next((f) => f.event === "lease.granted" && f.data.lease_id === l.id, "lease.granted");
    expect(granted.data).toMatchObject({
      type: "lease.granted",
      source: "api",
      actor: { route: "POST /v1/leases" },
      gpu_id: "GPU-0",
      data: { worker_id: "ev-a", mem_mb: 16, streams: 1, ttl_s: 600, priority: 1 },
    });
    expect(granted.id).toBe(granted.data.id);
    expect((await call("POST", `/v1/leases/${l.id}/renew`, { ttl_s: 900 })).status).toBe(200);
    await s.next((f) => f.event === "lease.renewed" && f.data.actor?.route === "POST /v1/leases/:id/renew", "lease.renewed");
    expect((await call("DELETE", `/v1/leases/${l.id}`)).status).toBe(200);
    const released = await s.next((f) => f.event === "lease.released", "lease.released");
    expect(released.data).toMatchObject({ lease_id: l.id, source: "api", data: { reason: "released" } });

    const short = (await call("POST", "/v1/leases", leaseBody("ev-b", 30))).body;
    clock.advance(31_000);
    const expired = await s.next((f) => f.event === "lease.expired", "lease.expired");
    expect(expired.data).toMatchObject({ lease_id: short.id, source: "daemon", data: { reason: "expired" } });
    expect(expired.data.actor).toBeUndefined();
    await s.close();
  });

  test("job.state: QUEUED, RUNNING and OK of a real job, in order, with its lease", async () => {
    const s = await stream("?types=job.state");
    const l = (await call("POST", "/v1/leases", leaseBody("ev-job"))).body;
    const r = await call("POST", `/v1/leases/${l.id}/jobs`, vaddJob("ev-job-1"));
    expect(r.status).toBe(202);
    await s.next((f) => f.data.data?.state === "OK", "job OK");
    const states = s.got.filter((f) => f.data.data.job === "ev-job-1").map((f) => f.data.data.state);
    expect(states).toEqual(["QUEUED", "RUNNING", "OK"]);
    expect(s.got[0]!.data).toMatchObject({ lease_id: l.id, gpu_id: "GPU-0", data: { worker_id: "ev-job", kernel: "vadd" } });
    await s.close();
    await call("DELETE", `/v1/leases/${l.id}`);
  });

  test("shards: allocated, sealed, verify_failed (critical) after a flipped byte, deallocated with the lease", async () => {
    const s = await stream("?types=shard.*");
    const l = (await call("POST", "/v1/leases", leaseBody("ev-shard"))).body;
    const data = new Uint8Array(70_000).map((_, i) => i % 251);
    const sealed = await call("POST", `/v1/leases/${l.id}/shards?shard_id=ev-s`, data, "application/octet-stream");
    expect(sealed.status).toBe(201);
    const seal = await s.next((f) => f.event === "shard.sealed", "shard.sealed");
    expect(seal.data).toMatchObject({ lease_id: l.id, source: "api", data: { shard_id: "ev-s", worker_id: "ev-shard" } });
    expect(s.got.some((f) => f.event === "shard.allocated")).toBe(true);
    daemon.vram.store!.corrupt("ev-s", 4097, data[4097]! ^ 0x80);
    await call("POST", "/v1/shards/ev-s/verify");
    const failed = await s.next((f) => f.event === "shard.verify_failed", "shard.verify_failed");
    expect(failed.data).toMatchObject({ lease_id: l.id, severity: "critical" });
    await call("DELETE", `/v1/leases/${l.id}`);
    await s.next((f) => f.event === "shard.deallocated", "shard.deallocated");
    await s.close();
  });

  test("model.activated: by the API (its route), then by a hand edit of the active file (the registry watch)", async () => {
    const s = await stream("?types=model.*");
    expect((await call("PUT", "/v1/models/active", { model_id: "demo-lora-v1" })).status).toBe(200);
    const byApi = await s.next((f) => f.data.data?.model_id === "demo-lora-v1", "activated by the API");
    expect(byApi.data).toMatchObject({ source: "api", actor: { route: "PUT /v1/models/active" }, data: { previous: "demo-base-v1" } });
    writeFileSync(join(tmp.path, "registry", "active"), "demo-base-v1\n");
    clock.advance(1000);
    const byHand = await s.next((f) => f.data.data?.model_id === "demo-base-v1", "activated by hand");
    expect(byHand.data).toMatchObject({ source: "registry", data: { previous: "demo-lora-v1" } });
    expect(byHand.data.actor).toBeUndefined();
    await s.close();
  });

  test("gpu.health: a GPU gone from the inventory, then back", async () => {
    const s = await stream("?types=gpu.health");
    hidden.add("GPU-1");
    await daemon.refresh();
    hidden.delete("GPU-1");
    await daemon.refresh();
    await s.next((f) => f.data.data?.healthy === true, "GPU back");
    expect(s.got.map((f) => [f.data.gpu_id, f.data.data.healthy, f.data.severity])).toEqual([
      ["GPU-1", false, "warning"],
      ["GPU-1", true, "info"],
    ]);
    await s.close();
  });
});

describe("resume, filters and refusals", () => {
  test("Last-Event-ID resumes after the given change, nothing twice", async () => {
    const first = await stream("?types=lease.granted");
    const a = (await call("POST", "/v1/leases", leaseBody("ev-r1"))).body;
    const fa = await first.next((f) => f.data.lease_id === a.id, "first grant");
    await first.close();
    const b = (await call("POST", "/v1/leases", leaseBody("ev-r2"))).body;
    const again = await stream("?types=lease.granted", { "Last-Event-ID": String(fa.id) });
    await again.next((f) => f.data.lease_id === b.id, "the grant made while away");
    expect(again.got.some((f) => f.data.lease_id === a.id)).toBe(false);
    await again.close();
    const byQuery = await stream(`?types=lease.granted&last_event_id=${fa.id}`);
    await byQuery.next((f) => f.data.lease_id === b.id, "the same through the query");
    await byQuery.close();
  });

  test("lease= keeps one lease's changes", async () => {
    const a = (await call("POST", "/v1/leases", leaseBody("ev-f1"))).body;
    const s = await stream(`?lease=${a.id}`);
    const b = (await call("POST", "/v1/leases", leaseBody("ev-f2"))).body;
    await call("DELETE", `/v1/leases/${b.id}`);
    await call("DELETE", `/v1/leases/${a.id}`);
    await s.next((f) => f.event === "lease.released", "a's release");
    expect(s.got.map((f) => f.data.lease_id)).toEqual([a.id]);
    await s.close();
  });

  test("bad parameters are 422 naming the field and value", async () => {
    const get = async (q: string, h: Record<string, string> = {}) => {
      const r = await fetch(url(`/v1/events${q}`), { headers: h });
      return { status: r.status, body: await r.json() as { error: { field: string; message: string } } };
    };
    const t = await get("?types=lease.*,lase.granted");
    expect(t.status).toBe(422);
    expect(t.body.error).toMatchObject({ field: "types", message: expect.stringContaining('"lase.granted" matches no event type') });
    const h = await get("", { "Last-Event-ID": "abc" });
    expect(h.body.error).toMatchObject({ field: "Last-Event-ID", message: 'Last-Event-ID must be a change id (digits), got "abc"' });
    const q = await get("?last_event_id=-1");
    expect(q.body.error).toMatchObject({ field: "last_event_id" });
    expect((await get("?colour=red")).body.error.message).toContain('unknown field "colour"');
  });

  test("/metrics counts the changes by type and the open streams", async () => {
    const s = await stream();
    const text = await (await fetch(url("/metrics"))).text();
    expect(text).toMatch(/^gpu_bridge_changes_total\{type="lease\.granted"\} [1-9][0-9]*$/m);
    expect(text).toMatch(/^gpu_bridge_changes_total\{type="job\.state"\} [3-9][0-9]*$/m);
    expect(text).toMatch(/^gpu_bridge_event_clients 1$/m);
    expect(text).toMatch(/^gpu_bridge_event_clients_dropped_total 0$/m);
    await s.close();
  });
});

test("a client that stops reading is dropped; one that reads gets every change; the bridge never waits", async () => {
  const reading = await stream("?types=gpu.health");
  // A raw client that sends its request and never reads the answer.
  const idle = connect(api.port, "127.0.0.1");
  await new Promise<void>((resolve) => idle.once("connect", () => resolve()));
  idle.write(`GET /v1/events?types=gpu.health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  idle.pause();
  await until(() => daemon.events!.clients === 2, 5000, "both streams open");
  const start = daemon.changes.lastId;
  const padding = "x".repeat(400);
  const total = 40_000;
  const slowest = { ms: 0 };
  for (let i = 0; i < total; i += 400) {
    const t0 = performance.now();
    for (let k = 0; k < 400; k++) daemon.changes.append({ type: "gpu.health", gpu_id: "GPU-9", data: { healthy: true, pad: padding } });
    slowest.ms = Math.max(slowest.ms, performance.now() - t0);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await until(() => daemon.events!.dropped === 1, 10_000, "the idle client dropped");
  await until(() => reading.got.filter((f) => f.id !== undefined && f.id > start).length === total, 20_000, "every change read");
  expect(daemon.events!.clients).toBe(1);
  // Appending never blocks on a client: 400 changes at a time, however slow the readers.
  expect(slowest.ms).toBeLessThan(1000);
  idle.destroy();
  await reading.close();
}, 60_000);

describe("console.state", () => {
  test("publishing to a console that is not there: connecting, then backoff with the error", async () => {
    const c = parseCommand(
      ["serve", "--mock", "--publish", "--tcp-port", "1", "--state-dir", join(tmp.path, "state-console"), "--no-api"],
      {},
    );
    if (c.kind !== "serve") throw new Error("expected serve");
    const { log } = memoryLogger();
    const b = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() }, {
      noJournal: true,
      backoff: { baseMs: 60_000, capMs: 60_000 },
    });
    try {
      const seen: string[] = [];
      b.changes.on((ch) => ch.type === "console.state" && seen.push(`${ch.data.state}${ch.data.error ? " (error)" : ""}`));
      const backoff = () => b.changes.since(0).changes.find((ch) => ch.type === "console.state" && ch.data.state === "backoff");
      await until(() => backoff() !== undefined, 10_000, "backoff");
      const states = b.changes.since(0).changes.filter((ch) => ch.type === "console.state").map((ch) => ch.data.state);
      expect(states).toEqual(["connecting", "backoff"]);
      expect(backoff()!.data.error).toEqual(expect.any(String));
    } finally {
      await b.stop();
    }
  });
});
