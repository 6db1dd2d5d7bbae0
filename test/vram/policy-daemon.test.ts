/**
 * The attestation key and the VRAM-only policy through a whole bridge on the fake NVML and
 * libcuda (the CUDA backend, not --mock): the start-up check has run, and recorded a scripted
 * violation, before the API answers its first request; the key is made once (0600) and served,
 * and the next start serves the same one; a shard's attestation checks against the served key
 * with node:crypto alone and with `vram attest-verify`; and a pointer that turns up as host
 * memory while the bridge runs is caught by the periodic check: the shard FAILED, a critical
 * change in the audit trail, the counter on /metrics.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import { createPublicKey, verify } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { selectBackend } from "../../src/inventory/mod.ts";
import type { InventoryBackend } from "../../src/inventory/types.ts";
import { main } from "../../src/main.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { canonicalJson } from "../../src/util/canonical-json.ts";
import { trailText } from "../audit/read.ts";
import { memoryLogger, memoryStdio, tempFolder, until } from "../helpers.ts";
import { fakeEnv, scriptFakes } from "../inventory/fakes.ts";
import { pattern } from "./vectors.ts";
import { apiCall } from "./api-call.ts";

const saved = { ...process.env };
Object.assign(process.env, fakeEnv);
afterAll(() => {
  for (const k of Object.keys(fakeEnv)) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});
afterEach(() => scriptFakes({}));

const state = join(tempFolder("gbh-policy-daemon-"), "state");

interface Running {
  bridge: Bridge;
  api: { port: number; token: string; close(): Promise<void> };
  inv: InventoryBackend;
}
async function start(extra: string[] = []): Promise<Running> {
  const c = parseCommand(["serve", "--backend", "nvml", "--state-dir", state, "--listen", "127.0.0.1:0", ...extra], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log } = memoryLogger();
  const inv = await selectBackend({ backend: "nvml" });
  const bridge = await createBridge(c.options, { runtime: bunRuntime(), log, backend: inv });
  const api = await startApi(c.options, bridge, { runtime: bunRuntime(), log });
  return { bridge, api, inv };
}
async function stop(r: Running): Promise<void> {
  await r.api.close();
  await r.bridge.stop();
  r.inv.close();
}
// deno-lint-ignore no-explicit-any
const changes = (): any[] => trailText(state).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));

test("start-up check before the API answers; one key across restarts; attestations check offline; the periodic check catches host memory", async () => {
  // 1. A driver that hands out host memory: the start-up probe finds it on every GPU.
  scriptFakes({ pointer_type: 1 });
  let r = await start();
  let call = apiCall(() => r.api);
  const metrics = await (await fetch(`http://127.0.0.1:${r.api.port}/metrics`)).text(); // the first request
  expect(metrics.match(/^gpu_bridge_vram_policy_violations_total\{gpu_device="\d",gpu_id="GPU-[^"]+"\} 1$/gm)?.length).toBe(2);
  expect(metrics).toMatch(/^gpu_bridge_vram_policy_last_check_timestamp_seconds \d+(\.\d+)?$/m);
  const startup = changes().filter((c) => c.type === "vram.policy_violation");
  expect(startup.length).toBe(2);
  expect(startup[0]).toMatchObject({
    severity: "critical",
    data: { event: "PolicyViolation", check: "startup", shard_id: null, reason: "a probe allocation: memory type is host, not device" },
  });
  const key1 = (await call("GET", "/v1/vram/attestation-key")).body;
  // (Bun's toMatchObject writes an asymmetric matcher into the object it matched: none on objects used again.)
  expect([key1.algorithm, key1.ephemeral]).toEqual(["Ed25519", false]);
  expect(key1.key_id).toMatch(/^[0-9a-f]{16}$/);
  const keyFile = join(state, "vram-attest.key");
  expect(statSync(keyFile).mode & 0o777).toBe(0o600);
  const keyText = readFileSync(keyFile, "utf8");
  await stop(r);

  // 2. The next start: the same key; a sealed shard's attestation checks against it offline.
  scriptFakes({});
  r = await start(["--vram-policy-check-ms", "50"]);
  call = apiCall(() => r.api);
  const key2 = (await call("GET", "/v1/vram/attestation-key")).body;
  expect(key2).toEqual(key1);
  expect(readFileSync(keyFile, "utf8")).toBe(keyText);
  const gpu = (await call("GET", "/v1/gpus")).body[0].id as string;
  const lease = (await call(
    "POST",
    "/v1/leases",
    JSON.stringify({ gpu_id: gpu, worker_id: "w", mem_mb: 16, streams: 1, ttl_s: 600, priority: 1 }),
    "application/json",
  )).body;
  const sealed = await call("POST", `/v1/leases/${lease.id}/shards?shard_id=p-0`, pattern(10_000), "application/octet-stream");
  expect(sealed.status).toBe(201);
  const att = (await call("GET", "/v1/shards/p-0/attestation")).body;
  expect(att.statement).toMatchObject({ shard_id: "p-0", backend: "cuda", key_id: key1.key_id, policy: { status: "enforced" } });
  const pub = createPublicKey({ key: Buffer.from(key1.public_key_pem), format: "pem" });
  const message = Buffer.from(canonicalJson(att.statement));
  expect(verify(null, message, pub, Buffer.from(att.signature.value, "base64"))).toBe(true);
  expect(verify(null, Buffer.from(canonicalJson({ ...att.statement, shard_id: "p-1" })), pub, Buffer.from(att.signature.value, "base64")))
    .toBe(false);
  const dir = tempFolder("gbh-policy-files-");
  writeFileSync(join(dir, "att.json"), JSON.stringify(att));
  writeFileSync(join(dir, "key.json"), JSON.stringify(key2));
  const cli = memoryStdio();
  expect(await main(["vram", "attest-verify", join(dir, "att.json"), "--key", join(dir, "key.json")], {}, cli.io)).toBe(0);
  expect(cli.out.join("")).toContain(`policy   vram-only: enforced`);

  // 3. The shard's memory turns up as host memory: the periodic check fails it.
  const ordinal = sealed.body.gpu_device as number;
  scriptFakes({ pointer_type: 1, pointer_devices: ordinal });
  await until(() => r.bridge.vram.store!.get("p-0")!.state === "FAILED", 10_000, "the periodic check to fail the shard");
  expect((await call("GET", "/v1/shards/p-0")).body).toMatchObject({
    state: "FAILED",
    failure: "the VRAM-only policy check failed: memory type is host, not device",
  });
  expect((await call("POST", "/v1/shards/p-0/execute-check")).body).toMatchObject({ ok: false, code: "seal_verification_failed" });
  expect((await call("GET", `/v1/leases/${lease.id}/ready`)).body).toMatchObject({ ready: false });
  const periodic = changes().filter((c) => c.type === "vram.policy_violation" && c.data.check === "periodic");
  expect(periodic).toMatchObject([{
    severity: "critical",
    lease_id: lease.id,
    gpu_id: gpu,
    data: { event: "PolicyViolation", shard_id: "p-0", gpu_device: ordinal, reason: "memory type is host, not device", worker_id: "w" },
  }]);
  const after = await (await fetch(`http://127.0.0.1:${r.api.port}/metrics`)).text();
  expect(after).toContain(`gpu_bridge_vram_policy_violations_total{gpu_device="${ordinal}",gpu_id="${gpu}"} 1\n`);
  await stop(r);
});
