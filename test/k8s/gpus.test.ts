/** The node's GPUs as advertised: probed on a fake clock; a Jetson's health read from its sysfs. */
import { expect, test } from "bun:test";
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { GpuInfo } from "../../src/contract/info.ts";
import { emptyStats } from "../../src/inventory/stats.ts";
import { jetsonGpuAnswers, jetsonProbe, NodeGpus, numaNode } from "../../src/k8s/gpus.ts";
import { HealthBook } from "../../src/k8s/health.ts";
import { FakeClock, memoryLogger, REPO, settle, tempFolder } from "../helpers.ts";

const ORIN: GpuInfo = { id: "GPU-0", name: "Orin", memory_mb: 30000, sm_count: 16, driver_version: "36.4", runtime_version: "12.6" };

function node(probe: () => Promise<readonly GpuInfo[]>) {
  const clock = new FakeClock();
  const { log, lines } = memoryLogger();
  const changes: boolean[] = [];
  const gpus = new NodeGpus({
    probe,
    stats: () => [{ ...emptyStats("GPU-0", "Orin", "jetson"), uuid: "GPU-0123" }],
    health: new HealthBook(clock, 1000),
    clock,
    log,
    sysRoot: "/nonexistent",
    probeMs: 1000,
    onHealth: (c) => changes.push(c.healthy),
  });
  return { clock, gpus, lines, changes };
}

test("a Jetson whose GPU devfreq node goes away is Unhealthy at the next probe, and Healthy when it is back", async () => {
  const root = join(tempFolder("gbh-k8s-jetson-"), "orin");
  cpSync(join(REPO, "mock", "jetson", "orin-r36"), root, { recursive: true, verbatimSymlinks: true });
  expect(jetsonGpuAnswers(root)).toBe(true);
  const t = node(jetsonProbe(() => Promise.resolve([ORIN]), root));
  await t.gpus.start();
  expect(t.gpus.list()).toEqual([{ gpuId: "GPU-0", uuid: "GPU-0123", memoryMb: 30000, numa: null, healthy: true }]);
  const link = join(root, "sys/class/devfreq/17000000.gpu");
  const target = join(root, "sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu");
  rmSync(link);
  expect(jetsonGpuAnswers(root)).toBe(false);
  t.clock.advance(1000);
  await settle();
  expect(t.gpus.list()[0]!.healthy).toBe(false); // still listed, Unhealthy
  expect(t.lines.some((l) => l.includes("GPU-0 (GPU-0123) is Unhealthy: does not answer"))).toBe(true);
  cpSync(target, link, { recursive: true }); // back (as a folder: the same files)
  t.clock.advance(1000);
  await settle();
  expect(t.gpus.list()[0]!.healthy).toBe(true);
  expect(t.changes).toEqual([false, true]);
  t.gpus.stop();
  expect(t.clock.pending).toBe(0);
});

test("a probe that throws makes every GPU seen Unhealthy, once said", async () => {
  let fail = false;
  const t = node(() => (fail ? Promise.reject(new Error("NVML: GPU is lost")) : Promise.resolve([ORIN])));
  await t.gpus.start();
  fail = true;
  t.clock.advance(1000);
  await settle();
  t.clock.advance(1000);
  await settle();
  expect(t.gpus.list()[0]!.healthy).toBe(false);
  expect(t.lines.filter((l) => l.includes("Cannot probe the GPUs"))).toHaveLength(1);
  t.gpus.stop();
});

test("the NUMA node comes from sysfs; -1 or no file is unknown", () => {
  const root = tempFolder("gbh-k8s-numa-");
  expect(numaNode(root, "00000000:17:00.0")).toBeNull();
  const dir = join(root, "sys/bus/pci/devices/0000:17:00.0");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "numa_node"), "1\n");
  expect(numaNode(root, "00000000:17:00.0")).toBe(1);
  writeFileSync(join(dir, "numa_node"), "-1\n");
  expect(numaNode(root, "00000000:17:00.0")).toBeNull();
});
