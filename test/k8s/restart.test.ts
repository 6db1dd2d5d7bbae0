/** After a bridge restart, the leases of devices pods still hold are rebuilt from PodResources: none lost, none doubled. */
import { afterEach, expect, test } from "bun:test";
import { until } from "../helpers.ts";
import { type K8sRig, k8sRig, RESOURCE, UUID0, UUID1 } from "./fixture.ts";

let rig: K8sRig | null = null;
afterEach(async () => {
  await rig?.bridge.stop();
  await rig?.kubelet.stop();
  rig = null;
});

async function allocated(journal: boolean): Promise<K8sRig> {
  rig = await k8sRig(["--k8s-share", "2"], { journal });
  await until(() => rig!.kubelet.registrations.length === 1, 5000, "registration");
  const client = rig.kubelet.plugin();
  await client.allocate([[`${UUID0}::0`, `${UUID0}::1`], [`${UUID1}::0`]]);
  client.close();
  rig.kubelet.pods = [{ name: "a", containers: { c: { [RESOURCE]: [`${UUID0}::0`, `${UUID0}::1`] } } }];
  return rig;
}

test("with the journal: the held lease is kept (its devices learnt again), the unheld one released", async () => {
  const rig = await allocated(true);
  const [held, unheld] = rig.bridge.leases.live();
  await rig.bridge.stop();
  await rig.restart();
  expect(rig.bridge.leases.live().map((l) => l.id).sort()).toEqual([held!.id, unheld!.id].sort());
  await until(() => rig.bridge.leases.get(unheld!.id)?.state === "RELEASED", 3000, "the unheld lease's release");
  await Bun.sleep(400);
  const live = rig.bridge.leases.live();
  expect(live.map((l) => l.id)).toEqual([held!.id]);
  expect(live[0]!.mem_mb).toBe(24576); // both shares, as granted
  // Both shares are known to be held again: neither can be handed out twice.
  expect(rig.bridge.k8s!.allocations.holder(`${UUID0}::1`)?.leaseId).toBe(held!.id);
  const client = rig.kubelet.plugin();
  await expect(client.allocate([[`${UUID0}::1`]])).rejects.toThrow("held by lease");
  client.close();
});

test("without a journal: one lease is rebuilt for the devices still held, and only one", async () => {
  const rig = await allocated(false);
  await rig.bridge.stop();
  await rig.restart();
  await until(() => rig.bridge.leases.live().length === 1, 3000, "the rebuilt lease");
  await Bun.sleep(400);
  const live = rig.bridge.leases.live();
  expect(live).toHaveLength(1);
  expect(live[0]).toMatchObject({ gpu_id: "GPU-0", worker_id: `k8s.${UUID0}.0`, mem_mb: 24576 });
  expect(rig.lines.some((l) => l.includes("rebuilt for devices pods still hold"))).toBe(true);
});
