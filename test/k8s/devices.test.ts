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
