/** The daemon's spec: kept current with the host and the leases, written atomically, served by the API. */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mockBackend } from "../../src/inventory/mock.ts";
import { CdiKeeper, LEASE_ENV } from "../../src/cdi/keeper.ts";
import { loadSpecDirs } from "../../src/cdi/registry.ts";
import type { CdiSpec } from "../../src/cdi/schema.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import { LeaseManager } from "../../src/lease/manager.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, tempFolder } from "../helpers.ts";
import { canMknod, discreteTree, SKIP_REASON } from "./fake-tree.ts";
import { libraryYaml } from "../../src/cdi/codec.ts";

const node = (path: string) => ({ path, type: "c", major: 195, minor: Number(path.slice(-1)) });
/** A host description the test can change: GPUs 0..n-1 and a driver version. */
function fakeHost() {
  const state = { gpus: 2, driver: "555.0", fail: false };
  const generate = () => {
    if (state.fail) return Promise.reject(new Error("NVML: Driver Not Loaded"));
    const devices = Array.from(
      { length: state.gpus },
      (_, i) => ({ name: String(i), containerEdits: { deviceNodes: [node(`/dev/nvidia${i}`)] } }),
    );
    const spec: CdiSpec = {
      cdiVersion: "0.5.0",
      kind: "cohesix/gpu",
      devices: [...devices, { name: "all", containerEdits: { deviceNodes: devices.map((d) => d.containerEdits.deviceNodes[0]!) } }],
      containerEdits: {
        mounts: [{
          hostPath: `/usr/lib/libcuda.so.${state.driver}`,
          containerPath: `/usr/lib/libcuda.so.${state.driver}`,
          options: ["ro", "rbind"],
        }],
      },
    };
    return Promise.resolve({ spec, warnings: [] });
  };
  return { state, generate };
}

function setup() {
  const dir = tempFolder("cdi-keeper-");
  const clock = new FakeClock();
  const leases = new LeaseManager({ gpus: () => [{ id: "GPU-0", memory_mb: 1000 }, { id: "GPU-1", memory_mb: 1000 }], clock });
  const host = fakeHost();
  const { log, lines } = memoryLogger();
  const keeper = new CdiKeeper({ dir, generate: host.generate, leases, log, clock, refreshMs: 1000 });
  const read = () => JSON.parse(readFileSync(keeper.path, "utf8")) as CdiSpec;
  return { dir, clock, leases, host, keeper, read, lines };
}

const grant = (leases: LeaseManager, gpu: string, worker: string) =>
  leases.grant({ gpu_id: gpu, worker_id: worker, mem_mb: 10, streams: 1, ttl_s: 60, priority: 1 });
const flush = () => new Promise((r) => setTimeout(r, 0));

describe("CdiKeeper", () => {
  test("batch() writes the spec once for every lease granted inside it, and it is on disk when batch returns", async () => {
    const t = setup();
    await t.keeper.start();
    const written = () => t.lines.filter((l) => l.includes("written (lease")).length;
    const before = written();
    const ids = t.keeper.batch(() => {
      const a = grant(t.leases, "GPU-0", "b1");
      const b = grant(t.leases, "GPU-1", "b2");
      expect(t.read().devices.map((d) => d.name)).toEqual(["0", "1", "all"]); // not yet
      return [a.id, b.id];
    });
    expect(written()).toBe(before + 1);
    expect(t.read().devices.map((d) => d.name)).toEqual(["0", "1", "all", ...ids]);
    // A batch that throws still writes what happened inside it.
    expect(() =>
      t.keeper.batch(() => {
        t.leases.release(ids[0]!, "done");
        throw new Error("refused");
      })
    ).toThrow("refused");
    expect(t.read().devices.map((d) => d.name)).toEqual(["0", "1", "all", ids[1]!]);
    t.keeper.stop();
  });

  test("a live lease is a device exposing exactly its GPU with its id in the env; it goes when the lease ends", async () => {
    const t = setup();
    await t.keeper.start();
    expect(t.read().devices.map((d) => d.name)).toEqual(["0", "1", "all"]);
    const lease = grant(t.leases, "GPU-1", "w1");
    const dev = t.read().devices.find((d) => d.name === lease.id)!;
    expect(dev.containerEdits).toEqual({ env: [`${LEASE_ENV}=${lease.id}`], deviceNodes: [node("/dev/nvidia1")] });
    expect(t.keeper.deviceFor(lease.id)).toBe(`cohesix/gpu=${lease.id}`);
    // The written file resolves in a consumer's folder scan.
    expect((await loadSpecDirs([t.dir], libraryYaml)).devices.has(`cohesix/gpu=${lease.id}`)).toBe(true);
    t.leases.release(lease.id, "done");
    expect(t.read().devices.map((d) => d.name)).toEqual(["0", "1", "all"]);
    expect(t.keeper.deviceFor(lease.id)).toBeNull();
    // Expiry ends a lease too.
    const short = t.leases.grant({ gpu_id: "GPU-0", worker_id: "w2", mem_mb: 10, streams: 1, ttl_s: 5, priority: 1 });
    expect(t.keeper.deviceFor(short.id)).not.toBeNull();
    t.clock.advance(5000);
    expect(t.keeper.deviceFor(short.id)).toBeNull();
    t.keeper.stop();
  });

  test("rewritten when the driver or the GPU set changes, not otherwise; no temporary files left", async () => {
    const t = setup();
    await t.keeper.start();
    const writes = () => t.lines.filter((l) => l.includes("written")).length;
    expect(writes()).toBe(1);
    t.clock.advance(1000);
    await flush();
    expect(writes()).toBe(1);
    t.host.state.driver = "560.1";
    t.clock.advance(1000);
    await flush();
    expect(writes()).toBe(2);
    expect(t.read().containerEdits!.mounts![0]!.containerPath).toBe("/usr/lib/libcuda.so.560.1");
    t.host.state.gpus = 1;
    t.clock.advance(1000);
    await flush();
    expect(t.read().devices.map((d) => d.name)).toEqual(["0", "all"]);
    expect(t.lines.at(-1)).toContain("the GPU set or the driver changed");
    expect(readdirSync(t.dir)).toEqual(["gpu-bridge-host.json"]);
    t.keeper.stop();
  });

  test("a host that cannot be described has its file removed, and it comes back when it can", async () => {
    const t = setup();
    await t.keeper.start();
    t.host.state.fail = true;
    t.clock.advance(1000);
    await flush();
    expect(existsSync(t.keeper.path)).toBe(false);
    expect(t.keeper.current()).toBeNull();
    expect(t.lines.some((l) => l.includes("Cannot describe the GPUs for CDI: NVML: Driver Not Loaded"))).toBe(true);
    t.host.state.fail = false;
    t.clock.advance(1000);
    await flush();
    expect(t.read().devices).toHaveLength(3);
    t.keeper.stop();
  });

  test("the folder is created when missing (/var/run/cdi often is)", async () => {
    const dir = join(tempFolder("cdi-keeper-"), "var", "run", "cdi");
    const clock = new FakeClock();
    const leases = new LeaseManager({ gpus: () => [], clock });
    const keeper = new CdiKeeper({ dir, generate: fakeHost().generate, leases, log: memoryLogger().log, clock });
    await keeper.start();
    expect(readdirSync(dir)).toEqual(["gpu-bridge-host.json"]);
    keeper.stop();
  });

  test("a stale file from a previous run is replaced at start", async () => {
    const t = setup();
    writeFileSync(
      t.keeper.path,
      JSON.stringify({ cdiVersion: "0.5.0", kind: "cohesix/gpu", devices: [{ name: "lease-gone", containerEdits: { env: ["A=1"] } }] }),
    );
    await t.keeper.start();
    expect(t.read().devices.map((d) => d.name)).toEqual(["0", "1", "all"]);
    t.keeper.stop();
  });
});

describe.skipIf(!canMknod)(`serve --cdi-dir${canMknod ? "" : ` (${SKIP_REASON})`}`, () => {
  test("the daemon writes the spec, leases become devices, GET /v1/cdi and the lease view name them", async () => {
    const root = discreteTree();
    const state = tempFolder("cdi-state-");
    const c = parseCommand([
      "serve",
      "--mock",
      "--listen",
      "127.0.0.1:0",
      "--api-token",
      "tok-0123456789abcdef",
      "--state-dir",
      state,
      "--cdi-dir",
      state,
      "--cdi-root",
      root,
      "--sys-root",
      root,
    ], {});
    if (c.kind !== "serve") throw new Error("expected serve");
    const { log } = memoryLogger();
    const runtime = bunRuntime();
    const daemon = await createBridge(c.options, { runtime, log, backend: mockBackend() }, { noJournal: true });
    const api = await startApi(c.options, daemon, { runtime, log });
    try {
      const file = join(state, "gpu-bridge-host.json");
      expect((JSON.parse(readFileSync(file, "utf8")) as CdiSpec).devices.map((d) => d.name)).toEqual([
        "0",
        "GPU-00000000-0000-4000-8000-000000000000",
        "1",
        "GPU-00000000-0000-4000-8000-000000000001",
        "all",
      ]);
      const base = `http://127.0.0.1:${api.port}`;
      const res = await fetch(`${base}/v1/leases`, {
        method: "POST",
        headers: { authorization: "Bearer tok-0123456789abcdef", "content-type": "application/json" },
        body: JSON.stringify({ gpu_id: "GPU-0", worker_id: "infer", mem_mb: 100, streams: 1, ttl_s: 60, priority: 1 }),
      });
      const lease = await res.json() as { id: string; cdi_device: string };
      expect(res.status).toBe(201);
      expect(lease.cdi_device).toBe(`cohesix/gpu=${lease.id}`);
      const spec = await (await fetch(`${base}/v1/cdi`)).json() as CdiSpec;
      const dev = spec.devices.find((d) => d.name === lease.id)!;
      expect(dev.containerEdits.env).toEqual([
        `GPU_BRIDGE_LEASE_ID=${lease.id}`,
        // the lease's share socket and token (test/vram/share.test.ts checks the mounts)
        "GPU_BRIDGE_SHARE_SOCKET=/run/gpu-bridge/share.sock",
        "GPU_BRIDGE_SHARE_TOKEN_FILE=/run/gpu-bridge/share.token",
      ]);
      expect(dev.containerEdits.deviceNodes!.map((n) => n.path)).toEqual(["/dev/nvidia0", "/dev/dri/card1", "/dev/dri/renderD128"]);
      expect(JSON.parse(readFileSync(file, "utf8"))).toEqual(spec);
      await fetch(`${base}/v1/leases/${lease.id}`, { method: "DELETE", headers: { authorization: "Bearer tok-0123456789abcdef" } });
      const after = await (await fetch(`${base}/v1/leases/${lease.id}`)).json() as Record<string, unknown>;
      expect(after.cdi_device).toBeUndefined();
      expect((JSON.parse(readFileSync(file, "utf8")) as CdiSpec).devices.some((d) => d.name === lease.id)).toBe(false);
    } finally {
      await api.close();
      await daemon.stop();
    }
  });

  test("without --cdi-dir, GET /v1/cdi says how to turn it on", async () => {
    const state = tempFolder("cdi-state-");
    const c = parseCommand(["serve", "--mock", "--listen", "127.0.0.1:0", "--api-token", "tok-0123456789abcdef", "--state-dir", state], {});
    if (c.kind !== "serve") throw new Error("expected serve");
    const { log } = memoryLogger();
    const runtime = bunRuntime();
    const daemon = await createBridge(c.options, { runtime, log, backend: mockBackend() }, { noJournal: true });
    const api = await startApi(c.options, daemon, { runtime, log });
    try {
      const res = await fetch(`http://127.0.0.1:${api.port}/v1/cdi`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain("serve --cdi-dir DIR");
    } finally {
      await api.close();
      await daemon.stop();
    }
  });
});
