/**
 * The fake Jetson host trees under mock/jetson (one per L4T generation) and what each should
 * read as. `materialize` copies a tree into a temporary folder and makes its device nodes
 * (listed in its `device-nodes` file, since git cannot hold nodes) with mknod, which needs root.
 */
import { chmodSync, cpSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { REPO, tempFolder } from "../helpers.ts";

export interface Generation {
  /** The tree's folder under mock/jetson. */
  readonly tree: string;
  /** The fake libcuda's `jetson=` value for this GPU. */
  readonly fake: 1 | 2 | 3;
  readonly release: string;
  readonly gpu: string;
  readonly smCount: number;
  readonly cc: string;
  readonly cuda: string;
  readonly devfreq: string;
  readonly sample: { loadPct: number; curHz: number; minHz: number; maxHz: number; temperatureC: number };
  readonly memory: { totalMib: number; freeMib: number };
  /** The CSV files `cdi generate` reads there, and those it leaves unread. */
  readonly csvRead: readonly string[];
  readonly csvSkipped: readonly string[];
  /** Where libcuda lives, the device nodes a container needs to reach the GPU. */
  readonly libDir: string;
  readonly gpuNodes: readonly string[];
}

export const GENERATIONS: readonly Generation[] = [
  {
    tree: "nano-r32",
    fake: 3,
    release: "R32.6.1",
    gpu: "NVIDIA Tegra X1",
    smCount: 1,
    cc: "5.3",
    cuda: "10.2",
    devfreq: "/sys/class/devfreq/57000000.gpu",
    sample: { loadPct: 28.7, curHz: 614400000, minHz: 76800000, maxHz: 921600000, temperatureC: 37 },
    memory: { totalMib: 3964, freeMib: 2794 },
    csvRead: ["l4t.csv"],
    csvSkipped: ["cuda.csv", "cudnn.csv"],
    libDir: "/usr/lib/aarch64-linux-gnu/tegra",
    gpuNodes: ["/dev/nvhost-ctrl-gpu", "/dev/nvhost-gpu", "/dev/nvmap"],
  },
  {
    tree: "xavier-r35",
    fake: 2,
    release: "R35.4.1",
    gpu: "Xavier",
    smCount: 8,
    cc: "7.2",
    cuda: "11.4",
    devfreq: "/sys/class/devfreq/17000000.gv11b",
    sample: { loadPct: 65.5, curHz: 1377000000, minHz: 114750000, maxHz: 1377000000, temperatureC: 43 },
    memory: { totalMib: 31249, freeMib: 28526 },
    csvRead: ["l4t.csv"],
    csvSkipped: [],
    libDir: "/usr/lib/aarch64-linux-gnu/tegra",
    gpuNodes: ["/dev/nvhost-ctrl-gpu", "/dev/nvhost-gpu", "/dev/nvmap"],
  },
  {
    tree: "orin-r36",
    fake: 1,
    release: "R36.3.0",
    gpu: "Orin",
    smCount: 16,
    cc: "8.7",
    cuda: "12.2",
    devfreq: "/sys/class/devfreq/17000000.gpu",
    sample: { loadPct: 42.3, curHz: 918000000, minHz: 306000000, maxHz: 918000000, temperatureC: 45.5 },
    memory: { totalMib: 7441, freeMib: 5000 },
    csvRead: ["devices.csv", "drivers.csv"],
    csvSkipped: [],
    libDir: "/usr/lib/aarch64-linux-gnu/nvidia",
    gpuNodes: ["/dev/nvgpu/igpu0/ctrl", "/dev/nvgpu/igpu0/channel", "/dev/nvmap", "/dev/nvidia0", "/dev/nvidiactl"],
  },
];

/** The tree of `g` in the repository (no device nodes). */
export const treeRoot = (g: Generation | string) => join(REPO, "mock", "jetson", typeof g === "string" ? g : g.tree);

export const CSV_DIR = "/etc/nvidia-container-runtime/host-files-for-container.d";

/** The nodes a tree's `device-nodes` file lists. */
export function deviceNodes(g: Generation): { type: "c" | "b"; major: number; minor: number; mode: number; path: string }[] {
  return readFileSync(join(treeRoot(g), "device-nodes"), "utf8").split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("#"))
    .map((l) => {
      const [type, major, minor, mode, path] = l.trim().split(/\s+/);
      return { type: type as "c" | "b", major: Number(major), minor: Number(minor), mode: parseInt(mode!, 8), path: path! };
    });
}

/** A copy of the tree with its device nodes made; needs root (mknod). */
export function materialize(g: Generation): string {
  const root = tempFolder(`jetson-${g.tree}-`);
  cpSync(treeRoot(g), root, { recursive: true, verbatimSymlinks: true });
  for (const n of deviceNodes(g)) {
    const full = join(root, n.path);
    mkdirSync(dirname(full), { recursive: true });
    const r = Bun.spawnSync(["mknod", "-m", n.mode.toString(8), full, n.type, String(n.major), String(n.minor)]);
    if (r.exitCode !== 0) throw new Error(`mknod ${full} failed: ${r.stderr.toString()}`);
    chmodSync(full, n.mode);
  }
  return root;
}
