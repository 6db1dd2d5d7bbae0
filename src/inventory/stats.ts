/**
 * Live GPU statistics: everything operators ask for that must never enter the info payload.
 * A field the hardware does not report is null, never an error.
 */

export interface GpuProcess {
  readonly pid: number;
  readonly used_memory_mib: number;
}

export interface GpuStats {
  readonly id: string;
  readonly name: string;
  readonly uuid: string | null;
  readonly pci_bus_id: string | null;
  readonly utilization_gpu_pct: number | null;
  readonly utilization_memory_pct: number | null;
  readonly memory_total_mib: number | null;
  readonly memory_used_mib: number | null;
  readonly memory_free_mib: number | null;
  readonly temperature_c: number | null;
  readonly power_w: number | null;
  readonly power_limit_w: number | null;
  readonly energy_mj: number | null;
  readonly clock_graphics_mhz: number | null;
  readonly clock_sm_mhz: number | null;
  readonly clock_memory_mhz: number | null;
  readonly compute_capability: string | null;
  readonly mig_mode: "enabled" | "disabled" | null;
  readonly processes: readonly GpuProcess[] | null;
  /** Jetson only: the GPU devfreq node's frequencies and governor. */
  readonly gpu_freq_hz: { readonly cur: number | null; readonly min: number | null; readonly max: number | null } | null;
  readonly governor: string | null;
  /** Where the numbers came from: `nvml`, `cuda`, `jetson` or `mock`. */
  readonly source: string;
}

/** A stats record with every live field null, for `id` and `name`. */
export function emptyStats(id: string, name: string, source: string): GpuStats {
  return {
    id,
    name,
    uuid: null,
    pci_bus_id: null,
    utilization_gpu_pct: null,
    utilization_memory_pct: null,
    memory_total_mib: null,
    memory_used_mib: null,
    memory_free_mib: null,
    temperature_c: null,
    power_w: null,
    power_limit_w: null,
    energy_mj: null,
    clock_graphics_mhz: null,
    clock_sm_mhz: null,
    clock_memory_mhz: null,
    compute_capability: null,
    mig_mode: null,
    processes: null,
    gpu_freq_hz: null,
    governor: null,
    source,
  };
}

/** Bytes to whole MiB, rounded down (docs/protocol.md#2-gpu-info). */
export const toMiB = (bytes: number): number => Math.floor(bytes / 1048576);
