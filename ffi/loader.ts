/**
 * Finds and opens a native library: the environment's override first, then the loader path,
 * then the known Jetson locations. When nothing loads, the error lists every path tried and
 * why, and points at `--mock`.
 */
import type { FfiAdapter, NativeFn, NativeLibrary, SymbolTable } from "./types.ts";

/** No candidate path could be opened. */
export class NativeLibraryError extends Error {
  override name = "NativeLibraryError";
  readonly attempts: readonly { path: string; error: string }[];
  constructor(what: string, attempts: { path: string; error: string }[]) {
    super(
      `Cannot load ${what}; tried:\n` + attempts.map((a) => `  ${a.path}: ${a.error}`).join("\n") +
        "\nInstall the NVIDIA driver, point the override variable at the library, or pass --mock to use the mock inventory",
    );
    this.attempts = attempts;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

const JETSON_LIBS = ["/usr/lib/aarch64-linux-gnu/tegra", "/usr/lib/aarch64-linux-gnu/nvidia"];

/** Where to look for NVML, in order. */
export function nvmlCandidates(env: Env): string[] {
  return [env.GPU_BRIDGE_NVML_LIB, "libnvidia-ml.so.1", ...JETSON_LIBS.map((d) => `${d}/libnvidia-ml.so.1`)]
    .filter((p): p is string => p !== undefined && p !== "");
}

/** Where to look for the CUDA driver library, in order. */
export function cudaCandidates(env: Env): string[] {
  return [env.GPU_BRIDGE_CUDA_LIB, "libcuda.so.1", ...JETSON_LIBS.map((d) => `${d}/libcuda.so.1`)]
    .filter((p): p is string => p !== undefined && p !== "");
}

/** Opens the first candidate that has every symbol of `required`. */
export function openFirst(adapter: FfiAdapter, what: string, candidates: string[], required: SymbolTable): NativeLibrary {
  const attempts: { path: string; error: string }[] = [];
  for (const path of candidates) {
    try {
      return adapter.open(path, required);
    } catch (error) {
      attempts.push({ path, error: error instanceof Error ? error.message.split("\n")[0]! : String(error) });
    }
  }
  throw new NativeLibraryError(what, attempts);
}

/** Binds each optional symbol on its own, since one missing symbol fails a whole dlopen. */
export function probeOptional(adapter: FfiAdapter, path: string, optional: SymbolTable): Record<string, NativeFn> {
  const found: Record<string, NativeFn> = {};
  for (const [name, def] of Object.entries(optional)) {
    try {
      found[name] = adapter.open(path, { [name]: def }).fns[name]!;
    } catch {
      // absent in this driver version: the façade reports the field as unsupported
    }
  }
  return found;
}

/** The FFI adapter of the runtime executing this code. */
export async function loadFfiAdapter(): Promise<FfiAdapter> {
  if ("Bun" in globalThis) return (await import("./bun.ts")).bunFfi;
  if ("Deno" in globalThis) return (await import("./deno.ts")).denoFfi;
  throw new Error("Cannot use FFI: gpu-bridge-host runs on Bun or Deno, and this is neither");
}
