/** Device ids, worker ids and the allocation hint: pure functions. */
import { expect, test } from "bun:test";
import {
  advertised,
  deviceIdOfWorker,
  type PluginDevice,
  preferredAllocation,
  uuidProblem,
  wireDevice,
  workerIdOf,
} from "../../src/k8s/devices.ts";
import { SAFE_ID } from "../../src/contract/ids.ts";

const UUID = "GPU-fef8089b-4820-abfc-e83e-94318197576e";

test("worker ids are safe ids and name their first device both ways", () => {
  for (const id of [UUID, `${UUID}::0`, `${UUID}::63`]) {
    expect(SAFE_ID.test(workerIdOf(id))).toBe(true);
    expect(deviceIdOfWorker(workerIdOf(id))).toBe(id);
  }
  expect(deviceIdOfWorker("trainer-1")).toBeNull();
  expect(deviceIdOfWorker("k8s.GPU-x.1.2")).toBeNull();
});

test("device ids fit the kubelet's 63 characters; a share adds ::k; NUMA is sent only when known", () => {
  expect(uuidProblem(UUID, 64)).toBeNull();
  expect(uuidProblem("GPU-" + "a".repeat(57), 2)).toContain("longer than 63");
  expect(uuidProblem("GPU 1", 1)).toContain("characters");
  const devices = advertised([{ gpuId: "GPU-0", uuid: UUID, memoryMb: 1, numa: null, healthy: false }], 2);
  expect(devices.map(wireDevice)).toEqual([
    { ID: `${UUID}::0`, health: "Unhealthy" },
    { ID: `${UUID}::1`, health: "Unhealthy" },
  ]);
});

/** GPUs a, b on NUMA 0 and c on NUMA 1, two shares each. */
const DEVICES: PluginDevice[] = advertised([
  { gpuId: "a", uuid: "A", memoryMb: 1, numa: 0, healthy: true },
  { gpuId: "b", uuid: "B", memoryMb: 1, numa: 0, healthy: true },
  { gpuId: "c", uuid: "C", memoryMb: 1, numa: 1, healthy: true },
], 2);
const ALL = DEVICES.map((d) => d.id);

test("must_include first; then the same GPU; then the same NUMA node", () => {
  expect(preferredAllocation({ available: ALL, mustInclude: ["C::1"], size: 2 }, DEVICES)).toEqual(["C::1", "C::0"]);
  expect(preferredAllocation({ available: ALL, mustInclude: ["A::0"], size: 4 }, DEVICES)).toEqual(["A::0", "A::1", "B::0", "B::1"]);
  // B's second share is taken: the second device stays on NUMA 0 rather than moving to C.
  const avail = ["B::0", "C::0", "C::1", "A::1"];
  expect(preferredAllocation({ available: avail, mustInclude: ["B::0"], size: 2 }, DEVICES)).toEqual(["B::0", "A::1"]);
});

test("with nothing chosen, a GPU that can hold the whole request is picked", () => {
  const avail = ["A::0", "B::0", "C::0", "C::1"];
  expect(preferredAllocation({ available: avail, mustInclude: [], size: 2 }, DEVICES).sort()).toEqual(["C::0", "C::1"]);
  expect(preferredAllocation({ available: avail, mustInclude: [], size: 1 }, DEVICES)).toHaveLength(1);
  expect(preferredAllocation({ available: ["A::0"], mustInclude: [], size: 3 }, DEVICES)).toEqual(["A::0"]);
});

test("a device is sent Healthy or Unhealthy, with its NUMA node when known, node 0 included", () => {
  const devices = advertised([
    { gpuId: "GPU-0", uuid: "GPU-a", memoryMb: 1, numa: 0, healthy: true },
    { gpuId: "GPU-1", uuid: "GPU-b", memoryMb: 1, numa: 1, healthy: false },
  ], 1);
  expect(devices.map(wireDevice)).toEqual([
    { ID: "GPU-a", health: "Healthy", topology: { nodes: [{ ID: 0 }] } },
    { ID: "GPU-b", health: "Unhealthy", topology: { nodes: [{ ID: 1 }] } },
  ]);
  expect(uuidProblem("GPU-" + "a".repeat(56), 2)).toBeNull(); // GPU-<56>::1 is exactly 63
  expect(uuidProblem("GPU-" + "a".repeat(57), 2)).not.toBeNull();
  expect(deviceIdOfWorker("xk8s.GPU-a")).toBeNull();
  expect(deviceIdOfWorker("k8s.GPU-a.1x")).toBeNull();
});

test("the hint: the NUMA node with the most available devices first; unknown ids last; must_include kept even when unknown", () => {
  // NUMA 0 has A::0 and B::0 available, NUMA 1 has C::0 only: one device comes from NUMA 0, the busier GPU first.
  expect(preferredAllocation({ available: ["C::0", "A::0", "B::0", "B::1"], mustInclude: [], size: 1 }, DEVICES)).toStrictEqual(["B::0"]);
  expect(preferredAllocation({ available: ["C::0", "C::1", "A::0"], mustInclude: [], size: 1 }, DEVICES)).toStrictEqual(["C::0"]);
  expect(preferredAllocation({ available: ["X::0", "A::0"], mustInclude: [], size: 2 }, DEVICES)).toStrictEqual(["A::0", "X::0"]);
  expect(preferredAllocation({ available: ["X::0", "Y::0"], mustInclude: [], size: 2 }, DEVICES)).toStrictEqual(["X::0", "Y::0"]);
  expect(preferredAllocation({ available: ["A::0", "C::0"], mustInclude: ["Z::9"], size: 2 }, DEVICES)).toStrictEqual(["Z::9", "A::0"]);
  expect(preferredAllocation({ available: ["A::0"], mustInclude: [], size: 3 }, DEVICES)).toStrictEqual(["A::0"]);
  expect(preferredAllocation({ available: ALL, mustInclude: ["A::0", "A::0"], size: 1 }, DEVICES)).toStrictEqual(["A::0"]);
});

test("the hint stays on the chosen GPU even when another GPU of the node has more devices free", () => {
  // must_include A::0; B has two free on the same NUMA node, A one: A::1 keeps the request on one GPU.
  expect(preferredAllocation({ available: ["B::0", "B::1", "A::1"], mustInclude: ["A::0"], size: 2 }, DEVICES)).toStrictEqual([
    "A::0",
    "A::1",
  ]);
});

test("with one device per GPU free, the NUMA node with more of them wins", () => {
  expect(preferredAllocation({ available: ["C::0", "A::0", "B::0"], mustInclude: [], size: 1 }, DEVICES)).toStrictEqual(["A::0"]);
});
