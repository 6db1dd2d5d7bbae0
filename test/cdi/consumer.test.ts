/**
 * A real consumer: the CNCF CDI Go library as Debian packages it (0.5.x, inside podman 4.3),
 * built by scripts/cdi-consumer.sh into build/cdi-load. Our generated specs (discrete, MIG,
 * Jetson, the daemon's with a lease device; JSON and YAML) must load with no error, and its
 * injection of every device must agree with our `cdi apply`.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeSpec, libraryYaml } from "../../src/cdi/codec.ts";
import { statNode } from "../../src/cdi/devnode.ts";
import { generateDiscrete } from "../../src/cdi/generate.ts";
import { readHost } from "../../src/cdi/host.ts";
import { generateCsv, readCsvDir } from "../../src/cdi/jetson.ts";
import { CdiKeeper } from "../../src/cdi/keeper.ts";
import { injectDevices, loadSpecDirs } from "../../src/cdi/registry.ts";
import { nativeYaml } from "../../src/cdi/spec-format.ts";
import type { OciSpec } from "../../src/cdi/schema.ts";
import { LeaseManager } from "../../src/lease/manager.ts";
import { FakeClock, memoryLogger, REPO, tempFolder } from "../helpers.ts";
import { fakeEnv, scriptFakes } from "../inventory/fakes.ts";
import { addMig, canMknod, discreteTree, jetsonTree, SKIP_REASON } from "./fake-tree.ts";

const LOADER = join(REPO, "build", "cdi-load");
const why = !canMknod
  ? SKIP_REASON
  : !existsSync(LOADER)
  ? "no build/cdi-load: Go or the CDI library could not be installed (see scripts/cdi-consumer.sh)"
  : null;
if (why !== null) console.warn(`test/cdi/consumer.test.ts: skipped: ${why}`);

type Oci = OciSpec & { linux?: { devices?: unknown[]; resources?: { devices?: unknown[] } } };
/** What both must agree on. Mounts and env as sets: 0.5.x sorts mounts unstably and appends env. */
const essence = (s: Oci) => ({
  devices: s.linux?.devices ?? [],
  cgroup: s.linux?.resources?.devices ?? [],
  hooks: Object.fromEntries(Object.entries(s.hooks ?? {}).filter(([, v]) => (v as unknown[] | undefined)?.length)),
  mounts: [...(s.mounts ?? [])].sort((a, b) => a.destination.localeCompare(b.destination)),
  env: [...(s.process?.env ?? [])].sort(),
});

describe.skipIf(why !== null)(`the CDI library in Debian's podman 4.3${why === null ? "" : ` (${why})`}`, () => {
  test("loads every spec we generate with no error, and injects every device as we do", async () => {
    scriptFakes({ minors: "0,1" });
    const dir = tempFolder("cdi-consumer-");
    const root = discreteTree();
    addMig(root, 1);
    const roots = { devRoot: root, driverRoot: root, sysRoot: root, hookPath: `${root}/hook/nvidia-cdi-hook` };
    const nvml = await readHost("nvml", root, fakeEnv, memoryLogger().log);
    if (nvml.mode !== "discrete") throw new Error("nvml host is discrete");
    writeFileSync(
      join(dir, "nvidia.yaml"),
      encodeSpec(generateDiscrete(nvml.gpus, { ...roots, kind: "nvidia.com/gpu", driverVersion: nvml.driverVersion }).spec, "yaml"),
    );
    const jetson = jetsonTree();
    writeFileSync(
      join(dir, "tegra.json"),
      encodeSpec(
        generateCsv(readCsvDir(jetson.csvDir), { ...roots, devRoot: jetson.root, driverRoot: jetson.root, kind: "nvidia.com/tegra" }).spec,
        "json",
      ),
    );
    // The daemon's spec, with a live lease's device.
    const clock = new FakeClock();
    const leases = new LeaseManager({ gpus: () => [{ id: "GPU-0", memory_mb: 100 }], clock });
    const host = await readHost("mock", root, {}, memoryLogger().log);
    if (host.mode !== "discrete") throw new Error("mock host is discrete");
    const keeper = new CdiKeeper({
      dir,
      leases,
      clock,
      log: memoryLogger().log,
      generate: () => Promise.resolve(generateDiscrete(host.gpus, { ...roots, kind: "cohesix/gpu", driverVersion: host.driverVersion })),
    });
    await keeper.start();
    const lease = leases.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 10, streams: 1, ttl_s: 60, priority: 1 });

    const run = Bun.spawnSync([LOADER, dir]);
    expect(run.stderr.toString()).toBe("");
    expect(run.exitCode).toBe(0);
    const theirs = JSON.parse(run.stdout.toString()) as Record<string, Oci>;
    const ours = await loadSpecDirs([dir], libraryYaml);
    expect(ours.errors).toEqual([]);
    // The hot path's native YAML parser reads the same devices as the library.
    const fast = await loadSpecDirs([dir], nativeYaml() ?? libraryYaml);
    keeper.stop(); // a stopped keeper removes its spec: every read of the folder is done
    expect(JSON.stringify([...fast.devices.values()].map((d) => d.device))).toBe(
      JSON.stringify([...ours.devices.values()].map((d) => d.device)),
    );
    expect(Object.keys(theirs).sort()).toEqual([...ours.devices.keys()].sort());
    expect(Object.keys(theirs)).toContain("nvidia.com/gpu=MIG-99999999-8888-7777-6666-55554444bbb1");
    expect(Object.keys(theirs)).toContain(`cohesix/gpu=${lease.id}`);
    for (const [name, spec] of Object.entries(theirs)) {
      const mine = injectDevices(ours, { process: { env: ["PATH=/usr/bin"] } }, [name], statNode) as Oci;
      expect({ name, ...essence(spec) }).toEqual({ name, ...essence(mine) });
    }
  });

  test("refuses what we refuse: nvbind's 0.8.0 spec and its prestop hook", () => {
    const dir = tempFolder("cdi-consumer-nvbind-");
    writeFileSync(
      join(dir, "nvbind.json"),
      JSON.stringify({ cdiVersion: "0.8.0", kind: "nvidia.com/gpu", devices: [{ name: "all", containerEdits: { env: ["A=1"] } }] }),
    );
    const run = Bun.spawnSync([LOADER, dir]);
    expect(run.exitCode).toBe(1);
    expect(run.stderr.toString()).toContain("0.8.0");
  });
});
