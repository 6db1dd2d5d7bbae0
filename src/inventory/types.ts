import type { GpuStats } from "./stats.ts";

export type { GpuInfo } from "../contract/info.ts";
import type { GpuInfo } from "../contract/info.ts";

/** A source of GPUs: the mock, NVML, CUDA or Jetson. */
export interface InventoryBackend {
  readonly name: string;
  /** The GPUs present now, in the order the VM should see them; a GPU that is gone is left out. */
  list(): Promise<GpuInfo[]>;
  /** Live statistics of the GPUs present now; unsupported fields are null. */
  stats(): Promise<GpuStats[]>;
  /** Releases native libraries. */
  close(): void;
  /** The CUDA device ordinal behind a GPU id (for the CUDA runner), where there is one. */
  cudaOrdinal?(id: string): number | undefined;
}
