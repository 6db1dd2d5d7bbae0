/**
 * Health from NVML's events on the fake libnvidia-ml (mock/native/fake_nvml.c scripts them): a
 * critical XID or a double-bit ECC error marks the GPU Unhealthy within two seconds, an ignored
 * XID or a corrected error does not, and the GPU is Healthy again --k8s-recover-ms after its last
 * critical event, with no restart. A lost GPU (NVML's GPU_IS_LOST) is Unhealthy too.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { loadFfiAdapter } from "../../ffi/loader.ts";
import { openNativeBackend } from "../../src/inventory/native.ts";
import type { DeviceWatch, PluginClient } from "../../mock/kubelet/stub.ts";
import { until } from "../helpers.ts";
import { FAKE_NVML, fakeEnv, scriptFakes } from "../inventory/fakes.ts";
import { type K8sRig, k8sRig } from "./fixture.ts";

const A100 = "GPU-11111111-2222-3333-4444-55556666aaaa";
const H100 = "GPU-99999999-8888-7777-6666-55554444bbbb";
let rig: K8sRig;
let client: PluginClient;
let watch: DeviceWatch;
const events: string[] = [];
const savedLib = process.env.GPU_BRIDGE_NVML_LIB;

/** Makes NVML events happen, in order, on top of those before. */
function happen(...more: string[]): void {
  events.push(...more);
  scriptFakes({ events: events.join(",") });
}

const healthOf = (uuid: string) => watch.lists.at(-1)?.find((d) => d.ID === uuid)?.health;

beforeAll(async () => {
  scriptFakes({});
  process.env.GPU_BRIDGE_NVML_LIB = FAKE_NVML; // the plugin's own NVML handle for events
  const backend = openNativeBackend({ kind: "nvml", adapter: await loadFfiAdapter(), env: fakeEnv, sysRoot: "/" });
  rig = await k8sRig(["--k8s-recover-ms", "800", "--k8s-ignored-xids", "13,43"], { backend });
  await until(() => rig.kubelet.registrations.length === 1, 5000, "registration");
  client = rig.kubelet.plugin();
  watch = client.watch();
  await watch.until((l) => l.length === 2);
});

afterAll(async () => {
  watch.cancel();
  client.close();
  await rig.bridge.stop();
  await rig.kubelet.stop();
  scriptFakes({});
  if (savedLib === undefined) delete process.env.GPU_BRIDGE_NVML_LIB;
  else process.env.GPU_BRIDGE_NVML_LIB = savedLib;
});

test("the GPUs are listed by NVML's UUIDs, both Healthy", () => {
  expect(watch.lists.at(-1)).toEqual([
    { ID: A100, health: "Healthy", topology: null },
    { ID: H100, health: "Healthy", topology: null },
  ]);
});

test("a critical XID: Unhealthy within two seconds, Healthy again after --k8s-recover-ms", async () => {
  const t0 = Date.now();
  happen("1:8:79"); // XID 79: fallen off the bus
  await until(() => healthOf(H100) === "Unhealthy", 2000, "H100 Unhealthy");
  expect(Date.now() - t0).toBeLessThan(2000);
  expect(healthOf(A100)).toBe("Healthy");
  expect(rig.lines.some((l) => l.includes("is Unhealthy: XID 79"))).toBe(true);
  await until(() => healthOf(H100) === "Healthy", 3000, "H100 Healthy again");
  expect(Date.now() - t0).toBeGreaterThanOrEqual(800);
});

test("an ignored XID and a corrected ECC error change nothing; a double-bit ECC error does", async () => {
  const before = watch.lists.length;
  happen("0:8:43", "0:1:0");
  await Bun.sleep(1200);
  expect(watch.lists.length).toBe(before);
  expect(healthOf(A100)).toBe("Healthy");
  happen("0:2:0");
  await until(() => healthOf(A100) === "Unhealthy", 2000, "A100 Unhealthy on a double-bit error");
  await until(() => healthOf(A100) === "Healthy", 3000, "A100 Healthy again");
});

test("a GPU NVML reports lost is Unhealthy until it answers again", async () => {
  scriptFakes({ events: events.join(","), lost: "0" });
  await until(() => healthOf(A100) === "Unhealthy", 2000, "A100 Unhealthy while lost");
  scriptFakes({ events: events.join(",") });
  await until(() => healthOf(A100) === "Healthy", 2000, "A100 Healthy again");
});
