/**
 * The activation gate on a running --mock bridge over real HTTP: approval required on every path
 * (the API, a hand-edited `active` file), `force` recorded with who asked, the approval route and
 * its refusals, verification before the pointer moves, and sealed activation.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parse as parseToml } from "smol-toml";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCommand } from "../../src/cli/options.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import type { Change } from "../../src/changes/record.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { importModel } from "../../src/models/import.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, REPO, tempDir } from "../helpers.ts";

const tmp = tempDir("gbh-activation-");
const clock = new FakeClock();
const reg = join(tmp.path, "registry");
const logged = memoryLogger();
let daemon: Bridge;
let api: { port: number; token: string; close(): Promise<void> };
const changes: Change[] = [];

function stage(id: string, approval: "pending" | "approved" | "rejected", bytes = 4096): void {
  const dir = join(tmp.path, `bundle-${id}`);
  cpSync(join(REPO, "mock", "registry", "available", "demo-lora-v1"), dir, { recursive: true });
  writeFileSync(join(dir, "adapter.safetensors"), new Uint8Array(bytes).fill(id.length));
  writeFileSync(join(dir, "lora.json"), JSON.stringify({ base_model: "demo-base-v1", job_id: `job-${id}` }));
  importModel({ bundle: dir, id, registry: reg, approval });
}

beforeAll(async () => {
  cpSync(join(REPO, "mock", "registry"), reg, { recursive: true });
  stage("lora-pending", "pending");
  stage("lora-rejected", "rejected");
  stage("lora-ok", "approved");
  stage("lora-big", "approved", 3 * 1048576);
  const c = parseCommand(["serve", "--mock", "--state-dir", join(tmp.path, "state"), "--registry", reg, "--listen", "127.0.0.1:0"], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  daemon = await createBridge(c.options, { runtime: bunRuntime(), log: logged.log, backend: mockBackend() }, {
    clock,
    registryPollMs: 1000,
  });
  daemon.changes.on((ch) => void (ch.type.startsWith("model.") && changes.push(ch)));
  api = await startApi(c.options, daemon, { runtime: bunRuntime(), log: logged.log });
});
afterAll(async () => {
  await api.close();
  await daemon.stop();
  tmp.cleanup();
});

const call = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`http://127.0.0.1:${api.port}${path}`, {
    method,
    headers: { Authorization: `Bearer ${api.token}`, "content-type": "application/json" },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  // deno-lint-ignore no-explicit-any
  return { status: res.status, body: await res.json() as Record<string, any> };
};
const active = () => readFileSync(join(reg, "active"), "utf8").trim();
const activate = (body: Record<string, unknown>) => call("PUT", "/v1/models/active", body);
const lastChange = (type: string) => changes.filter((c) => c.type === type).at(-1);

describe("the approval gate", () => {
  test("PUT /v1/models/active refuses a pending or rejected adapter with 409 not_approved naming the status; the pointer stays", async () => {
    const before = active();
    for (const [id, status] of [["lora-pending", "pending"], ["lora-rejected", "rejected"]]) {
      const r = await activate({ model_id: id });
      expect(r.status).toBe(409);
      expect(r.body.error).toMatchObject({ code: "not_approved", field: "model_id" });
      expect(r.body.error.message).toContain(`its manifest says "${status}"`);
      expect(active()).toBe(before);
      expect(daemon.models.catalog().active).toBe(before);
    }
  });

  test("an approved adapter goes live; model.activated names the route and the model's folder", async () => {
    const n = changes.length;
    const r = await activate({ model_id: "lora-ok" });
    expect(r).toEqual({ status: 200, body: { active: "lora-ok" } });
    expect(active()).toBe("lora-ok");
    const c = changes.slice(n).find((x) => x.type === "model.activated")!;
    expect(c).toMatchObject({
      source: "api",
      actor: { route: "PUT /v1/models/active" },
      data: { model_id: "lora-ok", path: join(reg, "available", "lora-ok") },
    });
    expect(c.data.forced).toBeUndefined();
  });

  test('"force": true lets a pending adapter through, recorded with the route that asked and the status it had', async () => {
    const r = await activate({ model_id: "lora-pending", force: true });
    expect(r).toEqual({ status: 200, body: { active: "lora-pending", forced: { approval: "pending" } } });
    expect(lastChange("model.activated")).toMatchObject({
      source: "api",
      actor: { route: "PUT /v1/models/active" },
      data: { model_id: "lora-pending", previous: "lora-ok", forced: true, approval: "pending" },
    });
    expect(logged.lines.some((l) => l.includes("lora-pending was made active by force"))).toBe(true);
  });

  test("a hand-edited active file naming a rejected adapter is refused, written back and logged; an approved one stands", () => {
    expect(daemon.models.catalog().active).toBe("lora-pending");
    writeFileSync(join(reg, "active"), "lora-rejected\n");
    clock.advance(1000); // the registry's poll
    expect(daemon.models.catalog().active).toBe("lora-pending");
    expect(active()).toBe("lora-pending");
    expect(lastChange("model.activation_refused")).toMatchObject({
      source: "registry",
      severity: "warning",
      data: { model_id: "lora-rejected", kept: "lora-pending" },
    });
    expect(logged.lines.some((l) => l.includes('Refused "lora-rejected"') && l.includes("lora-pending stays active"))).toBe(true);
    writeFileSync(join(reg, "active"), "lora-ok\n");
    clock.advance(1000);
    expect(daemon.models.catalog().active).toBe("lora-ok");
    expect(lastChange("model.activated")).toMatchObject({ source: "registry", data: { model_id: "lora-ok", previous: "lora-pending" } });
  });

  test("a base model with no approval recorded may be activated (its operator installed it)", async () => {
    expect(await activate({ model_id: "demo-base-v1" })).toEqual({ status: 200, body: { active: "demo-base-v1" } });
  });
});

describe("PUT /v1/models/{id}/approval", () => {
  test("approves with a reason: the manifest records it, model.approval says who and what it was before; then it activates", async () => {
    const r = await call("PUT", "/v1/models/lora-rejected/approval", { status: "approved", reason: "re-evaluated on set B" });
    expect(r).toEqual({
      status: 200,
      body: { model_id: "lora-rejected", status: "approved", previous: "rejected", reason: "re-evaluated on set B" },
    });
    const manifest = parseToml(readFileSync(join(reg, "available", "lora-rejected", "manifest.toml"), "utf8")) as Record<
      string,
      Record<string, unknown>
    >;
    expect(manifest.approval).toMatchObject({ status: "approved", reason: "re-evaluated on set B" });
    expect(lastChange("model.approval")).toMatchObject({
      source: "api",
      actor: { route: "PUT /v1/models/:id/approval" },
      data: { model_id: "lora-rejected", status: "approved", previous: "rejected", reason: "re-evaluated on set B" },
    });
    expect((await activate({ model_id: "lora-rejected" })).status).toBe(200);
  });

  test("refusals name the field: status, a missing/empty/long/unprintable reason, an unknown model", async () => {
    const bad = async (path: string, body: unknown) => (await call("PUT", path, body)).body.error;
    expect(await bad("/v1/models/lora-ok/approval", { status: "pending", reason: "x" })).toMatchObject({
      code: "invalid",
      field: "status",
    });
    expect(await bad("/v1/models/lora-ok/approval", { status: "approved" })).toMatchObject({ code: "invalid", field: "reason" });
    expect(await bad("/v1/models/lora-ok/approval", { status: "approved", reason: "  " })).toMatchObject({
      code: "invalid",
      field: "reason",
    });
    expect(await bad("/v1/models/lora-ok/approval", { status: "approved", reason: "x".repeat(513) })).toMatchObject({
      code: "invalid",
      field: "reason",
      message: "reason must be at most 512 bytes, got 513",
    });
    expect(await bad("/v1/models/lora-ok/approval", { status: "approved", reason: "ok\u202eevil" })).toMatchObject({
      code: "invalid",
      field: "reason",
    });
    expect(await bad("/v1/models/lora-ok/approval", { status: "approved", reason: "x", by: "me" })).toMatchObject({ code: "invalid" });
    expect(await bad("/v1/models/nope/approval", { status: "approved", reason: "x" })).toMatchObject({ code: "not_found", field: "id" });
    const noToken = await fetch(`http://127.0.0.1:${api.port}/v1/models/lora-ok/approval`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ status: "rejected", reason: "x" }),
    });
    expect(noToken.status).toBe(401);
  });
});

describe("verification before activation", () => {
  test("an approved adapter whose file changed is refused with verify_failed naming the file; force does not pass it", async () => {
    const before = active();
    const file = join(reg, "available", "lora-ok", "adapter.safetensors");
    const good = readFileSync(file);
    writeFileSync(file, new Uint8Array(good.length));
    for (const force of [false, true]) {
      const r = await activate({ model_id: "lora-ok", force });
      expect(r.status).toBe(409);
      expect(r.body.error.code).toBe("verify_failed");
      expect(r.body.error.message).toContain("lora-ok: adapter.safetensors: its SHA-256 is");
      expect(active()).toBe(before);
    }
    writeFileSync(file, good);
    expect((await activate({ model_id: "lora-ok" })).status).toBe(200);
  });
});

describe("sealed activation", () => {
  test("seal_lease: the weights are sealed and verified under the lease before the pointer moves; the change carries the handle", async () => {
    const lease = (await call("POST", "/v1/leases", { gpu_id: "GPU-0", worker_id: "infer", mem_mb: 2, streams: 1, ttl_s: 600 })).body;
    await activate({ model_id: "demo-base-v1" });
    const r = await activate({ model_id: "lora-ok", seal_lease: lease.id });
    expect(r.status).toBe(200);
    const shard = r.body.shard;
    const digest = (await import("../../src/util/sha256.ts")).sha256Hex(
      readFileSync(join(reg, "available", "lora-ok", "adapter.safetensors")),
    );
    expect(shard).toMatchObject({ lease_id: lease.id, gpu_id: "GPU-0", digest, vram_bytes: 4096 });
    expect(daemon.vram.store!.get(shard.shard_id)?.state).toBe("SEALED");
    expect(lastChange("model.activated")).toMatchObject({ lease_id: lease.id, data: { model_id: "lora-ok", shard } });

    // Too big for the lease: the seal fails, the pointer stays.
    const tooBig = await activate({ model_id: "lora-big", seal_lease: lease.id });
    expect(tooBig.status).toBe(409);
    expect(tooBig.body.error.message).toContain(`under lease ${lease.id}`);
    expect(active()).toBe("lora-ok");

    // The copy in VRAM changes between the seal and its verification: refused, the shard freed, the pointer stays.
    const store = daemon.vram.store!;
    const verify = store.verify.bind(store);
    store.verify = (id, ...rest) => {
      store.corrupt(id, 10, 0xff);
      return verify(id, ...rest);
    };
    try {
      await activate({ model_id: "demo-base-v1" });
      const n = store.list(lease.id).length;
      const r2 = await activate({ model_id: "lora-rejected", seal_lease: lease.id });
      // The consumers' kind for a copy that fails its verification (docs/vram-sharing.md).
      expect(r2.body.error.code).toBe("seal_verification_failed");
      expect(r2.body.error.message).toContain("failed its verification in VRAM");
      expect(active()).toBe("demo-base-v1");
      expect(store.list(lease.id).length).toBe(n);
    } finally {
      store.verify = verify;
    }
    // A lease that does not exist: 404 naming seal_lease; nothing moved.
    const none = await activate({ model_id: "lora-ok", seal_lease: "lease-nope" });
    expect(none.status).toBe(404);
    expect(none.body.error.field).toBe("seal_lease");
    expect(active()).toBe("demo-base-v1");
  });
});
