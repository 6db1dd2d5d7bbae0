/** cdi.md section 4, one test per rule, on the host's real /dev/null, /dev/zero and /dev/full. */
import { describe, expect, test } from "bun:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { applyEdits, CdiApplyError, cleanPath, depths } from "../../src/cdi/apply.ts";
import { statNode } from "../../src/cdi/devnode.ts";
import { injectDevices, loadSpecDirs, resolveDevices } from "../../src/cdi/registry.ts";
import { nodeSpecFs as loadNodeSpecFs, runtimeSpecFs } from "../../src/cdi/spec-fs.ts";
import { runtimeFiles } from "../../src/runtime/files.ts";

/** The two readers: the runtime's own calls (these tests run on Bun) and node:fs. */
const bunSpecFs = runtimeSpecFs(runtimeFiles()!);
const nodeSpecFs = await loadNodeSpecFs();
import type { CdiSpec, OciSpec } from "../../src/cdi/schema.ts";
import { libraryYaml } from "../../src/cdi/codec.ts";
import { tempFolder } from "../helpers.ts";

const base = (): OciSpec => ({
  ociVersion: "1.0.2",
  process: { env: ["PATH=/usr/bin", "CUDA_VERSION=12.4", "FOO=image"], user: { uid: 0, gid: 0 } },
  mounts: [
    { destination: "/proc", type: "proc", source: "proc" },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid"] },
    { destination: "/dev/shm", type: "tmpfs", source: "shm" },
    { destination: "/sys", type: "sysfs", source: "sysfs" },
  ],
  linux: { resources: { devices: [{ allow: false, access: "rwm" }] } },
});

const spec = (kind: string, devices: CdiSpec["devices"], containerEdits?: CdiSpec["containerEdits"]): CdiSpec => ({
  cdiVersion: "0.5.0",
  kind,
  devices,
  ...(containerEdits !== undefined && { containerEdits }),
});

const registryOf = (...specs: CdiSpec[]) => resolveDevices(specs.map((spec, i) => ({ spec, file: `/spec${i}.json`, priority: 0 })));

describe("env (question 4)", () => {
  test("an existing KEY= is replaced in place, others appended, a later edit wins", () => {
    const out = applyEdits(base(), { env: ["FOO=cdi", "NEW=1", "NEW=2"] }, statNode);
    expect(out.process!.env).toEqual(["PATH=/usr/bin", "CUDA_VERSION=12.4", "FOO=cdi", "NEW=2"]);
  });
});

describe("device nodes (question 3)", () => {
  test("lstat fills type, major, minor and fileMode when only the path is given", () => {
    const out = applyEdits(base(), { deviceNodes: [{ path: "/dev/null" }] }, statNode);
    expect(out.linux!.devices).toEqual([{ path: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 0o666 }]);
  });

  test("hostPath is stat'ed, path is what the container sees", () => {
    const out = applyEdits(base(), { deviceNodes: [{ path: "/dev/gpu0", hostPath: "/dev/zero" }] }, statNode);
    expect(out.linux!.devices![0]).toMatchObject({ path: "/dev/gpu0", type: "c", major: 1, minor: 5 });
  });

  test("a node with type and a non-zero major is trusted as given (no stat)", () => {
    const out = applyEdits(base(), { deviceNodes: [{ path: "/dev/nvidia-uvm", type: "c", major: 510, minor: 0 }] }, () => {
      throw new Error("stat must not be called");
    });
    expect(out.linux!.devices![0]).toEqual({ path: "/dev/nvidia-uvm", type: "c", major: 510, minor: 0 });
  });

  test("major 0 with a type is filled from the host, and a type mismatch is refused", () => {
    const out = applyEdits(base(), { deviceNodes: [{ path: "/dev/full", type: "c" }] }, statNode);
    expect(out.linux!.devices![0]).toMatchObject({ major: 1, minor: 7 });
    expect(() => applyEdits(base(), { deviceNodes: [{ path: "/dev/full", type: "b" }] }, statNode)).toThrow("host type mismatch (b, c)");
  });

  test("something that is not a device node is an error, and a symlink is not followed", () => {
    const dir = tempFolder("cdi-apply-");
    writeFileSync(join(dir, "file"), "");
    symlinkSync("/dev/null", join(dir, "link"));
    expect(() => applyEdits(base(), { deviceNodes: [{ path: join(dir, "file") }] }, statNode)).toThrow("not a device node");
    expect(() => applyEdits(base(), { deviceNodes: [{ path: join(dir, "link") }] }, statNode)).toThrow("not a device node");
    expect(() => applyEdits(base(), { deviceNodes: [{ path: join(dir, "absent") }] }, statNode)).toThrow("Cannot stat CDI host device");
  });

  test("uid and gid default to the process user's only when those are > 0", () => {
    const root = applyEdits(base(), { deviceNodes: [{ path: "/dev/null" }] }, statNode);
    expect(root.linux!.devices![0]!.uid).toBeUndefined();
    const user = base();
    user.process!.user = { uid: 1000, gid: 100 };
    const out = applyEdits(user, { deviceNodes: [{ path: "/dev/null" }, { path: "/dev/zero", gid: 44 }] }, statNode);
    expect(out.linux!.devices!.map((d) => [d.uid, d.gid])).toEqual([[1000, 100], [1000, 44]]);
  });

  test("the entry for the same container path is replaced: last writer wins", () => {
    const out = applyEdits(base(), {
      deviceNodes: [{ path: "/dev/x", hostPath: "/dev/null" }, { path: "/dev/y", hostPath: "/dev/full" }, {
        path: "/dev/x",
        hostPath: "/dev/zero",
      }],
    }, statNode);
    expect(out.linux!.devices!.map((d) => [d.path, d.minor])).toEqual([["/dev/y", 7], ["/dev/x", 5]]);
  });

  test("only b and c nodes get cgroup rules, appended (not deduplicated), access from permissions", () => {
    const dir = tempFolder("cdi-fifo-");
    Bun.spawnSync(["mkfifo", join(dir, "fifo")]);
    const out = applyEdits(base(), {
      deviceNodes: [
        { path: "/dev/null", permissions: "rw" },
        { path: "/dev/null" },
        { path: "/dev/pipe", hostPath: join(dir, "fifo") },
      ],
    }, statNode);
    expect(out.linux!.resources!.devices).toEqual([
      { allow: false, access: "rwm" },
      { allow: true, type: "c", major: 1, minor: 3, access: "rw" },
      { allow: true, type: "c", major: 1, minor: 3, access: "rwm" },
    ]);
    expect(out.linux!.devices!.find((d) => d.path === "/dev/pipe")).toMatchObject({ type: "p", major: 0, minor: 0 });
  });
});

describe("mounts (question 2)", () => {
  test("the first mount with the exact destination is removed, no cleaning", () => {
    const oci = base();
    oci.mounts!.push({ destination: "/opt/lib", source: "a" }, { destination: "/opt/lib/", source: "b" }, {
      destination: "/opt/lib",
      source: "c",
    });
    const out = applyEdits(oci, { mounts: [{ hostPath: "/host/lib", containerPath: "/opt/lib", options: ["ro", "rbind"] }] }, statNode);
    expect(out.mounts!.filter((m) => m.destination.startsWith("/opt/lib")).map((m) => m.source)).toEqual(["b", "c", "/host/lib"]);
  });

  test("type and options are copied verbatim, no defaults", () => {
    const out = applyEdits(base(), {
      mounts: [{ hostPath: "/h", containerPath: "/c" }, { hostPath: "/t", containerPath: "/t", type: "tmpfs", options: ["size=1m"] }],
    }, statNode);
    expect(out.mounts!.find((m) => m.destination === "/c")).toEqual({ destination: "/c", source: "/h" });
    expect(out.mounts!.find((m) => m.destination === "/t")).toEqual({
      destination: "/t",
      source: "/t",
      type: "tmpfs",
      options: ["size=1m"],
    });
  });

  test("the whole array is stable-sorted by depth of the cleaned destination", () => {
    const out = applyEdits(base(), {
      mounts: [
        { hostPath: "/a", containerPath: "/usr/lib/x86_64-linux-gnu/libcuda.so.1", options: ["bind"] },
        { hostPath: "/b", containerPath: "/usr//bin/../bin/nvidia-smi/", options: ["bind"] },
        { hostPath: "/c", containerPath: "/run", options: ["bind"] },
      ],
    }, statNode);
    expect(out.mounts!.map((m) => m.destination)).toEqual([
      "/proc",
      "/dev",
      "/sys",
      "/run",
      "/dev/shm",
      "/usr//bin/../bin/nvidia-smi/",
      "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
    ]);
    expect(cleanPath("/usr//bin/../bin/nvidia-smi/")).toBe("/usr/bin/nvidia-smi");
  });
});

describe("hooks (questions 1 and 5)", () => {
  test("appended in edit order to the array the hook name names", () => {
    const oci = base();
    oci.hooks = { createContainer: [{ path: "/usr/bin/runtime-own" }] };
    const out = applyEdits(oci, {
      hooks: [
        { hookName: "createContainer", path: "/usr/bin/nvidia-cdi-hook", args: ["nvidia-cdi-hook", "update-ldcache"] },
        { hookName: "poststop", path: "/bin/cleanup", timeout: 5, env: ["A=1"] },
        { hookName: "createContainer", path: "/usr/bin/second" },
      ],
    }, statNode);
    expect(out.hooks!.createContainer!.map((h) => h.path)).toEqual(["/usr/bin/runtime-own", "/usr/bin/nvidia-cdi-hook", "/usr/bin/second"]);
    expect(out.hooks!.poststop).toEqual([{ path: "/bin/cleanup", env: ["A=1"], timeout: 5 }]);
  });

  test("any other hook name is an error and nothing changes", () => {
    const oci = base();
    expect(() => applyEdits(oci, { env: ["X=1"], hooks: [{ hookName: "prestop", path: "/bin/x" }] }, statNode)).toThrow(CdiApplyError);
    expect(oci).toEqual(base());
  });
});

describe("additionalGids, intelRdt, netDevices", () => {
  test("gid 0 skipped, a gid appended unless present", () => {
    const oci = base();
    oci.process!.user!.additionalGids = [44];
    const out = applyEdits(oci, { additionalGids: [0, 44, 109, 109] }, statNode);
    expect(out.process!.user!.additionalGids).toEqual([44, 109]);
  });

  test("intelRdt replaces linux.intelRdt whole; netDevices keyed by host interface", () => {
    const oci = base();
    oci.linux!.intelRdt = { closID: "old", l3CacheSchema: "L3:0=f" };
    const out = applyEdits(oci, { intelRdt: { closID: "new" }, netDevices: [{ hostInterfaceName: "eth1", name: "net0" }] }, statNode);
    expect(out.linux!.intelRdt).toEqual({ closID: "new" });
    expect(out.linux!.netDevices).toEqual({ eth1: { name: "net0" } });
  });
});

describe("injection", () => {
  const gpu = spec("nvidia.com/gpu", [
    { name: "0", containerEdits: { env: ["DEV=0"], deviceNodes: [{ path: "/dev/null" }] } },
    { name: "1", containerEdits: { env: ["DEV=1"], deviceNodes: [{ path: "/dev/zero" }] } },
  ], { env: ["GLOBAL=gpu"] });
  const other = spec("example.com/net", [{ name: "a", containerEdits: { env: ["NET=a"] } }], { env: ["GLOBAL=net"] });

  test("global edits once per spec, before that spec's first device, in request order", () => {
    const out = injectDevices(registryOf(gpu, other), base(), ["nvidia.com/gpu=1", "example.com/net=a", "nvidia.com/gpu=0"], statNode);
    // GLOBAL=gpu, DEV=1, GLOBAL=net (replaces in place), NET=a, DEV=0 (replaces in place)
    expect(out.process!.env!.slice(3)).toEqual(["GLOBAL=net", "DEV=0", "NET=a"]);
    expect(out.linux!.devices!.map((d) => d.path)).toEqual(["/dev/zero", "/dev/null"]);
  });

  test("an unknown device changes nothing and the error names it", () => {
    const oci = base();
    expect(() => injectDevices(registryOf(gpu), oci, ["nvidia.com/gpu=0", "nvidia.com/gpu=7", "x.com/y=z"], statNode))
      .toThrow("Unresolvable CDI devices nvidia.com/gpu=7, x.com/y=z");
    expect(oci).toEqual(base());
  });
});

describe("spec folders", () => {
  const write = (dir: string, name: string, s: CdiSpec | string) => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), typeof s === "string" ? s : JSON.stringify(s));
  };
  const one = (env: string) => spec("nvidia.com/gpu", [{ name: "all", containerEdits: { env: [env] } }]);

  test("a later folder wins; equal priority conflicts make the device unresolvable", async () => {
    const root = tempFolder("cdi-dirs-");
    write(`${root}/etc`, "a.json", one("FROM=etc"));
    write(
      `${root}/run`,
      "b.yaml",
      "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n  - name: all\n    containerEdits:\n      env: [FROM=run]\n",
    );
    let reg = await loadSpecDirs([`${root}/etc`, `${root}/run`], libraryYaml);
    expect(reg.errors).toEqual([]);
    expect(reg.devices.get("nvidia.com/gpu=all")!.device.containerEdits.env).toEqual(["FROM=run"]);
    write(`${root}/run`, "c.json", one("FROM=nvbind"));
    reg = await loadSpecDirs([`${root}/etc`, `${root}/run`], libraryYaml);
    expect(reg.devices.has("nvidia.com/gpu=all")).toBe(false);
    expect(reg.errors.join("\n")).toContain('Conflicting device "nvidia.com/gpu=all"');
  });

  for (const [name, fs] of [["node:fs", nodeSpecFs], ["Bun", bunSpecFs]] as const) {
    test(`only .json and .yaml, no subfolders; a broken spec is skipped with an error naming it (${name})`, async () => {
      const root = tempFolder("cdi-dirs-");
      write(root, "a.yml", one("X=yml"));
      write(`${root}/sub`, "b.json", one("X=sub"));
      mkdirSync(`${root}/folder.json`);
      write(root, "c.json", "{not json");
      write(root, "d.json", one("X=d"));
      symlinkSync(`${root}/d.json`, `${root}/e.json`);
      const reg = await loadSpecDirs([root, `${root}/absent`], libraryYaml, fs);
      expect(reg.specs.map((s) => s.file)).toEqual([`${root}/d.json`, `${root}/e.json`]);
      expect(reg.errors).toHaveLength(2); // c.json broken; d.json and e.json define the same device
      expect(reg.errors[0]).toContain(`${root}/c.json`);
    });
  }
});

test("depths() counts the slashes of cleanPath() for every kind of path", () => {
  const parts = ["", ".", "..", "a", "b", "..."];
  const paths: string[] = [""];
  for (const a of parts) {
    for (const b of parts) {
      for (const c of parts) {
        paths.push(`${a}/${b}/${c}`, `/${a}/${b}/${c}`, `${a}/${b}`, `/${a}/${b}/`, `${a}`, `/${a}`, `${a}/${b}/${c}/`, `//${a}//${b}`);
      }
    }
  }
  paths.push("/usr/lib/x86_64-linux-gnu/libcuda.so", "../../a/../b", "a/../../..", "/../..", "./.", "/proc");
  expect(depths(paths)).toEqual(paths.map((p) => cleanPath(p).split("/").length - 1));
});
