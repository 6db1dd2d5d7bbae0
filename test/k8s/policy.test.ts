/**
 * Kubernetes allocations are leases like any other: the lease policy holds them too. An Allocate
 * whose lease would pass --max-lease-mem-mb is refused with the policy's message, and the k8s
 * leases' TTL (renewed while a pod holds them) stays within --max-ttl-s.
 */
import { afterEach, expect, test } from "bun:test";
import { until } from "../helpers.ts";
import { type K8sRig, k8sRig, UUID0 } from "./fixture.ts";

let rig: K8sRig | null = null;
afterEach(async () => {
  await rig?.bridge.stop();
  await rig?.kubelet.stop();
  rig = null;
});

test("an Allocate over max-lease-mem-mb is refused naming it; one within is granted for a TTL within max-ttl-s", async () => {
  rig = await k8sRig(["--k8s-share", "2", "--max-lease-mem-mb", "12288", "--max-ttl-s", "600"]);
  await until(() => rig!.kubelet.registrations.length === 1, 5000, "registration");
  const client = rig.kubelet.plugin();
  try {
    // Both shares of GPU-0 in one container: one lease of 24576 MiB.
    await expect(client.allocate([[`${UUID0}::0`, `${UUID0}::1`]])).rejects.toThrow(
      "mem_mb 24576 is over max-lease-mem-mb 12288 (a serve flag and --config key)",
    );
    expect(rig.bridge.leases.live()).toEqual([]);
    await client.allocate([[`${UUID0}::0`]]);
    expect(rig.bridge.leases.live().map((l) => [l.worker_id, l.mem_mb, l.ttl_s])).toEqual([[`k8s.${UUID0}.0`, 12288, 600]]);
  } finally {
    client.close();
  }
});
