/**
 * `make gpu-check`: everything that needs an NVIDIA GPU, in one run, with one table of figures at
 * the end (docs/gpu-check.md says what each row means):
 *   doctor --json; the inventory through NVML and through CUDA against nvidia-smi --query-gpu;
 *   live stats against nvidia-smi and how long each takes; cdi generate on this host, validated;
 *   both job kernels with known answers; the tree kernels as shipped (portable PTX) against the
 *   same kernels under this GPU's own target; and for each size (1 and 10 GiB by default) a seal,
 *   verify on the GPU tree, the CPU tree and sampled, and one byte changed in VRAM caught.
 *   With --mps / --mig (an MPS-capable GPU, a GPU in MIG mode): serve --mps's daemon and a lease's
 *   memory cap against a real client; a lease of a MIG device by UUID.
 * A step that cannot run is a failure, never a skip: exit 1 if any row failed, 2 on a bad command
 * line. The steps that run the bridge's commands go first, before this process holds a CUDA
 * context (whose memory would show in the comparisons).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { CudaVram } from "../ffi/cuda-vram.ts";
import { cudaCandidates, loadFfiAdapter } from "../ffi/loader.ts";
import { bunRuntime } from "../src/runtime/bun.ts";
import { TREE_PTX } from "../src/vram/ptx/generated/tree-ptx.ts";
import { TreePool } from "../src/vram/tree-pool.ts";
import { type GpuCheckOptions, parseGpuCheckArgs, USAGE, UsageError } from "./gpu-check/args.ts";
import type { SmiGpu } from "./gpu-check/nvidia-smi.ts";
import { migSteps, mpsSteps } from "./gpu-check/steps-caps.ts";
import { cdiStep, doctorStep, inventorySteps, liveStatsSteps, smi } from "./gpu-check/steps-cli.ts";
import { cpuThreads, jobKernelSteps, ptxCompareStep, shardSteps } from "./gpu-check/steps-gpu.ts";
import { fail, renderTable, type Row } from "./gpu-check/table.ts";

async function check(o: GpuCheckOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const note = (r: Row[]) => {
    for (const row of r) process.stderr.write(`gpu-check: ${row.ok ? "PASS" : "FAIL"} ${row.step}${row.figure ? `: ${row.figure}` : ""}\n`);
    rows.push(...r);
  };
  note([doctorStep(o)]);
  let reference: SmiGpu[] = [];
  try {
    reference = smi(o).gpus;
    note(inventorySteps(o, reference));
  } catch (error) {
    note([fail("nvidia-smi --query-gpu", (error as Error).message)]);
  }
  note(await liveStatsSteps(o, (ms) => new Promise((r) => setTimeout(r, ms))));
  const tmp = mkdtempSync(join(tmpdir(), "gpu-check-"));
  try {
    note([cdiStep(o, reference, tmp)]);
    // Asked for only: they need an MPS-capable GPU and a GPU in MIG mode (docs/gpu-check.md).
    if (o.mps) note(await mpsSteps(o, join(tmp, "mps")));
    if (o.mig) note(await migSteps(o, join(tmp, "mig")));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  note(await jobKernelSteps(o, bunRuntime()));
  let vram: CudaVram | null = null;
  const pool = TreePool.create(cpuThreads());
  try {
    const ffi = await loadFfiAdapter();
    const candidates = cudaCandidates(process.env);
    vram = CudaVram.open(ffi, candidates, TREE_PTX);
    note([ptxCompareStep(o, ffi, candidates, vram, Math.min(1, ...o.gib))]);
    for (const gib of o.gib) note(await shardSteps(o, vram, pool, gib));
  } catch (error) {
    note([fail("CUDA driver", (error as Error).message)]);
  } finally {
    pool.close();
    vram?.close();
  }
  return rows;
}

let options: GpuCheckOptions;
try {
  options = parseGpuCheckArgs(process.argv.slice(2), process.env, join(import.meta.dirname, "..", "src", "main.ts"), process.execPath);
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  process.stderr.write(`gpu-check: ${error.message}\n${USAGE}\n`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(USAGE + "\n");
  process.exit(0);
}
const t0 = performance.now();
const rows = await check(options);
process.stdout.write(renderTable(rows));
process.stdout.write(`gpu-check: ${((performance.now() - t0) / 1000).toFixed(1)} s in all\n`);
if (options.json) process.stdout.write(JSON.stringify({ ok: rows.every((r) => r.ok), rows }) + "\n");
process.exit(rows.every((r) => r.ok) ? 0 : 1);
