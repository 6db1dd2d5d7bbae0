/**
 * `make bench-doctor`: how long the doctor's checks take on the fake NVML and libcuda (the
 * process start excluded), cold (first run: FFI opens, module loads) and warm (median of 20).
 */
import { join } from "node:path";
import { bunFfi } from "../ffi/bun.ts";
import { DEFAULTS } from "../src/config/defaults.ts";
import { runDoctor } from "../src/doctor/mod.ts";

const build = join(import.meta.dir, "..", "mock", "native", "build");
const env = { GPU_BRIDGE_NVML_LIB: join(build, "libnvidia-ml.so.1"), GPU_BRIDGE_CUDA_LIB: join(build, "libcuda.so.1") };
const options = {
  backend: "auto" as const,
  sysRoot: "/",
  devRoot: "/",
  stateDir: "/tmp/gbh-bench-doctor-state",
  spoolMaxBytes: DEFAULTS.spoolMaxMb * 1024 * 1024,
  cdiSpecDirs: DEFAULTS.cdiSpecDirs,
  console: null,
  timeoutMs: DEFAULTS.doctorTimeoutMs,
};
const deps = {
  env,
  adapter: () => Promise.resolve(bunFfi),
  connect: () => Promise.reject(new Error("none")),
  uid: process.getuid?.() ?? 0,
};
const run = async () => {
  const t = performance.now();
  const r = await runDoctor(options, deps);
  return { ms: performance.now() - t, checks: r.checks.length };
};
const cold = await run();
const warm: number[] = [];
for (let i = 0; i < 20; i++) warm.push((await run()).ms);
warm.sort((a, b) => a - b);
console.log(
  `doctor checks (${cold.checks}, fake NVML + libcuda, no console): cold ${cold.ms.toFixed(1)} ms, warm median ${warm[10]!.toFixed(1)} ms`,
);
