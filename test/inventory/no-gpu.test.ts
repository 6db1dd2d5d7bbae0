/**
 * The "no GPU" answer on a machine without a driver: at most five lines, naming exactly what was
 * tried (the Jetson folders only on aarch64), the variables that point at a library elsewhere,
 * and --mock; never the current folder, which the loader's search by name does not look in.
 */
import { afterEach, expect, test } from "bun:test";
import { bunFfi } from "../../ffi/bun.ts";
import { NativeLibraryError } from "../../ffi/loader.ts";
import type { FfiAdapter } from "../../ffi/types.ts";
import { InventoryError } from "../../src/inventory/errors.ts";
import { openNativeBackend } from "../../src/inventory/native.ts";
import { libraryLine, noGpuMessage } from "../../src/inventory/no-gpu.ts";
import type { InventoryBackend } from "../../src/inventory/types.ts";
import { FAKE_CUDA } from "./fakes.ts";

let backend: InventoryBackend | null = null;
afterEach(() => {
  backend?.close();
  backend = null;
});

/** A machine without the driver: every open by name or under /usr fails as dlopen does (Bun's words, cwd and all). */
const tried: string[] = [];
const noDriver: FfiAdapter = {
  ...bunFfi,
  open: (path, table) => {
    tried.push(path);
    if (path.startsWith("/nonexistent/") || path === FAKE_CUDA) return bunFfi.open(path, table);
    throw new Error(
      `Failed to open library "${path}": ${process.cwd()}/${path}: cannot open shared object file: No such file or directory`,
    );
  },
};

function fail(arch: string, env: Record<string, string> = {}, kind: "auto" | "nvml" | "cuda" = "auto"): string[] {
  tried.length = 0;
  try {
    backend = openNativeBackend({ kind, adapter: noDriver, env, sysRoot: "/", platform: { arch } });
  } catch (error) {
    expect(error).toBeInstanceOf(InventoryError);
    return (error as Error).message.split("\n");
  }
  throw new Error("expected no backend");
}

const HINT = "If the driver is installed elsewhere, set GPU_BRIDGE_NVML_LIB or GPU_BRIDGE_CUDA_LIB to the library's full path; " +
  "without an NVIDIA GPU, add --mock for the mock inventory.";

test("on x86_64: four lines, the loader's search by name only, no Jetson path tried or named, no current folder", () => {
  const lines = fail("x64");
  expect(lines).toEqual([
    "Cannot discover GPUs (backend auto): neither NVML nor CUDA could be used.",
    "NVML: libnvidia-ml.so.1 not found by the dynamic loader (ld.so.cache, LD_LIBRARY_PATH)",
    "CUDA: libcuda.so.1 not found by the dynamic loader (ld.so.cache, LD_LIBRARY_PATH)",
    HINT,
  ]);
  expect(tried).toEqual(["libnvidia-ml.so.1", "libcuda.so.1"]); // exactly what the message names
  expect(lines.join("\n")).not.toContain(process.cwd());
});

test("on aarch64 (where a Jetson can be): the Jetson folders are tried, and named, in the same four lines", () => {
  const lines = fail("arm64");
  expect(lines).toEqual([
    "Cannot discover GPUs (backend auto): neither NVML nor CUDA could be used.",
    "NVML: libnvidia-ml.so.1 not found by the dynamic loader (ld.so.cache, LD_LIBRARY_PATH), " +
    "nor in /usr/lib/aarch64-linux-gnu/tegra or /usr/lib/aarch64-linux-gnu/nvidia (Jetson)",
    "CUDA: libcuda.so.1 not found by the dynamic loader (ld.so.cache, LD_LIBRARY_PATH), " +
    "nor in /usr/lib/aarch64-linux-gnu/tegra or /usr/lib/aarch64-linux-gnu/nvidia (Jetson)",
    HINT,
  ]);
  expect(tried.filter((p) => p.includes("aarch64")).length).toBe(4);
});

test("an override that is not there, or not a driver library, is named with the real loader's reason", () => {
  const lines = fail("x64", { GPU_BRIDGE_NVML_LIB: "/nonexistent/libnvidia-ml.so.1", GPU_BRIDGE_CUDA_LIB: FAKE_CUDA }, "nvml");
  expect(lines.length).toBeLessThanOrEqual(5);
  expect(lines[1]).toBe(
    "NVML: GPU_BRIDGE_NVML_LIB=/nonexistent/libnvidia-ml.so.1: no such file; " +
      "libnvidia-ml.so.1 not found by the dynamic loader (ld.so.cache, LD_LIBRARY_PATH)",
  );
  expect(lines.at(-1)).toContain("set GPU_BRIDGE_NVML_LIB to the library's full path");
  // The CUDA library where NVML is wanted loads but lacks NVML's symbols: that reason, not "not found".
  const wrong = fail("x64", { GPU_BRIDGE_NVML_LIB: FAKE_CUDA }, "nvml");
  expect(wrong[1]).toStartWith(`NVML: GPU_BRIDGE_NVML_LIB=${FAKE_CUDA}: Symbol "`);
});

test("libraryLine() gives a library that loaded but cannot serve its own reason", () => {
  const f = { label: "NVML", envVar: "GPU_BRIDGE_NVML_LIB", override: undefined };
  expect(libraryLine({ ...f, error: new Error("NVML reports no GPUs") })).toBe("NVML: NVML reports no GPUs");
  const bad = new NativeLibraryError("NVML", [{ path: "/usr/lib/libnvidia-ml.so.1", error: "invalid ELF header" }]);
  expect(libraryLine({ ...f, error: bad })).toBe("NVML: /usr/lib/libnvidia-ml.so.1: invalid ELF header");
  expect(noGpuMessage("nvml", [{ ...f, error: bad }]).split("\n").length).toBe(3);
});
