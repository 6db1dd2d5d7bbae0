/**
 * nvidia-smi as the reference: its `--query-gpu` CSV parsed, and the bridge's `stats --json`
 * compared with it GPU by GPU (joined by UUID: NVML, CUDA and nvidia-smi order GPUs differently).
 */

/** The fields asked for, in this order (`--format=csv,noheader,nounits`). */
export const SMI_FIELDS = [
  "index",
  "uuid",
  "name",
  "pci.bus_id",
  "memory.total",
  "memory.used",
  "utilization.gpu",
  "temperature.gpu",
  "power.draw",
  "power.limit",
  "compute_cap",
  "driver_version",
] as const;

export const smiArgs = () => [`--query-gpu=${SMI_FIELDS.join(",")}`, "--format=csv,noheader,nounits"];

export interface SmiGpu {
  readonly index: number;
  readonly uuid: string;
  readonly name: string;
  readonly pci_bus_id: string;
  readonly memory_total_mib: number | null;
  readonly memory_used_mib: number | null;
  readonly utilization_gpu_pct: number | null;
  readonly temperature_c: number | null;
  readonly power_w: number | null;
  readonly power_limit_w: number | null;
  readonly compute_capability: string | null;
  readonly driver_version: string;
}

/** A line nvidia-smi printed that this parser cannot read. */
export class SmiParseError extends Error {
  override name = "SmiParseError";
}

/** nvidia-smi's "not available" spellings become null; anything else must be a number. */
function num(raw: string, field: string, line: number): number | null {
  if (/^\[?(N\/A|Not Supported|Unknown Error|Insufficient Permissions|GPU requires reset)\]?$/i.test(raw)) return null;
  const n = Number(raw);
  if (raw === "" || !Number.isFinite(n)) {
    throw new SmiParseError(`nvidia-smi line ${line}: ${field} is ${JSON.stringify(raw)}, not a number`);
  }
  return n;
}

/** Parses `nvidia-smi --query-gpu=<SMI_FIELDS> --format=csv,noheader,nounits`. */
export function parseSmi(text: string): SmiGpu[] {
  const out: SmiGpu[] = [];
  text.split("\n").forEach((raw, i) => {
    if (raw.trim() === "") return;
    const f = raw.split(",").map((s) => s.trim());
    if (f.length !== SMI_FIELDS.length) {
      throw new SmiParseError(
        `nvidia-smi line ${i + 1}: ${f.length} fields, expected ${SMI_FIELDS.length} (${SMI_FIELDS.join(",")}): ${JSON.stringify(raw)}`,
      );
    }
    const index = num(f[0]!, "index", i + 1);
    if (index === null || !/^GPU-[0-9a-f-]{36}$/i.test(f[1]!)) {
      throw new SmiParseError(`nvidia-smi line ${i + 1}: no index or GPU UUID in ${JSON.stringify(raw)}`);
    }
    const cc = f[10]!;
    out.push({
      index,
      uuid: f[1]!,
      name: f[2]!,
      pci_bus_id: f[3]!,
      memory_total_mib: num(f[4]!, "memory.total", i + 1),
      memory_used_mib: num(f[5]!, "memory.used", i + 1),
      utilization_gpu_pct: num(f[6]!, "utilization.gpu", i + 1),
      temperature_c: num(f[7]!, "temperature.gpu", i + 1),
      power_w: num(f[8]!, "power.draw", i + 1),
      power_limit_w: num(f[9]!, "power.limit", i + 1),
      compute_capability: /^\d+\.\d+$/.test(cc) ? cc : null,
      driver_version: f[11]!,
    });
  });
  return out;
}

/** A PCI address in one spelling: NVML's 00000000:17:00.0, CUDA's 0000:17:00.0, lower case. */
export function normalizeBusId(id: string): string {
  const m = /^([0-9a-f]+):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(id.trim());
  if (m === null) return id.trim().toLowerCase();
  return `${parseInt(m[1]!, 16).toString(16).padStart(4, "0")}:${m[2]}:${m[3]}.${m[4]}`.toLowerCase();
}

/** One GPU as `gpu-bridge-host stats --json` prints it (the fields compared here). */
export interface StatsGpu {
  readonly uuid: string;
  readonly name: string;
  readonly pci_bus_id: string;
  readonly memory_total_mib: number | null;
  readonly memory_used_mib: number | null;
  readonly temperature_c: number | null;
  readonly power_w: number | null;
  readonly compute_capability: string | null;
}

/**
 * What differs between the bridge's inventory and nvidia-smi's: the same GPUs (by UUID), names,
 * bus ids and compute capabilities equal, total memory within `memTolerancePct` (NVML reports what
 * nvidia-smi does; CUDA's cuDeviceTotalMem leaves out what the driver reserves). Empty: they agree.
 */
export function compareInventory(ours: readonly StatsGpu[], smi: readonly SmiGpu[], memTolerancePct: number): string[] {
  const problems: string[] = [];
  const theirs = new Map(smi.map((g) => [g.uuid.toLowerCase(), g]));
  const mine = new Set(ours.map((g) => g.uuid.toLowerCase()));
  for (const g of smi) {
    if (!mine.has(g.uuid.toLowerCase())) problems.push(`${g.uuid} (${g.name}): nvidia-smi lists it, the bridge does not`);
  }
  for (const g of ours) {
    const s = theirs.get(g.uuid.toLowerCase());
    if (s === undefined) {
      problems.push(`${g.uuid} (${g.name}): the bridge lists it, nvidia-smi does not`);
      continue;
    }
    if (g.name !== s.name) problems.push(`${g.uuid}: name ${JSON.stringify(g.name)}, nvidia-smi ${JSON.stringify(s.name)}`);
    if (normalizeBusId(g.pci_bus_id) !== normalizeBusId(s.pci_bus_id)) {
      problems.push(`${g.uuid}: PCI ${g.pci_bus_id}, nvidia-smi ${s.pci_bus_id}`);
    }
    if (s.compute_capability !== null && g.compute_capability !== s.compute_capability) {
      problems.push(`${g.uuid}: compute capability ${g.compute_capability}, nvidia-smi ${s.compute_capability}`);
    }
    const a = g.memory_total_mib;
    const b = s.memory_total_mib;
    if (a === null || b === null || Math.abs(a - b) > (b * memTolerancePct) / 100) {
      problems.push(`${g.uuid}: memory ${a} MiB, nvidia-smi ${b} MiB (tolerance ${memTolerancePct}%)`);
    }
  }
  return problems;
}

/**
 * Live readings against nvidia-smi's, taken moments apart: temperature within 5 °C, power within
 * 25% or 20 W, memory used within 2% or 512 MiB. Readings either side does not have are skipped.
 */
export function compareLive(ours: readonly StatsGpu[], smi: readonly SmiGpu[]): string[] {
  const problems: string[] = [];
  const theirs = new Map(smi.map((g) => [g.uuid.toLowerCase(), g]));
  for (const g of ours) {
    const s = theirs.get(g.uuid.toLowerCase());
    if (s === undefined) continue; // compareInventory reports it
    const near = (what: string, a: number | null, b: number | null, tol: number, unit: string) => {
      if (a !== null && b !== null && Math.abs(a - b) > tol) problems.push(`${g.uuid}: ${what} ${a} ${unit}, nvidia-smi ${b} ${unit}`);
    };
    near("temperature", g.temperature_c, s.temperature_c, 5, "°C");
    near("power", g.power_w, s.power_w, Math.max(20, (s.power_w ?? 0) * 0.25), "W");
    near("memory used", g.memory_used_mib, s.memory_used_mib, Math.max(512, (s.memory_total_mib ?? 0) * 0.02), "MiB");
  }
  return problems;
}
