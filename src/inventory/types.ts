/** What `/gpu/<id>/info` holds: exactly these six fields, never more (contract section 2). */
export interface GpuInfo {
  readonly id: string;
  readonly name: string;
  readonly memory_mb: number;
  readonly sm_count: number;
  readonly driver_version: string;
  readonly runtime_version: string;
}

/** A source of GPUs: the mock, NVML, CUDA or Jetson. */
export interface InventoryBackend {
  readonly name: string;
  /** The GPUs present now, in the order the VM should see them. */
  list(): Promise<GpuInfo[]>;
}
