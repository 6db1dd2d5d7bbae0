/**
 * Stats benchmark: one poll of every GPU's live stats through FFI, against one run of
 * `nvidia-smi --query-gpu=... --format=csv` (the usual way, a process per poll).
 * Target on real hardware: at least 50x cheaper. Without a GPU the poll runs against the fake
 * NVML and CUDA in mock/native (FFI and façade cost only), and nvidia-smi is reported missing.
 * Run with `make bench-stats`; POLLS=N sets the sample count (default 200).
 */
import { join } from "node:path";
import { bunFfi } from "../ffi/bun.ts";
import { openNativeBackend } from "../src/inventory/native.ts";
import { quantile } from "./quantile.ts";

const repo = join(import.meta.dir, "..");
const polls = Number(process.env.POLLS ?? 200);
const fakes = process.env.GPU_BRIDGE_NVML_LIB === undefined && process.env.REAL_GPU === undefined;
const env = fakes
  ? {
    GPU_BRIDGE_NVML_LIB: join(repo, "mock/native/build/libnvidia-ml.so.1"),
    GPU_BRIDGE_CUDA_LIB: join(repo, "mock/native/build/libcuda.so.1"),
  }
  : process.env;
const backend = openNativeBackend({ kind: "auto", adapter: bunFfi, env, sysRoot: "/" });
const median = (xs: number[]) => quantile(xs, 0.5);

const poll: number[] = [];
let gpus = 0;
for (let i = 0; i < polls + 10; i++) {
  const t0 = performance.now();
  gpus = (await backend.stats()).length;
  if (i >= 10) poll.push(performance.now() - t0);
}
backend.close();
console.log(
  `stats poll of ${gpus} GPUs through FFI (${fakes ? "fake libraries" : `backend ${backend.name}`}): ` +
    `median ${(median(poll) * 1000).toFixed(1)} us over ${polls} polls`,
);

const query = "--query-gpu=index,uuid,pci.bus_id,utilization.gpu,utilization.memory,memory.total,memory.used," +
  "memory.free,temperature.gpu,power.draw,power.limit,clocks.gr,clocks.sm,clocks.mem,mig.mode.current";
const smi: number[] = [];
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  let r;
  try {
    r = Bun.spawnSync(["nvidia-smi", query, "--format=csv"], { stdout: "pipe", stderr: "pipe" });
  } catch {
    break;
  }
  if (r.exitCode !== 0) break;
  smi.push(performance.now() - t0);
}
if (smi.length === 0) {
  console.log("nvidia-smi: not available on this machine, so no ratio (run on a GPU host with REAL_GPU=1)");
} else {
  const ratio = median(smi) / median(poll);
  console.log(`nvidia-smi --query-gpu ... --format=csv: median ${median(smi).toFixed(1)} ms over ${smi.length} runs`);
  console.log(`ratio: FFI poll is ${ratio.toFixed(0)}x cheaper (target >= 50x: ${ratio >= 50 ? "met" : "MISSED"})`);
}
