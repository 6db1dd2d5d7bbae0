/** `serve --seal-active LEASE_ID`: every adapter activation seals under that lease first, or does not happen. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCommand } from "../../src/cli/options.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, REPO, tempDir } from "../helpers.ts";

const tmp = tempDir("gbh-seal-active-");
const reg = join(tmp.path, "registry");
const clock = new FakeClock();
const logged = memoryLogger();
let daemon: Bridge;
let api: { port: number; token: string; close(): Promise<void> };

beforeAll(async () => {
  cpSync(join(REPO, "mock", "registry"), reg, { recursive: true });
  const c = parseCommand(
    [
      "serve",
      "--mock",
      "--state-dir",
      join(tmp.path, "state"),
      "--registry",
      reg,
      "--listen",
      "127.0.0.1:0",
      "--seal-active",
      "lease-gone",
    ],
    {},
  );
  if (c.kind !== "serve") throw new Error("expected serve");
  expect(c.options.sealActive).toBe("lease-gone");
  daemon = await createBridge(c.options, { runtime: bunRuntime(), log: logged.log, backend: mockBackend() }, {
    clock,
    registryPollMs: 1000,
  });
  api = await startApi(c.options, daemon, { runtime: bunRuntime(), log: logged.log });
});
afterAll(async () => {
  await api.close();
  await daemon.stop();
  tmp.cleanup();
});

const put = async (body: unknown) => {
  const res = await fetch(`http://127.0.0.1:${api.port}/v1/models/active`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${api.token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  // deno-lint-ignore no-explicit-any
  return { status: res.status, body: await res.json() as any };
};
const active = () => readFileSync(join(reg, "active"), "utf8").trim();

test("an adapter cannot go live when sealing under --seal-active's lease fails; a base model is not sealed", async () => {
  const r = await put({ model_id: "demo-lora-v1" });
  expect(r.status).toBe(404);
  expect(r.body.error).toMatchObject({ field: "seal_lease" });
  expect(r.body.error.message).toContain("under lease lease-gone");
  expect(active()).toBe("demo-base-v1");
  // The request's own lease wins over the flag's.
  const lease = await fetch(`http://127.0.0.1:${api.port}/v1/leases`, {
    method: "POST",
    headers: { Authorization: `Bearer ${api.token}`, "content-type": "application/json" },
    body: JSON.stringify({ gpu_id: "GPU-0", worker_id: "infer", mem_mb: 1, streams: 1, ttl_s: 600 }),
  }).then((x) => x.json() as Promise<{ id: string }>);
  const sealed = await put({ model_id: "demo-lora-v1", seal_lease: lease.id });
  expect(sealed.status).toBe(200);
  expect(sealed.body.shard.lease_id).toBe(lease.id);
  expect((await put({ model_id: "demo-base-v1" })).body).toEqual({ active: "demo-base-v1" });
});

test("with --seal-active, a hand edit naming an adapter is refused (sealing cannot come before a pointer moved by hand)", () => {
  writeFileSync(join(reg, "active"), "demo-lora-v1\n");
  clock.advance(1000);
  expect(daemon.models.catalog().active).toBe("demo-base-v1");
  expect(active()).toBe("demo-base-v1");
  expect(logged.lines.some((l) => l.includes('Refused "demo-lora-v1"') && l.includes("--seal-active lease-gone"))).toBe(true);
});
