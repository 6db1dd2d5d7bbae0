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

/** The machine the libraries are looked for on (injected by tests; `process.arch` otherwise). */
export interface HostPlatform {
  /** Node's name for the CPU: `arm64` (aarch64: Jetson possible), `x64`, … */
  readonly arch: string;
}

/** This machine. */
export const hostPlatform = (): HostPlatform => ({ arch: process.arch });

/** The Jetson library folders, only where a Jetson can be (aarch64): elsewhere they cannot exist. */
const jetsonDirs = (platform: HostPlatform) => (platform.arch === "arm64" ? JETSON_LIBS : []);

/** Where to look for NVML, in order. */
export function nvmlCandidates(env: Env, platform: HostPlatform = hostPlatform()): string[] {
  return [env.GPU_BRIDGE_NVML_LIB, "libnvidia-ml.so.1", ...jetsonDirs(platform).map((d) => `${d}/libnvidia-ml.so.1`)]
    .filter((p): p is string => p !== undefined && p !== "");
}

/** Where to look for the CUDA driver library, in order. */
export function cudaCandidates(env: Env, platform: HostPlatform = hostPlatform()): string[] {
  return [env.GPU_BRIDGE_CUDA_LIB, "libcuda.so.1", ...jetsonDirs(platform).map((d) => `${d}/libcuda.so.1`)]
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

/** Optional symbols that were found, and the handles that bind them. */
export interface OptionalSymbols {
  readonly fns: Record<string, NativeFn>;
  /** Closes every handle opened for them. */
  close(): void;
}

/**
 * Binds the optional symbols of `path`: all in one open when the library has them all (the
 * usual case); otherwise each on its own, since one missing symbol fails a whole dlopen. Every
 * handle opened is kept, and `close()` closes them.
 */
export function probeOptional(adapter: FfiAdapter, path: string, optional: SymbolTable): OptionalSymbols {
  const libs: NativeLibrary[] = [];
  const close = () => {
    for (const lib of libs.splice(0)) lib.close();
  };
  try {
    const all = adapter.open(path, optional);
    libs.push(all);
    return { fns: { ...all.fns }, close };
  } catch {
    // at least one is absent in this driver version: bind the others one by one
  }
  const fns: Record<string, NativeFn> = {};
  for (const [name, def] of Object.entries(optional)) {
    try {
      const lib = adapter.open(path, { [name]: def });
      libs.push(lib);
      fns[name] = lib.fns[name]!;
    } catch {
      // absent: the façade reports the field as unsupported
    }
  }
  return { fns, close };
}

export async function loadFfiAdapter(): Promise<FfiAdapter> {
  if ("Bun" in globalThis) return (await import("./bun.ts")).bunFfi;
  if ("Deno" in globalThis) return (await import("./deno.ts")).denoFfi;
  throw new Error("Cannot use FFI: gpu-bridge-host runs on Bun or Deno, and this is neither");
}
