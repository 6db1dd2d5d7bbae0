/**
 * Jetson (`nvidia-ctk --mode=csv`): the base files in
 * `/etc/nvidia-container-runtime/host-files-for-container.d` (l4t.csv on L4T R32 and R35,
 * devices.csv and drivers.csv on R36) list what a container needs,
 * one `<type>, <path>` per line: `dev` (device nodes, globs allowed), `lib` (a file to mount),
 * `sym` (a symlink: mounted and re-created by a create-symlinks hook), `dir` (a folder to mount).
 * Devices `0` and `all`; `/etc/nv_tegra_release` is mounted too. No MIG.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { deviceNode, fileMount, linkTarget, type Roots, under } from "./discover.ts";
import { driverHooks, finish, type Generated } from "./generate.ts";
import type { CdiDeviceNode, CdiMount } from "./schema.ts";

export type CsvType = "dev" | "lib" | "sym" | "dir";
export interface CsvEntry {
  readonly type: CsvType;
  readonly path: string;
}

/** Parses one CSV file: split at the first comma, both sides trimmed; unknown or malformed lines skipped. */
export function parseCsv(text: string): CsvEntry[] {
  const out: CsvEntry[] = [];
  for (const line of text.split("\n")) {
    const comma = line.indexOf(",");
    if (comma < 0) continue;
    const type = line.slice(0, comma).trim();
    const path = line.slice(comma + 1).trim();
    if ((type === "dev" || type === "lib" || type === "sym" || type === "dir") && path.startsWith("/")) out.push({ type, path });
  }
  return out;
}

/**
 * The files nvidia-ctk reads by default, in its order. The runtime reads the same set unless an
 * image asks for `csv-mounts=all`; JetPack 4's extra files (cuda.csv, cudnn.csv, ...) mount the
 * host's CUDA into containers built for it, which newer images carry themselves.
 */
export const BASE_CSV_FILES = ["devices.csv", "drivers.csv", "l4t.csv"] as const;

/** The base CSV files' entries in `csvDir`, and the other `*.csv` files that were left unread. */
export function readCsvFiles(csvDir: string): { entries: CsvEntry[]; skipped: string[] } {
  let names: string[];
  try {
    names = readdirSync(csvDir).filter((n) => n.toLowerCase().endsWith(".csv") && n !== ".csv").sort();
  } catch (error) {
    throw new Error(`Cannot read the Jetson CSV folder ${csvDir}: ${(error as Error).message}`, { cause: error });
  }
  const base = new Set<string>(BASE_CSV_FILES);
  const read = BASE_CSV_FILES.filter((n) => names.includes(n));
  return {
    entries: read.flatMap((n) => parseCsv(readFileSync(join(csvDir, n), "utf8"))),
    skipped: names.filter((n) => !base.has(n)),
  };
}

/** The entries of the base CSV files in `csvDir` (see BASE_CSV_FILES). */
export function readCsvDir(csvDir: string): CsvEntry[] {
  return readCsvFiles(csvDir).entries;
}

/** The warning for CSV files left unread, or none. */
export function skippedCsvWarnings(csvDir: string, skipped: readonly string[]): string[] {
  if (skipped.length === 0) return [];
  return [
    `${csvDir}: read ${BASE_CSV_FILES.join(", ")} as nvidia-ctk does; not read: ${
      skipped.join(", ")
    } (an image built for JetPack 4 that expects the host's CUDA must bring it, or mount it itself)`,
  ];
}

const globToRegExp = (glob: string) =>
  new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")}$`);

/** The device nodes a `dev` entry names; a glob is matched in its last component. */
function devNodes(roots: Roots, path: string): CdiDeviceNode[] {
  if (!/[*?]/.test(path)) {
    const n = deviceNode(roots, path);
    return n === null ? [] : [n];
  }
  const dir = dirname(path);
  const re = globToRegExp(path.slice(dir.length + 1));
  let names: string[];
  try {
    names = readdirSync(under(roots.devRoot, dir)).filter((n) => re.test(n)).sort();
  } catch {
    return [];
  }
  return names.map((n) => deviceNode(roots, `${dir === "/" ? "" : dir}/${n}`)).filter((n): n is CdiDeviceNode => n !== null);
}

export interface CsvOptions extends Roots {
  readonly kind: string;
  readonly hookPath: string;
}

/** The spec for a Jetson from its CSV entries; what does not exist on the host is left out. */
export function generateCsv(entries: readonly CsvEntry[], o: CsvOptions): Generated {
  const warnings: string[] = [];
  const nodes = new Map<string, CdiDeviceNode>();
  const mounts: CdiMount[] = [];
  const links: string[] = [];
  const libFolders = new Set<string>();
  const mounted = new Set<string>();
  const mount = (path: string) => {
    if (mounted.has(path)) return;
    mounted.add(path);
    mounts.push(fileMount(o, path));
  };
  for (const e of entries) {
    if (e.type === "dev") {
      const found = devNodes(o, e.path);
      if (found.length === 0) warnings.push(`no device node matches ${e.path}`);
      for (const n of found) if (!nodes.has(n.path)) nodes.set(n.path, n);
      continue;
    }
    if (!existsSync(under(o.driverRoot, e.path))) {
      warnings.push(`${e.type} ${e.path} is not on this host`);
      continue;
    }
    if (e.type === "sym") {
      const target = linkTarget(o, e.path);
      if (target === null) {
        warnings.push(`sym ${e.path} is not a symlink`);
        continue;
      }
      links.push(`${target}::${e.path}`);
    }
    if (e.type === "lib") libFolders.add(dirname(e.path));
    mount(e.path);
  }
  if (nodes.size === 0) throw new Error(`Cannot generate a CDI spec: the CSV files name no device node present under ${o.devRoot}`);
  if (existsSync(under(o.driverRoot, "/etc/nv_tegra_release"))) mount("/etc/nv_tegra_release");
  const hooks = driverHooks({ hookPath: o.hookPath, driverVersion: null }, links, [...libFolders]);
  const edits = { deviceNodes: [...nodes.values()] };
  return {
    spec: finish(o.kind, [{ name: "0", containerEdits: edits }, { name: "all", containerEdits: edits }], {
      env: ["NVIDIA_VISIBLE_DEVICES=void"],
      ...(hooks.length > 0 && { hooks }),
      ...(mounts.length > 0 && { mounts }),
    }),
    warnings,
  };
}
