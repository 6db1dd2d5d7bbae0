/**
 * What the bridge reads from `/sys`, `/proc` and `/etc`, always under `sysRoot` (the
 * `--sys-root` flag), so the Jetson path runs against a fake tree on any machine.
 */
import { readdirSync, readFileSync, realpathSync } from "node:fs";
import { join, relative } from "node:path";

const GPU_OF_NODES = new Set(["gv11b", "gp10b", "ga10b", "gb10b", "gpu"]);

/** Reads a small text file under `root`, or null. */
export function readText(root: string, path: string): string | null {
  try {
    return readFileSync(join(root, path), "utf8");
  } catch {
    return null;
  }
}

function readNumber(root: string, path: string): number | null {
  const t = readText(root, path)?.trim();
  if (t === undefined || !/^-?\d+$/.test(t)) return null;
  return Number(t);
}

/** `/proc/meminfo` fields in kB. */
export function meminfo(root: string): { totalKb: number | null; availableKb: number | null } {
  const text = readText(root, "/proc/meminfo") ?? "";
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    return m === null ? null : Number(m[1]);
  };
  return { totalKb: field("MemTotal"), availableKb: field("MemAvailable") };
}

/** The GPU devfreq folder (path under root), found by its device's `of_node/name`. */
export function findGpuDevfreq(root: string): string | null {
  let names: string[];
  try {
    names = readdirSync(join(root, "/sys/class/devfreq")).sort();
  } catch {
    return null;
  }
  for (const name of names) {
    const node = readText(root, `/sys/class/devfreq/${name}/device/of_node/name`)?.replace(/\0/g, "").trim();
    if (node !== undefined && GPU_OF_NODES.has(node)) return `/sys/class/devfreq/${name}`;
  }
  return null;
}

export interface JetsonGpuSample {
  readonly loadPct: number | null;
  readonly curHz: number | null;
  readonly minHz: number | null;
  readonly maxHz: number | null;
  readonly governor: string | null;
  readonly temperatureC: number | null;
}

/** One sample of the Jetson GPU's sysfs: load (per-mille to percent), clocks, temperature. */
export function sampleJetsonGpu(root: string): JetsonGpuSample {
  const devfreq = findGpuDevfreq(root);
  let loadPct: number | null = null;
  if (devfreq !== null) {
    try {
      // The load file sits in the GPU's device folder, the real path of <devfreq>/device.
      const device = realpathSync(join(root, devfreq, "device"));
      const inside = "/" + relative(realpathSync(root), device);
      const permille = readNumber(root, `${inside}/load`);
      loadPct = permille === null ? null : permille / 10;
    } catch {
      loadPct = null;
    }
  }
  return {
    loadPct,
    curHz: devfreq === null ? null : readNumber(root, `${devfreq}/cur_freq`),
    minHz: devfreq === null ? null : readNumber(root, `${devfreq}/min_freq`),
    maxHz: devfreq === null ? null : readNumber(root, `${devfreq}/max_freq`),
    governor: devfreq === null ? null : readText(root, `${devfreq}/governor`)?.trim() ?? null,
    temperatureC: gpuThermalC(root),
  };
}

/** The GPU thermal zone in °C (`GPU-therm` or `gpu-thermal`); null if absent or disabled (-256 °C). */
export function gpuThermalC(root: string): number | null {
  let zones: string[];
  try {
    zones = readdirSync(join(root, "/sys/devices/virtual/thermal")).filter((z) => z.startsWith("thermal_zone"));
  } catch {
    return null;
  }
  for (const zone of zones.sort()) {
    const type = readText(root, `/sys/devices/virtual/thermal/${zone}/type`)?.trim().toLowerCase();
    if (type !== "gpu-therm" && type !== "gpu-thermal") continue;
    const milli = readNumber(root, `/sys/devices/virtual/thermal/${zone}/temp`);
    if (milli === null || milli <= -256_000) return null;
    return milli / 1000;
  }
  return null;
}

/** The kernel driver's version (`/proc/driver/nvidia/version`), e.g. `550.54.15`. */
export function nvidiaDriverVersion(root: string): string | null {
  const m = /Kernel Module(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+)+)/.exec(readText(root, "/proc/driver/nvidia/version") ?? "");
  return m?.[1] ?? null;
}

/** The L4T release of a Jetson (`/etc/nv_tegra_release`), e.g. `R36.3.0`. */
export function tegraRelease(root: string): string | null {
  const m = /^# R(\d+) \(release\), REVISION: (\d+)\.(\d+)/m.exec(readText(root, "/etc/nv_tegra_release") ?? "");
  return m === null ? null : `R${m[1]}.${m[2]}.${m[3]}`;
}
