/**
 * `cdi generate` on the three Jetson generations' fake host trees (mock/jetson): the base CSV
 * files nvidia-ctk reads (l4t.csv on L4T R32 and R35; devices.csv and drivers.csv on R36), the
 * GPU's nodes with the host's numbers, libcuda where each release keeps it, the symlinks
 * re-created by the hook, and JetPack 4's extra CSV files named as unread.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateCsv, readCsvFiles } from "../../src/cdi/jetson.ts";
import type { CdiSpec } from "../../src/cdi/schema.ts";
import { validateSpec } from "../../src/cdi/validate.ts";
import { main } from "../../src/main.ts";
import { memoryStdio } from "../helpers.ts";
import { CSV_DIR, deviceNodes, GENERATIONS, materialize } from "../inventory/jetson-trees.ts";
import { canMknod, SKIP_REASON } from "./fake-tree.ts";

const hookIn = (root: string) => {
  const hook = join(root, "hook", "nvidia-cdi-hook");
  mkdirSync(join(root, "hook"), { recursive: true });
  writeFileSync(hook, "#!/bin/sh\n");
  chmodSync(hook, 0o755);
  return hook;
};
const hookArgs = (spec: CdiSpec, name: string) => spec.containerEdits?.hooks?.find((h) => h.args?.[1] === name)?.args?.slice(2) ?? null;

for (const g of GENERATIONS) {
  describe.skipIf(!canMknod)(`${g.tree}: cdi generate in CSV mode${canMknod ? "" : ` (${SKIP_REASON})`}`, () => {
    test("reads the base CSV files, and names the others as unread", () => {
      const root = materialize(g);
      try {
        const { skipped } = readCsvFiles(join(root, CSV_DIR));
        expect(skipped).toEqual([...g.csvSkipped]);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });

    test("the spec holds the GPU's nodes with the host's numbers, libcuda, the links, and passes validation", () => {
      const root = materialize(g);
      try {
        const hook = hookIn(root);
        const { entries } = readCsvFiles(join(root, CSV_DIR));
        const { spec, warnings } = generateCsv(entries, {
          devRoot: root,
          driverRoot: root,
          sysRoot: root,
          kind: "nvidia.com/gpu",
          hookPath: hook,
        });
        expect(warnings).toEqual([]);
        expect(spec.devices.map((d) => d.name)).toEqual(["0", "all"]);
        const nodes = spec.devices[0]!.containerEdits.deviceNodes!;
        const listed = deviceNodes(g);
        for (const path of g.gpuNodes) {
          const want = listed.find((n) => n.path === path)!;
          expect(nodes.find((n) => n.path === path)).toMatchObject({
            type: "c",
            major: want.major,
            minor: want.minor,
            hostPath: join(root, path),
          });
        }
        // Every node the tree has is in the spec (the CSV files name them all, globs included).
        expect(nodes.map((n) => n.path).sort()).toEqual(listed.map((n) => n.path).sort());
        const mounts = spec.containerEdits!.mounts!.map((m) => m.containerPath);
        expect(mounts).toContain(`${g.libDir}/libcuda.so.1.1`);
        expect(mounts).toContain("/etc/nv_tegra_release");
        expect(hookArgs(spec, "update-ldcache")).toEqual(["--folder", g.libDir]);
        // R32 links libcuda.so straight to libcuda.so.1.1; R35 and R36 go through libcuda.so.1.
        expect(hookArgs(spec, "create-symlinks")).toContain(
          `${g.tree === "nano-r32" ? "libcuda.so.1.1" : "libcuda.so.1"}::${g.libDir}/libcuda.so`,
        );
        if (g.tree === "orin-r36") {
          // R36 keeps the libraries in nvidia/ and leaves tegra as a link to it for old paths.
          expect(hookArgs(spec, "create-symlinks")).toContain("nvidia::/usr/lib/aarch64-linux-gnu/tegra");
        }
        expect(validateSpec(spec, { file: g.tree, consumerVersion: "0.5.0" }).problems.filter((p) => p.severity === "error")).toEqual([]);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });

    test("cdi generate --backend jetson through the command line warns about unread CSV files", async () => {
      const root = materialize(g);
      try {
        const hook = hookIn(root);
        const { out, err, io } = memoryStdio();
        const args = ["cdi", "generate", "--backend", "jetson", "--dev-root", root, "--driver-root", root, "--sys-root", root];
        const code = await main([...args, "--csv-dir", join(root, CSV_DIR), "--hook-path", hook], {}, io);
        expect({ code, err: err.join("") }).toMatchObject({ code: 0 });
        const spec = JSON.parse(out.join("")) as CdiSpec;
        expect(spec.cdiVersion).toBe("0.5.0");
        const warned = err.join("").includes("not read: ");
        expect(warned).toBe(g.csvSkipped.length > 0);
        if (warned) expect(err.join("")).toContain(`not read: ${g.csvSkipped.join(", ")}`);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  });
}
