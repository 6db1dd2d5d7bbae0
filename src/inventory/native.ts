/**
 * Native inventory: NVML on servers (with CUDA for the SM count), CUDA alone where NVML is
 * missing, and Jetson (CUDA plus sysfs) where the GPU is integrated. `auto` tries them in that
 * order and, when none works, says what each attempt met.
 */
import { CU_ATTR, Cuda } from "../../ffi/cuda.ts";
import { cudaCandidates, type HostPlatform, hostPlatform, nvmlCandidates } from "../../ffi/loader.ts";
import { Nvml } from "../../ffi/nvml.ts";
import type { FfiAdapter } from "../../ffi/types.ts";
import type { Logger } from "../util/log.ts";
import { CudaBackend, JetsonBackend } from "./cuda-backend.ts";
import { InventoryError } from "./errors.ts";
import { type LibraryFailure, libraryLine, noGpuMessage } from "./no-gpu.ts";
import { NvmlBackend } from "./nvml-backend.ts";
import type { InventoryBackend } from "./types.ts";

export interface NativeOptions {
  readonly kind: "auto" | "nvml" | "cuda" | "jetson";
  readonly adapter: FfiAdapter;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly sysRoot: string;
  readonly log?: Logger;
  /** Where the libraries are looked for (the Jetson folders only on aarch64); default: this machine. */
  readonly platform?: HostPlatform;
}

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

/** Opens the backend `kind`, or throws InventoryError naming everything that was tried. */
export function openNativeBackend(o: NativeOptions): InventoryBackend {
  const log = o.log ?? silent;
  const platform = o.platform ?? hostPlatform();
  const failures: LibraryFailure[] = [];
  const failed = (label: string, envVar: string, error: unknown) => {
    const f = { label, envVar, override: o.env[envVar] || undefined, error };
    failures.push(f);
    return f;
  };
  let cudaFailure: LibraryFailure | null = null;
  const tryCuda = (): Cuda | null => {
    try {
      return Cuda.open(o.adapter, cudaCandidates(o.env, platform));
    } catch (error) {
      cudaFailure = failed("CUDA", "GPU_BRIDGE_CUDA_LIB", error);
      return null;
    }
  };

  if (o.kind === "auto" || o.kind === "nvml") {
    try {
      const nvml = Nvml.open(o.adapter, nvmlCandidates(o.env, platform));
      const usable = nvmlUsable(nvml);
      if (usable === null || o.kind === "nvml") {
        const cuda = tryCuda();
        if (cuda === null) log.warn(`CUDA driver unavailable, so sm_count cannot be read: ${libraryLine(cudaFailure!)}`);
        return new NvmlBackend(nvml, cuda, log, o.sysRoot);
      }
      failed("NVML", "GPU_BRIDGE_NVML_LIB", new Error(usable));
      nvml.close();
    } catch (error) {
      failed("NVML", "GPU_BRIDGE_NVML_LIB", error);
      if (o.kind === "nvml") throw new InventoryError(noGpuMessage(o.kind, failures));
    }
  }

  const cuda = tryCuda();
  if (cuda === null) throw new InventoryError(noGpuMessage(o.kind, failures));
  let integrated = false;
  try {
    integrated = cuda.deviceCount() > 0 && cuda.attribute(CU_ATTR.INTEGRATED, cuda.device(0)) === 1;
  } catch (error) {
    log.warn(`Cannot tell whether the GPU is integrated: ${message(error)}`);
  }
  if (o.kind === "jetson" || (o.kind === "auto" && integrated)) {
    if (o.kind === "auto") log.info(`using the Jetson backend (CUDA at ${cuda.path} plus sysfs under ${o.sysRoot})`);
    return new JetsonBackend(cuda, log, o.sysRoot);
  }
  if (o.kind === "auto") log.info(`NVML unavailable (${libraryLine(failures[0]!)}); using CUDA at ${cuda.path}`);
  return new CudaBackend(cuda, log, o.sysRoot);
}

/**
 * Why NVML, although it loaded, cannot serve the inventory (null if it can): no devices, or a
 * device that answers NOT_SUPPORTED for memory, as NVML does on Jetson.
 */
function nvmlUsable(nvml: Nvml): string | null {
  try {
    if (nvml.deviceCount() === 0) return "NVML reports no GPUs";
    nvml.memory(nvml.handle(0));
    return null;
  } catch (error) {
    return `NVML is present but unusable here: ${message(error)}`;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
