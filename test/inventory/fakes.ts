/** Helpers for tests that drive the fake native libraries in mock/native. */
import { dlopen, FFIType } from "bun:ffi";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "../helpers.ts";

export const FAKE_DIR = join(REPO, "mock", "native", "build");
export const FAKE_NVML = join(FAKE_DIR, "libnvidia-ml.so.1");
export const FAKE_CUDA = join(FAKE_DIR, "libcuda.so.1");
export const ORIN_ROOT = join(REPO, "mock", "jetson", "orin-r36");
export const CTL_FILE = join(FAKE_DIR, `ctl-${process.pid}`);
export const fakeEnv = { GPU_BRIDGE_NVML_LIB: FAKE_NVML, GPU_BRIDGE_CUDA_LIB: FAKE_CUDA };

if (!existsSync(FAKE_NVML) || !existsSync(FAKE_CUDA)) {
  throw new Error(`The fake native libraries are not built: run 'make native-fakes' first (looked in ${FAKE_DIR})`);
}

// Bun's process.env does not reach the C environment, and the fakes read FAKE_GPU_CTL with
// getenv(): set it through libc itself.
const libc = dlopen("libc.so.6", { setenv: { args: [FFIType.cstring, FFIType.cstring, FFIType.i32], returns: FFIType.i32 } });
libc.symbols.setenv(Buffer.from("FAKE_GPU_CTL\0"), Buffer.from(`${CTL_FILE}\0`), 1);
process.on("exit", () => rmSync(CTL_FILE, { force: true }));

/** Scripts the fake hardware: `{ count: 1, lost: "0" }` and so on; `{}` restores the defaults. */
export function scriptFakes(keys: Record<string, string | number>): void {
  writeFileSync(CTL_FILE, Object.entries(keys).map(([k, v]) => `${k}=${v}\n`).join(""));
}
