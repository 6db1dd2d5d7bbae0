/** `cdi generate` on fake trees: golden specs, NVML with MIG, CUDA alone, Jetson CSV, output. */
import { beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { decodeSpec, encodeSpec, libraryYaml } from "../../src/cdi/codec.ts";
import { nativeYaml } from "../../src/cdi/spec-format.ts";
import { makeDev, splitDev } from "../../src/cdi/devnode.ts";
import { generateDiscrete } from "../../src/cdi/generate.ts";
import { mockHost, readHost } from "../../src/cdi/host.ts";
import { generateCsv, parseCsv, readCsvDir } from "../../src/cdi/jetson.ts";
import type { CdiSpec } from "../../src/cdi/schema.ts";
import { validateSpec } from "../../src/cdi/validate.ts";
import { main } from "../../src/main.ts";
import { memoryLogger, REPO } from "../helpers.ts";
import { fakeEnv, scriptFakes } from "../inventory/fakes.ts";
import { addMig, canMknod, discreteTree, file, generateArgs, jetsonTree, SKIP_REASON } from "./fake-tree.ts";

const golden = (name: string, subs: Record<string, string>) => {
  let text = readFileSync(join(REPO, "test", "fixtures", "cdi", name), "utf8");
  for (const [k, v] of Object.entries(subs)) text = text.replaceAll(k, v);
  return JSON.parse(text) as CdiSpec;
};
const opts = (root: string) => ({
  devRoot: root,
  driverRoot: root,
  sysRoot: root,
  kind: "nvidia.com/gpu",
  hookPath: `${root}/hook/nvidia-cdi-hook`,
});
const names = (s: CdiSpec) => s.devices.map((d) => d.name);
const errorsOf = (s: CdiSpec, consumerVersion?: string) =>
  validateSpec(s, { file: "gen", ...(consumerVersion !== undefined && { consumerVersion }) }).problems.filter((p) =>
    p.severity === "error"
  );

test("device numbers are split as glibc does: majors above 255 (and 4095) survive", () => {
  expect(splitDev(makeDev(510, 0))).toEqual({ major: 510, minor: 0 });
  expect(splitDev(makeDev(4100, 1_048_000))).toEqual({ major: 4100, minor: 1_048_000 });
  // What nvbind computes, (rdev >> 8) & 0xff, would say 254 for nvidia-uvm.
  expect(Number((makeDev(510, 0) >> 8n) & 0xffn)).toBe(254);
});

describe.skipIf(!canMknod)(`generate on a fake discrete host${canMknod ? "" : ` (${SKIP_REASON})`}`, () => {
  test("the mock backend's spec matches the golden spec and validates, also for a CDI 0.5.0 consumer", () => {
    const root = discreteTree();
    const host = mockHost();
    if (host.mode !== "discrete") throw new Error("mock host is discrete");
    const { spec, warnings } = generateDiscrete(host.gpus, { ...opts(root), driverVersion: host.driverVersion });
    expect(warnings).toEqual([]);
    expect(spec).toEqual(golden("discrete.json", { "@ROOT@": root }));
    expect(errorsOf(spec, "0.5.0")).toEqual([]);
    expect(spec.cdiVersion).toBe("0.5.0"); // device "0" starts with a digit; hostPath too
  });

  test("nvidia-ctk's conventions, checked one by one", () => {
    const root = discreteTree();
    const host = mockHost();
    if (host.mode !== "discrete") throw new Error("mock host is discrete");
    const { spec } = generateDiscrete(host.gpus, { ...opts(root), driverVersion: "555.0" });
    expect(names(spec)).toEqual(["0", "GPU-00000000-0000-4000-8000-000000000000", "1", "GPU-00000000-0000-4000-8000-000000000001", "all"]);
    const g = spec.containerEdits!;
    expect(g.deviceNodes!.map((n) => [n.path, n.major, n.minor])).toEqual([["/dev/nvidiactl", 195, 255], ["/dev/nvidia-uvm", 510, 0], [
      "/dev/nvidia-uvm-tools",
      510,
      1,
    ]]);
    expect(g.mounts!.map((m) => m.containerPath)).toEqual([
      "/usr/lib/x86_64-linux-gnu/libcuda.so.555.0",
      "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.555.0",
      "/usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.555.0",
      "/lib/firmware/nvidia/555.0/gsp_ga10x.bin",
      "/usr/bin/nvidia-smi",
      "/run/nvidia-persistenced/socket",
    ]);
    expect(g.mounts![0]!.options).toEqual(["ro", "nosuid", "nodev", "rbind", "rprivate"]);
    expect(g.mounts![5]!.options).toEqual(["nosuid", "nodev", "rbind", "rprivate", "noexec"]);
    expect(g.mounts!.every((m) => m.type === undefined && m.hostPath === join(root, m.containerPath))).toBe(true);
    expect(g.hooks!.map((h) => [h.hookName, h.args![1]])).toEqual([
      ["createContainer", "create-symlinks"],
      ["createContainer", "enable-cuda-compat"],
      ["createContainer", "update-ldcache"],
      ["createContainer", "disable-device-node-modification"],
    ]);
    expect(g.env).toEqual(["NVIDIA_VISIBLE_DEVICES=void"]);
    // GPU 0's DRM nodes (card, then render; controlD is not a DRM node a container needs).
    expect(spec.devices[0]!.containerEdits.deviceNodes!.map((n) => n.path)).toEqual([
      "/dev/nvidia0",
      "/dev/dri/card1",
      "/dev/dri/renderD128",
    ]);
  });

  test("no hook binary, no hooks; a GPU without its node is left out with a warning", () => {
    const root = discreteTree({ hook: false, minors: [0] });
    const host = mockHost();
    if (host.mode !== "discrete") throw new Error("mock host is discrete");
    const { spec, warnings } = generateDiscrete(host.gpus, { ...opts(root), driverVersion: "555.0" });
    expect(spec.containerEdits!.hooks).toBeUndefined();
    expect(names(spec)).toEqual(["0", "GPU-00000000-0000-4000-8000-000000000000", "all"]);
    expect(warnings).toEqual([`GPU 1 (GPU-00000000-0000-4000-8000-000000000001) left out: no device node /dev/nvidia1 under ${root}`]);
  });

  describe("the NVML backend (fake libnvidia-ml)", () => {
    beforeEach(() => scriptFakes({}));

    test("minors come from NVML, and a GPU in MIG mode gets MIG devices only", async () => {
      scriptFakes({ minors: "0,3" });
      const root = discreteTree({ minors: [0, 3] });
      addMig(root, 3);
      const host = await readHost("nvml", root, fakeEnv, memoryLogger().log);
      if (host.mode !== "discrete") throw new Error("nvml host is discrete");
      expect(host.driverVersion).toBe("550.54.15");
      const { spec } = generateDiscrete(host.gpus, { ...opts(root), driverVersion: host.driverVersion });
      expect(names(spec)).toEqual([
        "0",
        "GPU-11111111-2222-3333-4444-55556666aaaa",
        "1:0",
        "MIG-99999999-8888-7777-6666-55554444bbb1",
        "1:1",
        "MIG-99999999-8888-7777-6666-55554444bbb2",
        "all",
      ]);
      const mig = spec.devices[2]!.containerEdits.deviceNodes!.map((n) => [n.path, n.major, n.minor]);
      expect(mig).toEqual([["/dev/nvidia3", 195, 3], ["/dev/nvidia-caps/nvidia-cap12", 508, 12], [
        "/dev/nvidia-caps/nvidia-cap13",
        508,
        13,
      ]]);
      expect(spec.devices[4]!.containerEdits.deviceNodes!.map((n) => n.minor)).toEqual([3, 30, 31]);
      expect(errorsOf(spec, "0.5.0")).toEqual([]);
    });

    test("a MIG device whose capability node is missing is left out, naming what is missing", async () => {
      const root = discreteTree();
      addMig(root, 1);
      rmSync(join(root, "/dev/nvidia-caps/nvidia-cap31"));
      const host = await readHost("nvml", root, fakeEnv, memoryLogger().log);
      if (host.mode !== "discrete") throw new Error("nvml host is discrete");
      const { spec, warnings } = generateDiscrete(host.gpus, { ...opts(root), driverVersion: host.driverVersion });
      expect(names(spec)).not.toContain("1:1");
      expect(names(spec)).toContain("1:0");
      expect(warnings).toEqual(["MIG device MIG-99999999-8888-7777-6666-55554444bbb2 left out: no /dev/nvidia-caps/nvidia-cap31"]);
    });
  });

  test("the CUDA backend: UUIDs from CUDA, minors from /proc/driver/nvidia/gpus, PCI order", async () => {
    scriptFakes({});
    const root = discreteTree({ minors: [0, 1] });
    file(root, "/proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX x86_64 Kernel Module  555.0  Tue Jan 1 2026\n");
    file(root, "/proc/driver/nvidia/gpus/0000:17:00.0/information", "Model: A100\nDevice Minor: 1\n");
    file(root, "/proc/driver/nvidia/gpus/0000:65:00.0/information", "Model: H100\nDevice Minor: 0\n");
    const host = await readHost("cuda", root, fakeEnv, memoryLogger().log);
    if (host.mode !== "discrete") throw new Error("cuda host is discrete");
    expect(host.gpus.map((g) => [g.index, g.uuid, g.minor])).toEqual([
      [0, "GPU-11111111-2222-3333-4444-55556666aaaa", 1],
      [1, "GPU-99999999-8888-7777-6666-55554444bbbb", 0],
    ]);
    const { spec } = generateDiscrete(host.gpus, { ...opts(root), driverVersion: host.driverVersion });
    expect(spec.devices[0]!.containerEdits.deviceNodes![0]!.path).toBe("/dev/nvidia1");
  });
});

describe.skipIf(!canMknod)(`generate on a fake Jetson${canMknod ? "" : ` (${SKIP_REASON})`}`, () => {
  test("the spec from the CSV files matches the golden spec", () => {
    const { root, csvDir } = jetsonTree();
    const hookRoot = discreteTree();
    const { spec, warnings } = generateCsv(readCsvDir(csvDir), { ...opts(root), hookPath: `${hookRoot}/hook/nvidia-cdi-hook` });
    expect(spec).toEqual(golden("jetson.json", { "@ROOT@": root, "@HOOKROOT@": hookRoot }));
    expect(warnings).toEqual(["no device node matches /dev/nvgpu-absent", "lib /usr/lib/absent.so is not on this host"]);
    expect(names(spec)).toEqual(["0", "all"]);
    expect(errorsOf(spec, "0.5.0")).toEqual([]);
  });
});

test("CSV lines: split at the first comma, trimmed; unknown types and malformed lines skipped", () => {
  expect(parseCsv("dev, /dev/nvmap\n lib ,/usr/lib/a.so, extra\nsym,/l\nweird, /x\nnocomma\ndir, relative\n\n")).toEqual([
    { type: "dev", path: "/dev/nvmap" },
    { type: "lib", path: "/usr/lib/a.so, extra" },
    { type: "sym", path: "/l" },
  ]);
});

describe("round trip", () => {
  const every: CdiSpec = {
    cdiVersion: "1.1.0",
    kind: "example.com/gpu",
    annotations: { "example.com/owner": "bolt" },
    devices: [{
      name: "dev0",
      annotations: { note: "x" },
      containerEdits: {
        env: ["A=1"],
        deviceNodes: [{
          path: "/dev/a",
          hostPath: "/dev/null",
          type: "c",
          major: 1,
          minor: 3,
          fileMode: 438,
          permissions: "rw",
          uid: 1,
          gid: 2,
        }],
        mounts: [{ hostPath: "/h", containerPath: "/c", options: ["ro", "bind"], type: "bind" }],
        hooks: [{ hookName: "poststop", path: "/bin/h", args: ["h", "x"], env: ["B=2"], timeout: 3 }],
        additionalGids: [44],
        intelRdt: {
          closID: "c",
          l3CacheSchema: "L3:0=f",
          memBwSchema: "MB:0=50",
          schemata: ["L3:0=f"],
          enableCMT: true,
          enableMBM: false,
          enableMonitoring: true,
        },
        netDevices: [{ hostInterfaceName: "eth1", name: "net0" }],
      },
    }],
    containerEdits: { env: ["G=1"] },
  };

  test("reading a spec with every field and writing it back loses nothing (JSON and YAML)", () => {
    for (const format of ["json", "yaml"] as const) {
      const back = decodeSpec(encodeSpec(every, format), format, `x.${format}`);
      const { spec, problems } = validateSpec(back, { file: "x" });
      expect(problems.filter((p) => p.severity === "error")).toEqual([]);
      expect(spec).toEqual(every);
    }
  });

  test.skipIf(nativeYaml() === null)("Bun's native YAML parser (apply's hot path) reads our YAML as the library does", () => {
    const native = nativeYaml()!;
    const text = encodeSpec(every, "yaml");
    expect(native(text)).toEqual(libraryYaml(text));
    expect(() => native("cdiVersion: 0.5.0\n---\ncdiVersion: 0.6.0\n")).toThrow("several YAML documents");
    expect(() => libraryYaml("a: 1\na: 2\n")).toThrow("Map keys must be unique");
  });

  test("YAML output quotes names that look like numbers and has no aliases", () => {
    const spec: CdiSpec = {
      cdiVersion: "0.5.0",
      kind: "nvidia.com/gpu",
      devices: [{ name: "0", containerEdits: { env: ["A=1"] } }, { name: "all", containerEdits: { env: ["A=1"] } }],
    };
    spec.devices[1] = { name: "all", containerEdits: spec.devices[0]!.containerEdits };
    const text = encodeSpec(JSON.parse(JSON.stringify(spec)), "yaml");
    expect(parseYaml(text).devices[0].name).toBe("0");
    expect(text).not.toContain("*a");
  });
});

describe.skipIf(!canMknod)("the command", () => {
  test("--output is written atomically (no temporary left) and --format yaml parses back to the same spec", async () => {
    const root = discreteTree();
    const out = join(root, "out.yaml");
    writeFileSync(out, "old");
    const args = generateArgs(root);
    expect(await main([...args, "--output", out], {})).toBe(0);
    const spec = parseYaml(readFileSync(out, "utf8"));
    expect(spec).toEqual(golden("discrete.json", { "@ROOT@": root }));
    expect(readdirSync(root).filter((n) => n.includes("tmp"))).toEqual([]);
    expect(existsSync(out)).toBe(true);
  });

  test("--kind changes the kind; an invalid kind is refused naming it", async () => {
    const root = discreteTree();
    const out = join(root, "k.json");
    const base = ["cdi", "generate", "--mock", "--dev-root", root, "--driver-root", root, "--sys-root", root];
    expect(await main([...base, "--kind", "example.com/accel", "--output", out], {})).toBe(0);
    expect(JSON.parse(readFileSync(out, "utf8")).kind).toBe("example.com/accel");
    expect(await main([...base, "--kind", "nope", "--output", out], {})).toBe(1);
  });
});
