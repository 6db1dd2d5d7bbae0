/**
 * Inventory selection. The mock is tiny and loaded eagerly; native backends load FFI code and
 * are imported only when asked for, so `--mock --list` never touches it.
 */
import { mockBackend } from "../../mock/inventory.ts";
import type { InventoryBackend } from "./types.ts";

export type { GpuInfo, InventoryBackend } from "./types.ts";

/** No GPU backend could be used. */
export class InventoryError extends Error {
  override name = "InventoryError";
}

/** The backend for the given options. */
export function selectBackend(options: { readonly mock: boolean }): Promise<InventoryBackend> {
  if (options.mock) return Promise.resolve(mockBackend());
  return Promise.reject(
    new InventoryError(
      "Cannot discover GPUs: this build has no native NVML/CUDA backend yet; pass --mock to use the mock inventory",
    ),
  );
}
