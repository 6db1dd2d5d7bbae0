/** `cdi validate`: the reference rules, the stricter ones, older consumers, and nvbind's specs. */
import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { statNode } from "../../src/cdi/devnode.ts";
import { loadSpecDirs } from "../../src/cdi/registry.ts";
import type { CdiSpec } from "../../src/cdi/schema.ts";
import { type Problem, validateSpec } from "../../src/cdi/validate.ts";
import { minimumVersion, versionNeeds } from "../../src/cdi/version.ts";
import { main } from "../../src/main.ts";
import { REPO, tempFolder } from "../helpers.ts";
import { canMknod, mknod, SKIP_REASON } from "./fake-tree.ts";
import { libraryYaml } from "../../src/cdi/codec.ts";

const fixture = (name: string) => join(REPO, "test", "fixtures", "cdi", name);
const load = (name: string) => JSON.parse(readFileSync(fixture(name), "utf8"));
const errors = (ps: Problem[]) => ps.filter((p) => p.severity === "error").map((p) => `${p.device ?? "-"} ${p.field}: ${p.message}`);
const ok = (edits: CdiSpec["devices"][0]["containerEdits"], extra: Partial<CdiSpec> = {}): CdiSpec => ({
  cdiVersion: "0.5.0",
  kind: "nvidia.com/gpu",
  devices: [{ name: "gpu0", containerEdits: edits }],
  ...extra,
});
const check = (raw: unknown, consumerVersion?: string) =>
  validateSpec(raw, { file: "t.json", ...(consumerVersion && { consumerVersion }) }).problems;

describe("the reference rules", () => {
  test("a clean spec has no problem", () => {
    expect(check(ok({ env: ["A=1"], deviceNodes: [{ path: "/dev/null" }] }))).toEqual([]);
  });

  test("names: vendor, class and device grammar; duplicates; at least one device; empty edits", () => {
    expect(errors(check(ok({ env: ["A=1"] }, { kind: "1vendor/gpu" })))).toEqual([
      '- kind: invalid vendor name "1vendor": must start with a letter',
    ]);
    expect(errors(check(ok({ env: ["A=1"] }, { kind: "nvidia.com" })))).toEqual(['- kind: invalid kind "nvidia.com": needs vendor/class']);
    const spec = ok({ env: ["A=1"] });
    spec.devices.push({ name: "gpu0", containerEdits: { env: ["B=1"] } }, { name: "bad name", containerEdits: {} });
    expect(errors(check(spec))).toEqual([
      'gpu0 devices[1].name: duplicate device name "gpu0"',
      'bad name devices[2].name: invalid device name "bad name": invalid character " "',
      "bad name devices[2].containerEdits: invalid device: empty container edits",
    ]);
    expect(errors(check({ ...spec, devices: [] }))).toEqual(["- devices: a spec needs at least one device"]);
  });

  test("versions: unknown, or below the minimum the spec needs (each feature)", () => {
    expect(errors(check(ok({ env: ["A=1"] }, { cdiVersion: "0.9.0" })))).toEqual([
      '- cdiVersion: invalid version "0.9.0" (known: 0.1.0 to 1.1.0)',
    ]);
    const cases: [CdiSpec, string][] = [
      [ok({ mounts: [{ hostPath: "/a", containerPath: "/a", type: "bind" }] }), "0.4.0"],
      [ok({ deviceNodes: [{ path: "/dev/a", hostPath: "/dev/null" }] }), "0.5.0"],
      [{ ...ok({ env: ["A=1"] }), devices: [{ name: "0", containerEdits: { env: ["A=1"] } }] }, "0.5.0"],
      [ok({ env: ["A=1"] }, { annotations: { a: "b" } }), "0.6.0"],
      [ok({ env: ["A=1"] }, { kind: "nvidia.com/gpu.x" }), "0.6.0"],
      [ok({ additionalGids: [44] }), "0.7.0"],
      [ok({ intelRdt: { closID: "x" } }), "0.7.0"],
      [ok({ netDevices: [{ hostInterfaceName: "eth0", name: "n" }] }), "1.1.0"],
      [ok({ intelRdt: { enableMonitoring: true } }), "1.1.0"],
      [ok({ deviceNodes: [{ path: "/dev/a", major: 1, minor: 2, type: "c", permissions: "r", fileMode: 1, uid: 1, gid: 1 }] }), "0.3.0"],
    ];
    for (const [spec, min] of cases) {
      expect(minimumVersion(spec)).toBe(min as never);
      // The fast walk and the explaining list hold the same table.
      expect(versionNeeds(spec).map((n) => n.version as string).sort().at(-1) ?? "0.3.0").toBe(min);
      const low = { ...spec, cdiVersion: "0.3.0" };
      expect(errors(check(low)).some((e) => e.includes(`must be at least ${min}`))).toBe(min !== "0.3.0");
    }
  });

  test("node type and permissions, hook names, env keys; unknown fields", () => {
    const e = errors(check(ok({
      env: ["=x", "NOEQUALS"],
      deviceNodes: [{ path: "/dev/a", type: "x", permissions: "rx" }],
      hooks: [{ hookName: "prestop", path: "/bin/h" }],
    })));
    expect(e).toEqual([
      'gpu0 devices[0].containerEdits.env[0]: invalid environment variable "=x": needs KEY=VALUE with a non-empty KEY',
      'gpu0 devices[0].containerEdits.env[1]: invalid environment variable "NOEQUALS": needs KEY=VALUE with a non-empty KEY',
      'gpu0 devices[0].containerEdits.deviceNodes[0].type: device "/dev/a": invalid type "x" (b, c, u, p or empty)',
      'gpu0 devices[0].containerEdits.deviceNodes[0].permissions: device "/dev/a": invalid permissions "rx" (only r, w, m)',
      'gpu0 devices[0].containerEdits.hooks[0].hookName: invalid hook name "prestop" (one of prestart, createRuntime, createContainer, startContainer, poststart, poststop)',
    ]);
    const raw = ok({ env: ["A=1"] }) as unknown as Record<string, unknown>;
    (raw.devices as Record<string, unknown>[])[0]!.extra = 1;
    expect(errors(check(raw))).toEqual(["gpu0 devices[0].extra: unknown field (no CDI version has it)"]);
  });
});

describe("the stricter rules", () => {
  test("absolute paths, hook timeout > 0, bind mounts", () => {
    const e = errors(check(ok({
      deviceNodes: [{ path: "dev/a", hostPath: "rel" }],
      mounts: [{ hostPath: "lib", containerPath: "/lib", options: ["ro", "rbind"] }, {
        hostPath: "/a",
        containerPath: "/b",
        options: ["ro"],
      }],
      hooks: [{ hookName: "poststop", path: "bin/h", timeout: 0 }],
    })));
    expect(e).toEqual([
      'gpu0 devices[0].containerEdits.deviceNodes[0].path: device path "dev/a" is not absolute',
      'gpu0 devices[0].containerEdits.deviceNodes[0].hostPath: host path "rel" is not absolute',
      'gpu0 devices[0].containerEdits.mounts[0].hostPath: host path "lib" is not absolute',
      'gpu0 devices[0].containerEdits.mounts[1].options: mount of "/a" has no type and neither bind nor rbind, so it is not a bind mount',
      'gpu0 devices[0].containerEdits.hooks[0].path: hook path "bin/h" is not absolute',
      "gpu0 devices[0].containerEdits.hooks[0].timeout: hook timeout must be > 0 seconds, got 0",
    ]);
  });

  test("the reference rules alone (strict: false) accept what only the stricter ones refuse", () => {
    const spec = ok({ mounts: [{ hostPath: "lib", containerPath: "/lib" }], hooks: [{ hookName: "poststop", path: "h", timeout: 0 }] });
    expect(validateSpec(spec, { file: "x", strict: false }).problems).toEqual([]);
  });

  test("a CDI 0.5.0 consumer (Debian's podman 4.3) refuses newer versions and newer fields", () => {
    const spec = ok({ additionalGids: [44] }, { cdiVersion: "0.7.0" });
    expect(errors(check(spec, "0.5.0"))).toEqual([
      "- cdiVersion: a consumer at CDI 0.5.0 refuses version 0.7.0 (unknown to it)",
      "gpu0 devices[0].containerEdits.additionalGids: needs CDI 0.7.0; a consumer at 0.5.0 refuses it",
    ]);
    expect(errors(check(ok({ env: ["A=1"] }), "0.5.0"))).toEqual([]);
  });
});

describe("nvbind's specs are refused for the right reasons", () => {
  test("its GPU spec: 0.8.0 where 0.3.0 would do, image env overwritten; refused by a 0.5.0 consumer", () => {
    const ps = check(load("nvbind-gpu.json"));
    expect(errors(ps)).toEqual([]);
    expect(ps.filter((p) => p.severity === "warning").map((p) => `${p.field}: ${p.message}`)).toEqual([
      "cdiVersion: declares 0.8.0 but needs only 0.3.0; consumers older than 0.8.0 refuse it",
      "containerEdits.env[1]: sets CUDA_VERSION, which the image owns; it would be overwritten",
      "containerEdits.env[2]: sets NVIDIA_REQUIRE_CUDA, which the image owns; it would be overwritten",
    ]);
    expect(errors(check(load("nvbind-gpu.json"), "0.5.0"))).toEqual([
      "- cdiVersion: a consumer at CDI 0.5.0 refuses version 0.8.0 (unknown to it)",
    ]);
  });

  test.skipIf(!canMknod)(
    `its truncated major (510 written as 254) disagrees with the host's node${canMknod ? "" : ` (${SKIP_REASON})`}`,
    () => {
      const root = tempFolder("cdi-nvbind-");
      mknod(root, "/dev/nvidia-uvm", "c", 510, 0);
      mknod(root, "/dev/nvidia0", "c", 195, 0);
      const ps = validateSpec(load("nvbind-gpu.json"), { file: "nvbind-gpu.json", statNode: (p) => statNode(join(root, p)) }).problems;
      expect(errors(ps)).toEqual([
        "all devices[0].containerEdits.deviceNodes[1].major: /dev/nvidia-uvm has major 510 on this host, the spec says 254",
      ]);
    },
  );

  test("its Bolt profile: a hook name OCI does not have, library folders mounted without bind", () => {
    expect(errors(check(load("nvbind-bolt.json")))).toEqual([
      '0 devices[0].containerEdits.mounts[0].options: mount of "/usr/lib/x86_64-linux-gnu" has no type and neither bind nor rbind, so it is not a bind mount',
      '0 devices[0].containerEdits.hooks[1].hookName: invalid hook name "prestop" (one of prestart, createRuntime, createContainer, startContainer, poststart, poststop)',
    ]);
  });

  test('its "0.7" module: snake_case fields no CDI version has', () => {
    expect(errors(check(load("nvbind-07.json")))).toEqual([
      "- cdiVersion: required field is missing",
      "0 devices[0].containerEdits: required field is missing",
      "0 devices[0].container_edits: unknown field (no CDI version has it)",
      "- cdi_version: unknown field (no CDI version has it)",
    ]);
  });

  test("written next to nvidia-ctk's spec, its duplicate nvidia.com/gpu=all makes both unresolvable", async () => {
    const dir = tempFolder("cdi-etc-");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "nvidia.yaml"),
      "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n  - name: all\n    containerEdits:\n      deviceNodes:\n        - path: /dev/nvidia0\n",
    );
    writeFileSync(join(dir, "nvidia.com_gpu.json"), readFileSync(fixture("nvbind-gpu.json")));
    const reg = await loadSpecDirs([dir], libraryYaml);
    expect(reg.devices.has("nvidia.com/gpu=all")).toBe(false);
    expect(reg.errors[0]).toStartWith('Conflicting device "nvidia.com/gpu=all"');
  });
});

describe("the command", () => {
  test("names file, device and field; exit 1 when any file is invalid, 0 when all are valid", async () => {
    const out: string[] = [];
    const io = { stdout: (t: string) => Promise.resolve(void out.push(t)), stderr: () => {}, stdin: () => Promise.resolve("") };
    expect(await main(["cdi", "validate", fixture("nvbind-bolt.json"), fixture("nvbind-gpu.json")], {}, io)).toBe(1);
    const text = out.join("");
    expect(text).toContain(
      `${fixture("nvbind-bolt.json")}: device "0": devices[0].containerEdits.hooks[1].hookName: invalid hook name "prestop"`,
    );
    expect(text).toContain(`${fixture("nvbind-bolt.json")}: invalid (2 errors)`);
    expect(text).toContain(`${fixture("nvbind-gpu.json")}: valid (cdiVersion 0.8.0, kind nvidia.com/gpu, 1 devices)`);
    out.length = 0;
    expect(await main(["cdi", "validate", "--consumer-version", "0.5.0", fixture("nvbind-gpu.json")], {}, io)).toBe(1);
    expect(await main(["cdi", "validate", "--consumer-version", "5", fixture("nvbind-gpu.json")], {})).toBe(2);
  });
});
