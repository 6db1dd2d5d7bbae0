/** Node Feature Discovery labels: what they say, that each is a valid label, and when the file is written. */
import { expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MOCK_GPUS, mockStats } from "../../src/inventory/mock.ts";
import { labelValue, nfdFeatures, NfdFile } from "../../src/k8s/nfd.ts";
import { memoryLogger, tempFolder, until } from "../helpers.ts";
import { k8sRig, RESOURCE } from "./fixture.ts";

const parse = (text: string) => Object.fromEntries(text.trimEnd().split("\n").map((l) => l.split("=") as [string, string]));
/** Kubernetes' rules: a prefixed name (DNS subdomain / up to 63 name characters) and a value of up to 63. */
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

test("the labels: product, memory, count, compute capability, driver, CUDA, MIG and sharing", () => {
  const stats = mockStats().map((s, i) => ({ ...s, mig_mode: i === 1 ? "enabled" as const : "disabled" as const }));
  const labels = parse(nfdFeatures({ resource: RESOURCE, gpus: MOCK_GPUS, stats, share: 4 }));
  expect(labels).toEqual({
    "cohesix.io/gpu.present": "true",
    "cohesix.io/gpu.count": "2",
    "cohesix.io/gpu.product": "Mock-4090",
    "cohesix.io/gpu.memory": "24576",
    "cohesix.io/gpu.product.mixed": "true",
    "cohesix.io/gpu.compute.major": "8",
    "cohesix.io/gpu.compute.minor": "9",
    "cohesix.io/gpu.driver.version": "555.0",
    "cohesix.io/gpu.driver.major": "555",
    "cohesix.io/gpu.cuda.runtime.version": "12.4",
    "cohesix.io/gpu.mig.capable": "true",
    "cohesix.io/gpu.mig.enabled": "true",
    "cohesix.io/gpu.sharing.replicas": "4",
  });
  for (const [k, v] of Object.entries(labels)) {
    expect(k).toMatch(NAME);
    expect(v).toMatch(VALUE);
  }
  expect(nfdFeatures({ resource: RESOURCE, gpus: [], stats: [], share: 1 })).toBe("");
});

test("label values are cut and cleaned to Kubernetes' rules", () => {
  expect(labelValue("NVIDIA H100 80GB HBM3")).toBe("NVIDIA-H100-80GB-HBM3");
  expect(labelValue("(weird) name!")).toBe("weird-name");
  expect(labelValue("x".repeat(80))).toHaveLength(63);
});

test("the file is replaced only when a label changes, leaves no temporary file, and goes when asked", () => {
  const dir = tempFolder("gbh-nfd-");
  const path = join(dir, "features.d", "gpu-bridge-host");
  const { log, lines } = memoryLogger();
  const f = new NfdFile(path, log);
  const input = { resource: RESOURCE, gpus: MOCK_GPUS, stats: mockStats(), share: 1 };
  f.update(input);
  f.update(input);
  expect(lines.filter((l) => l.includes("NFD labels written"))).toHaveLength(1);
  expect(parse(readFileSync(path, "utf8"))["cohesix.io/gpu.count"]).toBe("2");
  f.update({ ...input, gpus: MOCK_GPUS.slice(0, 1) });
  expect(parse(readFileSync(path, "utf8"))["cohesix.io/gpu.count"]).toBe("1");
  expect(readdirSync(join(dir, "features.d"))).toEqual(["gpu-bridge-host"]);
  f.remove();
  expect(existsSync(path)).toBe(false);
});

test("serve --nfd-file writes the labels at start and removes them at stop", async () => {
  const path = join(tempFolder("gbh-nfd-serve-"), "features.d", "gpu-bridge-host");
  const rig = await k8sRig(["--nfd-file", path, "--k8s-share", "2"]);
  await until(() => existsSync(path), 2000, "the feature file");
  expect(parse(readFileSync(path, "utf8"))).toMatchObject({ "cohesix.io/gpu.count": "2", "cohesix.io/gpu.sharing.replicas": "2" });
  await rig.bridge.stop();
  await rig.kubelet.stop();
  expect(existsSync(path)).toBe(false);
});
