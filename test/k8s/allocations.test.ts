/** Allocations as leases, on a fake clock over a real lease manager: no sockets. */
import { expect, test } from "bun:test";
import { AllocateError, Allocations, POD_GONE } from "../../src/k8s/allocations.ts";
import { advertised, type PluginGpu } from "../../src/k8s/devices.ts";
import { LeaseManager } from "../../src/lease/manager.ts";
import { LeaseError } from "../../src/lease/types.ts";
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

test("refusals say which device and why", () => {
  const t = setup(2);
  const message = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return (e as Error).message;
    }
    return "";
  };
  expect(message(() => t.a.allocate([["GPU-zzzz::0"]], t.devices))).toBe('Cannot allocate "GPU-zzzz::0": no such device on this node');
  expect(message(() => t.a.allocate([["GPU-bbbb::1"]], t.devices))).toBe('Cannot allocate "GPU-bbbb::1": the device is Unhealthy');
  expect(message(() => t.a.allocate([["GPU-aaaa::1", "GPU-aaaa::1"]], t.devices))).toBe('Cannot allocate "GPU-aaaa::1": asked for twice');
  expect(message(() => t.a.allocate([[]], t.devices))).toBe("Cannot allocate: a container request names no device");
  const [g] = t.a.allocate([["GPU-aaaa::0"]], t.devices);
  expect(message(() => t.a.allocate([["GPU-aaaa::0"]], t.devices))).toBe(
    `Cannot allocate "GPU-aaaa::0": it is held by lease ${g!.leases[0]!.id}`,
  );
  const gone = new Allocations({ leases: t.leases, clock: t.clock, share: 2, graceMs: 1, memoryOf: () => undefined });
  expect(message(() => gone.allocate([["GPU-aaaa::1"]], t.devices))).toBe("Cannot allocate GPU-aaaa::1: GPU GPU-0 is not in the inventory");
  expect(code(() => gone.allocate([["GPU-aaaa::1"]], t.devices))).toBe("unknown");
  t.leases.grant({ gpu_id: "GPU-0", worker_id: "api", mem_mb: 500, streams: 1, ttl_s: 60, priority: 0 });
  const refused = message(() => t.a.allocate([["GPU-aaaa::1"]], t.devices));
  expect(refused).toStartWith("Cannot allocate GPU-aaaa::1: the lease on GPU-0 was refused: ");
  try {
    t.a.allocate([["GPU-aaaa::1"]], t.devices);
  } catch (e) {
    expect((e as Error).cause).toBeInstanceOf(LeaseError);
    expect((e as Error).name).toBe("AllocateError");
  }
  expect(refused.length).toBeGreaterThan("Cannot allocate GPU-aaaa::1: the lease on GPU-0 was refused: ".length);
});

test("one container's devices on two GPUs make two leases; each lease's devices are its own", () => {
  const GPUS2: PluginGpu[] = GPUS.map((g) => ({ ...g, healthy: true }));
  const t = setup(2);
  const devices = advertised(GPUS2, 2);
  const [g] = t.a.allocate([["GPU-aaaa::1", "GPU-bbbb::0", "GPU-aaaa::0"]], devices);
  expect(g!.leases.map((l) => [l.gpu_id, l.worker_id, l.mem_mb])).toEqual([["GPU-0", "k8s.GPU-aaaa.1", 1000], [
    "GPU-1",
    "k8s.GPU-bbbb.0",
    400,
  ]]);
  expect(t.a.holder("GPU-aaaa::0")?.leaseId).toBe(g!.leases[0]!.id);
  expect(t.a.holder("GPU-bbbb::0")?.leaseId).toBe(g!.leases[1]!.id);
  expect(t.a.holder("GPU-bbbb::1")).toBeUndefined();
  // A lease one of whose devices is still held stays.
  t.clock.advance(5000);
  expect(t.a.reconcile([["GPU-aaaa::0"]], devices).released).toEqual([g!.leases[1]!.id]);
  expect(t.leases.get(g!.leases[0]!.id)?.state).toBe("ACTIVE");
});

test("reconcile rebuilds a lease for held devices no allocation covers, and adds held devices to their GPU's allocation", () => {
  const t = setup(2);
  // The journal's lease, naming only its first device.
  const journalled = t.leases.grant({ gpu_id: "GPU-0", worker_id: "k8s.GPU-aaaa.0", mem_mb: 1000, streams: 1, ttl_s: 60, priority: 0 });
  t.a.adoptLive();
  const healthy = advertised(GPUS.map((g) => ({ ...g, healthy: true })), 2);
  const r = t.a.reconcile([["GPU-aaaa::0", "GPU-aaaa::1"], ["GPU-bbbb::1"], ["GPU-unknown::0"]], healthy);
  expect(r.released).toEqual([]);
  expect(r.rebuilt).toHaveLength(1);
  expect(t.a.holder("GPU-aaaa::1")?.leaseId).toBe(journalled.id);
  const rebuilt = t.leases.get(r.rebuilt[0]!)!;
  expect(rebuilt).toMatchObject({ gpu_id: "GPU-1", worker_id: "k8s.GPU-bbbb.1", mem_mb: 400 });
  // The next reading changes nothing: no second lease for the same devices.
  expect(t.a.reconcile([["GPU-aaaa::0", "GPU-aaaa::1"], ["GPU-bbbb::1"]], healthy)).toEqual({ released: [], rebuilt: [] });
  expect(t.leases.live()).toHaveLength(2);
  // A device held beside another GPU's allocation is not added to it.
  t.a.reconcile([["GPU-aaaa::0", "GPU-bbbb::0"]], healthy);
  expect(t.a.holder("GPU-bbbb::0")?.gpuId).toBe("GPU-1");
  expect(t.a.holder("GPU-bbbb::0")?.leaseId).not.toBe(journalled.id);
});

test("a rebuild the lease manager refuses is left for the next reading", () => {
  const t = setup(1);
  const healthy = advertised(GPUS.map((g) => ({ ...g, healthy: true })), 1);
  const api = t.leases.grant({ gpu_id: "GPU-0", worker_id: "api", mem_mb: 1, streams: 1, ttl_s: 60, priority: 0 });
  expect(t.a.reconcile([["GPU-aaaa"]], healthy).rebuilt).toEqual([]);
  t.leases.release(api.id, "done");
  expect(t.a.reconcile([["GPU-aaaa"]], healthy).rebuilt).toHaveLength(1);
});

test("an allocation whose lease ended elsewhere is forgotten at the next reading", () => {
  const t = setup();
  const [g] = t.a.allocate([["GPU-aaaa"]], t.devices);
  t.leases.release(g!.leases[0]!.id, "operator"); // no plugin listening here to forget it
  expect(t.a.holder("GPU-aaaa")).toBeDefined();
  t.a.reconcile([], t.devices);
  expect(t.a.holder("GPU-aaaa")).toBeUndefined();
  expect(t.a.list()).toEqual([]);
});

test("renewal happens once less than half the TTL is left, not at exactly half", () => {
  const t = setup();
  const [g] = t.a.allocate([["GPU-aaaa"]], t.devices);
  const lease = g!.leases[0]!;
  const granted = lease.expires_at;
  t.clock.advance((t.a.ttlS / 2) * 1000); // exactly half left
  t.a.reconcile([["GPU-aaaa"]], t.devices);
  expect(t.leases.get(lease.id)!.expires_at).toBe(granted);
  t.clock.advance(1);
  t.a.reconcile([["GPU-aaaa"]], t.devices);
  expect(t.leases.get(lease.id)!.expires_at).toBe(t.clock.now() + t.a.ttlS * 1000);
});

test("releaseUnheld keeps a holder one of whose devices is still listed", () => {
  const t = setup(2);
  const [g] = t.a.allocate([["GPU-aaaa::0", "GPU-aaaa::1"]], t.devices);
  expect(t.a.releaseUnheld([["GPU-aaaa::1"]], ["GPU-aaaa::0"])).toEqual([]);
  expect(t.a.releaseUnheld([], ["GPU-aaaa::0", "GPU-zzzz::0"])).toEqual([g!.leases[0]!.id]);
  expect(t.leases.get(g!.leases[0]!.id)?.released_reason).toBe(POD_GONE);
});

test("forget leaves a device another allocation took since alone", () => {
  const t = setup(2);
  const [g] = t.a.allocate([["GPU-aaaa::0"]], t.devices);
  t.a.forget("no-such-lease");
  expect(t.a.holder("GPU-aaaa::0")?.leaseId).toBe(g!.leases[0]!.id);
});
