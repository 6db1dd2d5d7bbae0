/** `gpu-bridge-host stats [--json]`: live statistics, as a table or as JSON. */
import type { Command } from "../cli/options.ts";
import { selectBackend } from "../inventory/mod.ts";
import type { GpuStats } from "../inventory/stats.ts";
import type { CommandIo } from "./types.ts";

/** Prints the stats of every GPU; resolves with the exit status. */
export async function run(command: Extract<Command, { kind: "stats" }>, io: CommandIo): Promise<number> {
  const options = command.options;
  const backend = await selectBackend(options, io.logger(options.logLevel));
  try {
    const stats = await backend.stats();
    await io.stdout(options.json ? JSON.stringify(stats, null, 2) + "\n" : renderStatsTable(stats, backend.name));
    return 0;
  } finally {
    backend.close();
  }
}

const dash = (v: unknown, unit = "") => (v === null || v === undefined ? "-" : `${v}${unit}`);

/** A fixed-width table for people; `--json` is the machine form. */
export function renderStatsTable(stats: readonly GpuStats[], backend: string): string {
  const head = ["GPU", "NAME", "UTIL", "MEM USED/TOTAL", "TEMP", "POWER", "SM/MEM MHz", "CC", "MIG", "PROCS"];
  const rows = stats.map((s) => [
    s.id,
    s.name,
    dash(s.utilization_gpu_pct, "%"),
    `${dash(s.memory_used_mib)}/${dash(s.memory_total_mib)} MiB`,
    dash(s.temperature_c, " C"),
    s.power_w === null ? "-" : `${s.power_w.toFixed(1)} W`,
    `${dash(s.clock_sm_mhz ?? s.clock_graphics_mhz)}/${dash(s.clock_memory_mhz)}`,
    dash(s.compute_capability),
    s.mig_mode === null ? "-" : s.mig_mode === "enabled" ? "on" : "off",
    s.processes === null ? "-" : String(s.processes.length),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  const lines = [line(head), ...rows.map(line)];
  if (stats.length === 0) lines.push("(no GPUs)");
  return `${lines.join("\n")}\n(backend: ${backend})\n`;
}
