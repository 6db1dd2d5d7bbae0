/**
 * The deterministic mock inventory of contract section 2, used by `--mock` and in CI.
 */
import type { GpuInfo, InventoryBackend } from "../src/inventory/types.ts";

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

/** A backend that always answers the mock inventory. */
export function mockBackend(): InventoryBackend {
  return { name: "mock", list: () => Promise.resolve(MOCK_GPUS.map((g) => ({ ...g }))) };
}
