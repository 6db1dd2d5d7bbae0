/**
 * The device plugin end to end: the bridge on the mock GPUs, a stub kubelet over the real
 * .proto files on Unix sockets in a temporary folder, the CDI spec on disk.
 */
import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { grpc } from "../../src/k8s/grpc.ts";
import { socketName } from "../../src/k8s/plugin.ts";
import type { PluginClient } from "../../mock/kubelet/stub.ts";
import { createApp } from "../../src/api/app.ts";
import { memoryLogger, until } from "../helpers.ts";
import { type K8sRig, k8sRig, RESOURCE, UUID0, UUID1 } from "./fixture.ts";

let rig: K8sRig | null = null;
let client: PluginClient | null = null;
afterEach(async () => {
  client?.close();
  client = null;
  await rig?.bridge.stop();
  await rig?.kubelet.stop();
  rig = null;
});

async function started(extra: string[] = []): Promise<{ rig: K8sRig; client: PluginClient }> {
  rig = await k8sRig(extra);
  await until(() => rig!.kubelet.registrations.length === 1, 5000, "registration");
  client = rig.kubelet.plugin();
  return { rig, client };
}

function specDevices(rig: K8sRig): { name: string; containerEdits: { env?: string[] } }[] {
  return JSON.parse(readFileSync(join(rig.cdiDir, "gpu-bridge-host.json"), "utf8")).devices;
}

test("registers v1beta1 with the resource name, its own socket and GetPreferredAllocation on", async () => {
  const { rig, client } = await started();
  expect(rig.kubelet.registrations[0]).toEqual({
    version: "v1beta1",
    endpoint: socketName(RESOURCE),
    resource_name: RESOURCE,
    options: { pre_start_required: false, get_preferred_allocation_available: true },
  });
  expect(await client.options()).toEqual({ pre_start_required: false, get_preferred_allocation_available: true });
});

test("ListAndWatch sends every GPU by UUID with its NUMA node at once", async () => {
  const { client } = await started();
  const watch = client.watch();
  const first = await watch.until(() => true);
  expect(first).toEqual([
    { ID: UUID0, health: "Healthy", topology: { nodes: [{ ID: 0 }] } },
    { ID: UUID1, health: "Healthy", topology: { nodes: [{ ID: 1 }] } },
  ]);
  watch.cancel();
});

test("Allocate makes a lease of the whole GPU and answers with its CDI device, written before the reply", async () => {
  const { rig, client } = await started();
  const reply = await client.allocate([[UUID1]]);
  const leases = rig.bridge.leases.live();
  expect(leases).toHaveLength(1);
  const lease = leases[0]!;
  expect(lease).toMatchObject({ gpu_id: "GPU-1", worker_id: `k8s.${UUID1}`, mem_mb: 8192 });
  expect(reply.container_responses).toHaveLength(1);
  const r = reply.container_responses[0]!;
  expect(r.cdi_devices).toEqual([{ name: `cohesix/gpu=${lease.id}` }]);
  // No environment that could widen what the container sees (NVIDIA_VISIBLE_DEVICES=all and the like).
  expect(r.envs).toEqual({});
  const device = specDevices(rig).find((d) => d.name === lease.id);
  expect(device?.containerEdits.env).toContain(`GPU_BRIDGE_LEASE_ID=${lease.id}`);
});

test("an unknown, taken or unhealthy device fails the whole Allocate with a gRPC status and a fresh list", async () => {
  const { rig, client } = await started();
  const watch = client.watch();
  await watch.until(() => true);
  const unknown = await client.allocate([[UUID0], ["GPU-nope"]]).catch((e) => e as grpc.ServiceError);
  expect((unknown as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  expect((unknown as grpc.ServiceError).details).toContain("GPU-nope");
  expect(rig.bridge.leases.live()).toEqual([]); // nothing of the failed request stays
  await until(() => watch.lists.length >= 2, 2000, "a fresh list after the failure");

  await client.allocate([[UUID0]]);
  rig.kubelet.pods = [{ name: "a", containers: { main: { [RESOURCE]: [UUID0] } } }];
  const taken = await client.allocate([[UUID0]]).catch((e) => e as grpc.ServiceError);
  expect((taken as grpc.ServiceError).code).toBe(grpc.status.FAILED_PRECONDITION);
  expect((taken as grpc.ServiceError).details).toContain("held by lease");
  expect(rig.bridge.leases.live()).toHaveLength(1);

  rig.backend.silent.add("GPU-1");
  await watch.until((l) => l.some((d) => d.ID === UUID1 && d.health === "Unhealthy"), 2000);
  const sick = await client.allocate([[UUID1]]).catch((e) => e as grpc.ServiceError);
  expect((sick as grpc.ServiceError).code).toBe(grpc.status.FAILED_PRECONDITION);
  expect((sick as grpc.ServiceError).details).toContain("Unhealthy");
  watch.cancel();
});

test("a GPU that stops answering is Unhealthy within two seconds and Healthy again when it answers", async () => {
  const { rig, client } = await started();
  const watch = client.watch();
  await watch.until(() => true);
  const lost = Date.now();
  rig.backend.silent.add("GPU-0");
  await watch.until((l) => l.find((d) => d.ID === UUID0)?.health === "Unhealthy", 2000);
  expect(Date.now() - lost).toBeLessThan(2000);
  rig.backend.silent.delete("GPU-0");
  const back = await watch.until((l) => l.length > 0 && l === watch.lists.at(-1) && l.every((d) => d.health === "Healthy"), 2000);
  expect(back.map((d) => d.ID)).toEqual([UUID0, UUID1]);
  expect(rig.lines.some((l) => l.includes("is Healthy again"))).toBe(true);
  watch.cancel();
});

test("a lease no pod holds any more is released after the grace period; one held stays", async () => {
  const { rig, client } = await started();
  await client.allocate([[UUID0], [UUID1]]);
  const [l0, l1] = rig.bridge.leases.live();
  rig.kubelet.pods = [{ name: "a", containers: { c0: { [RESOURCE]: [UUID0] }, c1: { [RESOURCE]: [UUID1] } } }];
  await Bun.sleep(600); // two grace periods with both held
  expect(rig.bridge.leases.live()).toHaveLength(2);
  rig.kubelet.pods = [{ name: "a", containers: { c0: { [RESOURCE]: [UUID0] } } }];
  await until(() => rig.bridge.leases.get(l1!.id)?.state === "RELEASED", 3000, "the release");
  expect(rig.bridge.leases.get(l1!.id)?.released_reason).toBe("k8s-pod-gone");
  expect(rig.bridge.leases.get(l0!.id)?.state).toBe("ACTIVE");
  // Its device is free for the next pod at once.
  await client.allocate([[UUID1]]);
});

test("a device freed by the kubelet can be allocated again before the grace period ends", async () => {
  const { rig, client } = await started();
  await client.allocate([[UUID0]]);
  rig.kubelet.pods = [{ name: "a", containers: { c: { [RESOURCE]: [UUID0] } } }];
  await Bun.sleep(250);
  rig.kubelet.pods = []; // the pod ended; the kubelet hands the device out again straight away
  await client.allocate([[UUID0]]);
  const live = rig.bridge.leases.live();
  expect(live).toHaveLength(1);
});

test("a silent PodResources releases nothing", async () => {
  const { rig, client } = await started();
  await client.allocate([[UUID0]]);
  rig.kubelet.podResourcesDown = true;
  await Bun.sleep(800);
  expect(rig.bridge.leases.live()).toHaveLength(1);
  expect(rig.lines.some((l) => l.includes("Cannot list PodResources"))).toBe(true);
});

test("after a kubelet restart the plugin serves and registers again within five seconds", async () => {
  const { rig } = await started();
  const t0 = Date.now();
  await rig.kubelet.restart();
  await until(() => rig.kubelet.registrations.length === 2, 5000, "re-registration");
  expect(Date.now() - t0).toBeLessThan(5000);
  client?.close();
  client = rig.kubelet.plugin();
  const watch = client.watch();
  expect((await watch.until(() => true)).map((d) => d.ID)).toEqual([UUID0, UUID1]);
  watch.cancel();
});

test("--k8s-share 4 advertises four devices per GPU; two of one GPU make one lease of half its memory", async () => {
  const { rig, client } = await started(["--k8s-share", "4"]);
  const watch = client.watch();
  const list = await watch.until(() => true);
  expect(list.map((d) => d.ID)).toEqual([0, 1, 2, 3].map((k) => `${UUID0}::${k}`).concat([0, 1, 2, 3].map((k) => `${UUID1}::${k}`)));
  watch.cancel();
  const reply = await client.allocate([[`${UUID0}::2`, `${UUID0}::3`]]);
  const live = rig.bridge.leases.live();
  expect(live).toHaveLength(1);
  expect(live[0]).toMatchObject({ gpu_id: "GPU-0", worker_id: `k8s.${UUID0}.2`, mem_mb: 2 * (24576 / 4) });
  expect(reply.container_responses[0]!.cdi_devices).toEqual([{ name: `cohesix/gpu=${live[0]!.id}` }]);
  // Two other shares of the same GPU go to another pod beside it.
  await client.allocate([[`${UUID0}::0`]]);
  expect(rig.bridge.leases.live()).toHaveLength(2);
});

test("GetPreferredAllocation keeps a request on one GPU and NUMA node and honours must_include", async () => {
  const { client } = await started(["--k8s-share", "2"]);
  const all = [`${UUID0}::0`, `${UUID0}::1`, `${UUID1}::0`, `${UUID1}::1`];
  const reply = await client.preferred([
    { available: all, mustInclude: [`${UUID1}::1`], size: 2 },
    { available: [`${UUID0}::0`, `${UUID1}::0`, `${UUID1}::1`], size: 2 },
  ]);
  expect(reply.container_responses.map((r) => r.deviceIDs)).toEqual([[`${UUID1}::1`, `${UUID1}::0`], [`${UUID1}::0`, `${UUID1}::1`]]);
});

test("a k8s lease shows in the API's leases and /metrics like any other; health turns are counted", async () => {
  const { rig, client } = await started();
  const watch = client.watch();
  await watch.until(() => true);
  await client.allocate([[UUID0]]);
  const app = createApp({ token: "t", log: memoryLogger().log, bridge: rig.bridge });
  const leases = (await (await app.request("/v1/leases")).json()) as { worker_id: string }[] | { leases: { worker_id: string }[] };
  const list = Array.isArray(leases) ? leases : leases.leases;
  expect(list.map((l) => l.worker_id)).toContain(`k8s.${UUID0}`);
  rig.backend.silent.add("GPU-1");
  await watch.until((l) => l.some((d) => d.ID === UUID1 && d.health === "Unhealthy"), 2000);
  const text = await (await app.request("/metrics")).text();
  expect(text).toContain(`gpu_bridge_k8s_device_healthy{gpu="GPU-1",UUID="${UUID1}",resource="${RESOURCE}"} 0\n`);
  expect(text).toContain(`gpu_bridge_k8s_device_healthy{gpu="GPU-0",UUID="${UUID0}",resource="${RESOURCE}"} 1\n`);
  expect(text).toContain(`gpu_bridge_k8s_health_changes_total{gpu="GPU-1",to="unhealthy"} 1\n`);
  expect(text).toContain(`gpu_bridge_k8s_allocations_total{resource="${RESOURCE}"} 1\n`);
  expect(text).toContain(`gpu_bridge_k8s_registered{resource="${RESOURCE}"} 1\n`);
  expect(text).toContain(`gpu_bridge_leases_active{gpu_id="GPU-0"} 1\n`);
  watch.cancel();
});

test("a k8s lease released through the API is leased again while its pod still holds the device", async () => {
  const { rig, client } = await started();
  await client.allocate([[UUID0]]);
  rig.kubelet.pods = [{ name: "a", containers: { c: { [RESOURCE]: [UUID0] } } }];
  const first = rig.bridge.leases.live()[0]!;
  rig.bridge.leases.release(first.id, "operator");
  expect(rig.bridge.k8s!.allocations.holder(UUID0)).toBeUndefined();
  await until(() => rig.bridge.leases.live().length === 1, 2000, "the lease made again");
  const again = rig.bridge.leases.live()[0]!;
  expect(again.id).not.toBe(first.id);
  expect(again.worker_id).toBe(`k8s.${UUID0}`);
  expect(rig.bridge.k8s!.allocations.holder(UUID0)?.leaseId).toBe(again.id);
});

test("a plugin folder it cannot use is said once, and the plugin serves as soon as it can", async () => {
  const { rig } = await started();
  // A file where the plugin's socket folder should be: every round fails the same way.
  await rig.kubelet.stop();
  const { rmSync, writeFileSync } = await import("node:fs");
  rmSync(rig.kubelet.pluginDir, { recursive: true, force: true });
  writeFileSync(rig.kubelet.pluginDir, "not a folder");
  await Bun.sleep(400);
  const said = rig.lines.filter((l) => l.includes("EEXIST"));
  expect(said).toHaveLength(1); // about 8 rounds failed the same way
  rmSync(rig.kubelet.pluginDir);
  await rig.kubelet.start();
  await until(() => rig.kubelet.registrations.length === 2, 3000, "registration once the folder is back");
});
