/** Allocations as leases, on a fake clock over a real lease manager: no sockets. */
import { expect, test } from "bun:test";
import { AllocateError, Allocations, POD_GONE } from "../../src/k8s/allocations.ts";
import { advertised, type PluginGpu } from "../../src/k8s/devices.ts";
import { LeaseManager } from "../../src/lease/manager.ts";
import { FakeClock } from "../helpers.ts";

const GPUS: PluginGpu[] = [
  { gpuId: "GPU-0", uuid: "GPU-aaaa", memoryMb: 1000, numa: 0, healthy: true },
  { gpuId: "GPU-1", uuid: "GPU-bbbb", memoryMb: 800, numa: 1, healthy: false },
];

function setup(share = 1) {
  const clock = new FakeClock();
  const leases = new LeaseManager({ gpus: () => GPUS.map((g) => ({ id: g.gpuId, memory_mb: g.memoryMb })), clock });
  const a = new Allocations({ leases, clock, share, graceMs: 1000, memoryOf: (id) => GPUS.find((g) => g.gpuId === id)?.memoryMb });
  return { clock, leases, a, devices: advertised(GPUS, share) };
}

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as AllocateError).code;
  }
  return null;
};

test("refusals name the device: unknown, unhealthy, asked twice, taken; nothing is granted", () => {
  const t = setup(2);
  expect(code(() => t.a.allocate([["GPU-zzzz::0"]], t.devices))).toBe("unknown");
  expect(code(() => t.a.allocate([["GPU-aaaa::0"], ["GPU-bbbb::0"]], t.devices))).toBe("unhealthy");
  expect(code(() => t.a.allocate([["GPU-aaaa::0"], ["GPU-aaaa::0"]], t.devices))).toBe("invalid");
  expect(code(() => t.a.allocate([[]], t.devices))).toBe("invalid");
  expect(t.leases.live()).toEqual([]);
  t.a.allocate([["GPU-aaaa::0"]], t.devices);
  expect(code(() => t.a.allocate([["GPU-aaaa::1"], ["GPU-aaaa::0"]], t.devices))).toBe("taken");
  expect(t.leases.live()).toHaveLength(1);
});

test("a share is 1/N of the memory; a refused grant takes back the leases made before it", () => {
  const t = setup(4);
  const [g] = t.a.allocate([["GPU-aaaa::0", "GPU-aaaa::1", "GPU-aaaa::2"]], t.devices);
  expect(g!.leases[0]).toMatchObject({ mem_mb: 750, worker_id: "k8s.GPU-aaaa.0" });
  t.leases.grant({ gpu_id: "GPU-0", worker_id: "api", mem_mb: 250, streams: 1, ttl_s: 60, priority: 0 }); // the rest, through the API
  const t2 = setup(1);
  t2.leases.grant({ gpu_id: "GPU-0", worker_id: "api", mem_mb: 1, streams: 1, ttl_s: 60, priority: 0 });
  const healthy = advertised(GPUS.map((x) => ({ ...x, healthy: true })), 1);
  expect(code(() => t2.a.allocate([["GPU-bbbb"], ["GPU-aaaa"]], healthy))).toBe("refused");
  // GPU-bbbb's lease was granted first and given back.
  expect(t2.leases.live().map((l) => l.worker_id)).toEqual(["api"]);
  expect(t2.a.holder("GPU-bbbb")).toBeUndefined();
});

test("reconcile: held devices keep the lease; missing for the grace period releases it", () => {
  const t = setup();
  const [g] = t.a.allocate([["GPU-aaaa"]], t.devices);
  const id = g!.leases[0]!.id;
  t.clock.advance(900);
  expect(t.a.reconcile([], t.devices).released).toEqual([]); // not yet listed: within the grace period
  t.clock.advance(100);
  expect(t.a.reconcile([], t.devices).released).toEqual([id]);
  expect(t.leases.get(id)).toMatchObject({ state: "RELEASED", released_reason: POD_GONE });
  expect(t.a.holder("GPU-aaaa")).toBeUndefined();
});

test("reconcile renews a held lease past half its TTL, so a long pod keeps it", () => {
  const t = setup();
  const [g] = t.a.allocate([["GPU-aaaa"]], t.devices);
  const lease = g!.leases[0]!;
  const first = lease.expires_at;
  t.clock.advance(1000);
  t.a.reconcile([["GPU-aaaa"]], t.devices);
  expect(t.leases.get(lease.id)!.expires_at).toBe(first); // less than half gone: left alone
  t.clock.advance((t.a.ttlS / 2) * 1000);
  t.a.reconcile([["GPU-aaaa"]], t.devices);
  expect(t.leases.get(lease.id)!.expires_at).toBe(t.clock.now() + t.a.ttlS * 1000);
});

test("releaseUnheld frees at once only the holders no pod lists", () => {
  const t = setup(2);
  t.a.allocate([["GPU-aaaa::0"], ["GPU-aaaa::1"]], t.devices);
  const released = t.a.releaseUnheld([["GPU-aaaa::1"]], ["GPU-aaaa::0", "GPU-aaaa::1"]);
  expect(released).toHaveLength(1);
  expect(t.a.holder("GPU-aaaa::0")).toBeUndefined();
  expect(t.a.holder("GPU-aaaa::1")).toBeDefined();
});

test("adoptLive takes the journal's k8s leases and leaves the others alone", () => {
  const t = setup(2);
  t.leases.grant({ gpu_id: "GPU-0", worker_id: "k8s.GPU-aaaa.1", mem_mb: 500, streams: 1, ttl_s: 60, priority: 0 });
  t.leases.grant({ gpu_id: "GPU-0", worker_id: "trainer", mem_mb: 100, streams: 1, ttl_s: 60, priority: 0 });
  expect(t.a.adoptLive()).toBe(1);
  expect(t.a.holder("GPU-aaaa::1")?.gpuId).toBe("GPU-0");
  expect(t.a.list()).toHaveLength(1);
});
