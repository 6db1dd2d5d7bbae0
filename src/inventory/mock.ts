/**
 * The deterministic mock inventory of docs/protocol.md#2-gpu-info, used by `--mock` and in CI.
 */
import { emptyStats, type GpuStats } from "./stats.ts";
import type { GpuInfo, InventoryBackend } from "./types.ts";

/** The two mock GPUs, in order. */
export const MOCK_GPUS: readonly GpuInfo[] = Object.freeze([
  Object.freeze({
    id: "GPU-0",
    name: "Mock 4090",
    memory_mb: 24576,
    sm_count: 144,
    driver_version: "555.0",
    runtime_version: "12.4",
  }),
  Object.freeze({
    id: "GPU-1",
    name: "Mock 4060",
    memory_mb: 8192,
    sm_count: 64,
    driver_version: "555.0",
    runtime_version: "12.4",
  }),
]);

/** Deterministic live stats for the mock GPUs (a quarter of memory used, and so on). */
export function mockStats(): GpuStats[] {
  return MOCK_GPUS.map((g, i) => ({
    ...emptyStats(g.id, g.name, "mock"),
    uuid: `GPU-00000000-0000-4000-8000-00000000000${i}`,
    pci_bus_id: `00000000:0${i + 1}:00.0`,
    utilization_gpu_pct: 20 + 10 * i,
    utilization_memory_pct: 5 + i,
    memory_total_mib: g.memory_mb,
    memory_used_mib: g.memory_mb / 4,
    memory_free_mib: (g.memory_mb * 3) / 4,
    temperature_c: 45 + i,
    power_w: 120.5 - 60 * i,
    power_limit_w: 450 - 300 * i,
    energy_mj: 1_000_000 * (i + 1),
    clock_graphics_mhz: 2520 - 100 * i,
    clock_sm_mhz: 2520 - 100 * i,
    clock_memory_mhz: 10501 - 1000 * i,
    compute_capability: "8.9",
    mig_mode: null,
    processes: [],
  }));
}

/** A backend that always answers the mock inventory. */
export function mockBackend(): InventoryBackend {
  return {
    name: "mock",
    list: () => Promise.resolve(MOCK_GPUS.map((g) => ({ ...g }))),
    stats: () => Promise.resolve(mockStats()),
    close: () => {},
  };
}
