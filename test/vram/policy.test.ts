/**
 * The VRAM-only policy beyond allocation (src/vram/policy.ts, ShardStore.checkPolicy) on the fake
 * libcuda: a shard sealed as device memory whose allocation later reports host memory is caught
 * by the periodic check (a CRITICAL PolicyViolation, the per-GPU counter, the shard FAILED and
 * its consumers told once), shards on another GPU are untouched, and the start-up probe finds a
 * driver that hands out host memory before anything is sealed.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bunFfi } from "../../ffi/bun.ts";
import { CudaVram } from "../../ffi/cuda-vram.ts";
import type { Lease } from "../../src/lease/types.ts";
import { VramAudit } from "../../src/vram/audit.ts";
import { CudaVramBackend } from "../../src/vram/cuda-backend.ts";
import { HostMemoryVram } from "../../src/vram/host-backend.ts";
import { renderVramMetrics } from "../../src/vram/metrics.ts";
import { pointerView, pointerViolation, PolicyTimer } from "../../src/vram/policy.ts";
import { TREE_PTX } from "../../src/vram/ptx/generated/tree-ptx.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { type Shard, ShardStore } from "../../src/vram/shards.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { activeLease, FakeClock, memoryLogger, tempFolder } from "../helpers.ts";
import { FAKE_CUDA, scriptFakes } from "../inventory/fakes.ts";
import { pattern, source } from "./vectors.ts";

const pool = TreePool.create(1);
const cuda = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
afterAll(() => (pool.close(), cuda.close()));
afterEach(() => scriptFakes({}));

const GPUS = [{ gpu_id: "GPU-0", ordinal: 0 }, { gpu_id: "GPU-1", ordinal: 1 }];

function setup(backend = new CudaVramBackend(cuda, pool)) {
  const dir = tempFolder("vram-policy-");
  const clock = new FakeClock(1_800_000_000_000);
  const failed: Shard[] = [];
  const leases = new Map<string, Lease>([
    ["L0", activeLease({ id: "L0", gpu_id: "GPU-0", worker_id: "w0", mem_mb: 64 })],
    ["L1", activeLease({ id: "L1", gpu_id: "GPU-1", worker_id: "w1", mem_mb: 64 })],
  ]);
  const store = new ShardStore({
    backend,
    audit: new VramAudit(join(dir, "vram-audit.jsonl"), memoryLogger().log, clock.now),
    key: deriveKey("secret", "test"),
    lease: (id) => leases.get(id),
    ordinalOf: (g) => GPUS.find((x) => x.gpu_id === g)?.ordinal,
    pool,
    clock,
    onFailure: (s) => failed.push(s),
  });
  const audit = () =>
    readFileSync(join(dir, "vram-audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  return { store, clock, failed, audit };
}

const metric = (text: string, name: string, gpu: string) =>
  new RegExp(`^${name}\\{gpu_device="${gpu.slice(-1)}",gpu_id="${gpu}"\\} (\\S+)$`, "m").exec(text)?.[1];

describe("the periodic VRAM-only check", () => {
  test("a pointer that turns up as host memory: CRITICAL record, counter, the shard FAILED once; the other GPU's shard stays", async () => {
    scriptFakes({});
    const { store, clock, failed, audit } = setup();
    await store.seal("L0", source(pattern(5000)), { shard_id: "on-0" });
    await store.seal("L1", source(pattern(6000)), { shard_id: "on-1" });
    const timer = new PolicyTimer(store, clock, 30_000, memoryLogger().log);
    timer.start();
    clock.advance(30_000);
    expect(audit().filter((e) => e.event === "PolicyViolation")).toEqual([]);
    expect(store.policyCheckedAt).toBe(clock.now());
    expect(store.get("on-0")!.evidence.checked_at).toBe(clock.now());

    scriptFakes({ pointer_type: 1, pointer_devices: 0 }); // CU_MEMORYTYPE_HOST, on CUDA device 0 only
    clock.advance(29_999);
    expect(store.get("on-0")!.state).toBe("SEALED"); // not before the interval
    clock.advance(1);
    const violations = audit().filter((e) => e.event === "PolicyViolation");
    expect(violations).toEqual([{
      ts: new Date(clock.now()).toISOString(),
      event: "PolicyViolation",
      policy: "vram-only",
      check: "periodic",
      gpu_device: 0,
      shard_id: "on-0",
      gpu_id: "GPU-0",
      lease_id: "L0",
      worker_id: "w0",
      reason: "memory type is host, not device",
      severity: "CRITICAL",
    }]);
    expect(store.get("on-0")).toMatchObject({
      state: "FAILED",
      failure: "the VRAM-only policy check failed: memory type is host, not device",
    });
    expect(store.get("on-1")!.state).toBe("SEALED");
    expect(failed.map((s) => s.shard_id)).toEqual(["on-0"]);
    expect(await store.verify("on-0")).toMatchObject({ ok: false, reason: expect.stringContaining("VRAM-only policy check failed") });
    expect(await store.gate("L0")).toMatchObject({ detail: "SEAL-VERIFICATION-FAILED" });

    const text = renderVramMetrics(store, GPUS);
    expect(metric(text, "gpu_bridge_vram_policy_violations_total", "GPU-0")).toBe("1");
    expect(metric(text, "gpu_bridge_vram_policy_violations_total", "GPU-1")).toBe("0");
    expect(text).toContain(`\ngpu_bridge_vram_policy_last_check_timestamp_seconds ${clock.now() / 1000}\n`);
    expect(text).toContain("# TYPE gpu_bridge_vram_policy_violations_total counter");
    expect(text).toMatch(/^vram_verify_operations_total\{result="fail"\} 0$/m); // a policy failure is not a verification's

    // A failed shard is not reported again at the next check.
    clock.advance(30_000);
    expect(audit().filter((e) => e.event === "PolicyViolation").length).toBe(1);
    expect(failed.length).toBe(1);
    timer.stop();
    expect(clock.pending).toBe(0);
  });

  test("managed memory and an allocation the driver no longer knows are violations too", async () => {
    scriptFakes({});
    const { store } = setup();
    await store.seal("L0", source(pattern(5000)), { shard_id: "m" });
    scriptFakes({ pointer_managed: 1 });
    expect(store.checkPolicy("periodic")).toEqual([{ shard_id: "m", gpu_device: 0, reason: "the allocation is managed (unified) memory" }]);

    scriptFakes({});
    const { store: s2, audit } = setup();
    const held = await s2.seal("L1", source(pattern(5000)), { shard_id: "gone" });
    expect(held.created).toBe(true);
    // A context reset or a foreign free: the driver answers INVALID_VALUE for the pointer.
    const backend = s2.backend as CudaVramBackend;
    const real = backend.pointerEvidence.bind(backend);
    backend.pointerEvidence = () => {
      throw new Error("cuPointerGetAttribute failed: CUDA_ERROR_INVALID_VALUE (1)");
    };
    const found = s2.checkPolicy("periodic");
    backend.pointerEvidence = real;
    expect(found[0]!.reason).toBe(
      "the driver cannot describe the allocation any more: cuPointerGetAttribute failed: CUDA_ERROR_INVALID_VALUE (1)",
    );
    expect(audit().find((e) => e.event === "PolicyViolation")).toMatchObject({ shard_id: "gone", check: "periodic", severity: "CRITICAL" });
  });

  test("a check that throws is logged and the next one still runs", () => {
    const clock = new FakeClock();
    const { log, lines } = memoryLogger();
    let runs = 0;
    const timer = new PolicyTimer(
      {
        checkPolicy: () => {
          runs++;
          throw new Error("boom");
        },
      },
      clock,
      10,
      log,
    );
    timer.start();
    clock.advance(20);
    expect(runs).toBe(2);
    expect(lines.filter((l) => l.includes("The VRAM-only policy check could not run: boom")).length).toBe(2);
    timer.stop();
    expect(() => new PolicyTimer({ checkPolicy: () => null }, clock, 0, log)).toThrow(
      "The VRAM policy check interval must be a positive number of ms, got 0",
    );
    // A check that stops the timer (the bridge closing) arms no further one; 1 ms is an interval.
    let t: PolicyTimer | null = null;
    t = new PolicyTimer({ checkPolicy: () => t!.stop() }, clock, 1, log);
    expect(clock.pending).toBe(0);
    t.start();
    expect(clock.pending).toBe(1);
    clock.advance(1);
    expect(clock.pending).toBe(0);
  });
});

describe("the start-up check", () => {
  test("a probe allocation per GPU: a driver handing out host memory is found before any seal, and the probe is freed", () => {
    scriptFakes({ pointer_type: 1, pointer_devices: 1 });
    const { store, audit } = setup();
    const free = [store.backend.memInfo(0).free, store.backend.memInfo(1).free];
    expect(store.checkPolicy("startup", [0, 1])).toEqual([{ shard_id: null, gpu_device: 1, reason: "memory type is host, not device" }]);
    expect(audit().filter((e) => e.event === "PolicyViolation")).toMatchObject([{
      check: "startup",
      gpu_device: 1,
      shard_id: null,
      reason: "a probe allocation: memory type is host, not device",
      severity: "CRITICAL",
    }]);
    expect([store.backend.memInfo(0).free, store.backend.memInfo(1).free]).toEqual(free);
    expect(store.counters.policy.get(1)).toBe(1);
    expect(store.policyCheckedAt).not.toBeNull();
  });

  test("host memory (--mock) and an integrated GPU are not checked: the policy cannot apply there", async () => {
    const { store, clock } = setup(new HostMemoryVram(() => 1 << 30, pool) as never);
    const { shard } = await store.seal("L0", source(pattern(100)), {});
    expect(shard.evidence).toEqual({ checked_at: clock.now(), pointer: null });
    expect(store.checkPolicy("startup", [0, 1])).toEqual([]);
    scriptFakes({ jetson: 1, pointer_type: 1 });
    const orin = setup();
    expect(orin.store.checkPolicy("startup", [0])).toEqual([]);
  });

  test("a probe the driver refuses is no violation (nothing was placed); one it cannot describe is", () => {
    scriptFakes({ alloc_error: 2 });
    const { store, audit } = setup();
    expect(store.checkPolicy("startup", [0])).toEqual([]);
    scriptFakes({});
    const backend = store.backend as CudaVramBackend;
    const free = backend.memInfo(0).free;
    backend.pointerEvidence = () => {
      throw new Error("cuPointerGetAttribute failed: CUDA_ERROR_INVALID_VALUE (1)");
    };
    expect(store.checkPolicy("startup", [0])).toEqual([{
      shard_id: null,
      gpu_device: 0,
      reason: "the driver cannot describe a new allocation: cuPointerGetAttribute failed: CUDA_ERROR_INVALID_VALUE (1)",
    }]);
    expect(backend.memInfo(0).free).toBe(free);
    expect(audit().filter((e) => e.event === "PolicyViolation").length).toBe(1);
  });

  test("pointerView() shows what the HOST_POINTER query answered, never an address", () => {
    const ev = { memory_type: "device", is_managed: false, host_pointer_query: 1, device_ordinal: 0 };
    expect(pointerView(ev)).toEqual({
      memory_type: "device",
      is_managed: false,
      host_pointer_query: "CUDA_ERROR_INVALID_VALUE",
      device_ordinal: 0,
    });
    expect(pointerView({ ...ev, host_pointer_query: 0 }).host_pointer_query).toBe("a host pointer exists");
    expect(pointerView({ ...ev, host_pointer_query: 201 }).host_pointer_query).toBe("CUresult 201");
  });

  test("pointerViolation() names what is wrong, in the order the seal checks it", () => {
    const ok = { memory_type: "device", is_managed: false, host_pointer_query: 1, device_ordinal: 2 };
    expect(pointerViolation(ok, 2)).toBeNull();
    expect(pointerViolation({ ...ok, memory_type: "unified", is_managed: true }, 2)).toBe("memory type is unified, not device");
    expect(pointerViolation({ ...ok, is_managed: true }, 2)).toBe("the allocation is managed (unified) memory");
    expect(pointerViolation({ ...ok, host_pointer_query: 0 }, 2)).toBe("the allocation has a host pointer");
    expect(pointerViolation(ok, 1)).toBe("the allocation is on device 2, not 1");
  });
});
