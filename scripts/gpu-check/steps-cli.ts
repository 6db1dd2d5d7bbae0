/**
 * The steps that run the bridge's own commands (the binary an operator installs, or Bun running
 * src/main.ts) and nvidia-smi as separate processes: doctor, inventory, live stats and their
 * timing, and `cdi generate` validated. Every step returns rows; none skips.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { GpuCheckOptions } from "./args.ts";
import { compareInventory, compareLive, parseSmi, smiArgs, type SmiGpu, type StatsGpu } from "./nvidia-smi.ts";
import { fail, ms, pass, type Row } from "./table.ts";

/** A command that could not be started, or ended on a signal or its timeout. */
export class StepError extends Error {
  override name = "StepError";
}

export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs `cmd` to completion (bounded by `timeoutMs`, in `env` if given); a start failure or a kill throws StepError. */
export function run(cmd: readonly string[], timeoutMs = 120_000, env?: NodeJS.ProcessEnv): Ran {
  const t0 = performance.now();
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", timeout: timeoutMs, maxBuffer: 256 << 20, ...(env && { env }) });
  const took = performance.now() - t0;
  // The command as a reader would type it, long arguments (nvidia-smi's field list) shortened.
  const what = cmd.map((a) => (a.length > 40 ? a.slice(0, 37) + "…" : a)).map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ");
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === "ETIMEDOUT") {
    throw new StepError(`${what} ran past its limit of ${timeoutMs} ms and was killed`, { cause: r.error });
  }
  if (r.error !== undefined) throw new StepError(`${what} could not run: ${r.error.message}`, { cause: r.error });
  if (r.status === null) throw new StepError(`${what} was killed by ${r.signal} after ${ms(took)} (limit ${timeoutMs} ms)`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: took };
}

const tail = (s: string, n = 400) => (s.trim().length > n ? "…" + s.trim().slice(-n) : s.trim());
const bridge = (o: GpuCheckOptions, args: readonly string[], timeoutMs?: number) => run([...o.bridge, ...args], timeoutMs);

/** `doctor --json`: exit 0 and one JSON object. A build without the command fails, loudly. */
export function doctorStep(o: GpuCheckOptions): Row {
  const r = bridge(o, ["doctor", "--json"], 30_000);
  if (r.code === 2 && /unknown (option|command)|unexpected argument/i.test(r.stderr)) {
    return fail("doctor --json", `this build of gpu-bridge-host has no doctor command (it answered: ${tail(r.stderr, 160)})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.stdout);
  } catch {
    return fail("doctor --json", `exit ${r.code}, and its output is not JSON: ${tail(r.stdout || r.stderr)}`, ms(r.ms));
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return fail("doctor --json", `exit ${r.code}, and its output is not one JSON object`, ms(r.ms));
  }
  if (r.code !== 0) return fail("doctor --json", `exit ${r.code}: ${tail(r.stdout)}`, ms(r.ms));
  return pass("doctor --json", ms(r.ms), `exit 0; ${Object.keys(parsed).length} top-level fields`);
}

/** nvidia-smi's view, parsed. */
export function smi(o: GpuCheckOptions): { gpus: SmiGpu[]; ms: number } {
  const r = run([o.nvidiaSmi, ...smiArgs()], 30_000);
  if (r.code !== 0) throw new StepError(`${o.nvidiaSmi} exited ${r.code}: ${tail(r.stderr || r.stdout)}`);
  const gpus = parseSmi(r.stdout);
  if (gpus.length === 0) throw new StepError(`${o.nvidiaSmi} lists no GPU`);
  return { gpus, ms: r.ms };
}

/** The bridge's `stats --backend <backend> --json`. */
export function stats(o: GpuCheckOptions, backend: "nvml" | "cuda"): { gpus: (StatsGpu & Record<string, unknown>)[]; ms: number } {
  const r = bridge(o, ["stats", "--backend", backend, "--json"], 30_000);
  if (r.code !== 0) throw new StepError(`stats --backend ${backend} exited ${r.code}: ${tail(r.stderr)}`);
  return { gpus: JSON.parse(r.stdout), ms: r.ms };
}

/** The GPUs NVML and CUDA see, each against nvidia-smi's list. */
export function inventorySteps(o: GpuCheckOptions, reference: SmiGpu[]): Row[] {
  return (["nvml", "cuda"] as const).map((backend) => {
    const step = `inventory ${backend.toUpperCase()} vs nvidia-smi`;
    try {
      const ours = stats(o, backend).gpus;
      // CUDA's total leaves out what the driver keeps for itself; NVML's is nvidia-smi's own figure.
      const problems = compareInventory(ours, reference, backend === "nvml" ? 0 : 3);
      const figure = `${ours.length} GPU${ours.length === 1 ? "" : "s"}`;
      const names = ours.map((g) => `${g.name} ${g.compute_capability} ${g.memory_total_mib} MiB`).join("; ");
      return problems.length === 0 ? pass(step, figure, names) : fail(step, problems.join("; "), figure);
    } catch (error) {
      return fail(step, (error as Error).message);
    }
  });
}

/**
 * Live stats: NVML readings against nvidia-smi's moments later, sane ranges, and the energy
 * counter moving over a second; then how long `stats --json` takes next to nvidia-smi (median of 5).
 */
export async function liveStatsSteps(o: GpuCheckOptions, sleep: (ms: number) => Promise<void>): Promise<Row[]> {
  const rows: Row[] = [];
  try {
    const first = stats(o, "nvml").gpus;
    const reference = smi(o).gpus;
    const problems = compareLive(first, reference);
    for (const g of first) {
      const util = g.utilization_gpu_pct as number | null;
      if (util !== null && (util < 0 || util > 100)) problems.push(`${g.uuid}: utilization ${util}%`);
      if (g.temperature_c !== null && (g.temperature_c < 0 || g.temperature_c > 120)) {
        problems.push(`${g.uuid}: temperature ${g.temperature_c} °C`);
      }
    }
    await sleep(1000);
    const second = new Map(stats(o, "nvml").gpus.map((g) => [g.uuid, g]));
    let moved = 0;
    for (const g of first) {
      const a = g.energy_mj as number | null;
      const b = second.get(g.uuid)?.energy_mj as number | null | undefined;
      if (a === null || b === null || b === undefined) continue;
      if (b > a) moved++;
      else problems.push(`${g.uuid}: the energy counter did not move in 1 s (${a} -> ${b} mJ)`);
    }
    const detail = first.map((g) => `${g.temperature_c} °C ${g.power_w} W ${g.memory_used_mib} MiB used`).join("; ");
    rows.push(
      problems.length === 0
        ? pass("live stats vs nvidia-smi", `${moved} energy counters moving`, detail)
        : fail("live stats vs nvidia-smi", problems.join("; ")),
    );
  } catch (error) {
    rows.push(fail("live stats vs nvidia-smi", (error as Error).message));
  }
  try {
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const ours = median(Array.from({ length: 5 }, () => stats(o, "nvml").ms));
    const theirs = median(Array.from({ length: 5 }, () => smi(o).ms));
    rows.push(
      pass("stats --json vs nvidia-smi timing", `${ms(ours)} vs ${ms(theirs)}`, "median of 5 process runs each, start-up included"),
    );
  } catch (error) {
    rows.push(fail("stats --json vs nvidia-smi timing", (error as Error).message));
  }
  return rows;
}

/** `cdi generate` on this host, then `cdi validate` (host check included), and every GPU named in it. */
export function cdiStep(o: GpuCheckOptions, reference: SmiGpu[], tmp: string): Row {
  const step = "cdi generate + validate";
  try {
    const out = join(tmp, "nvidia.json");
    const g = bridge(o, ["cdi", "generate", ...o.cdiArgs, "--output", out], 60_000);
    if (g.code !== 0) return fail(step, `cdi generate exited ${g.code}: ${tail(g.stderr)}`, ms(g.ms));
    const v = bridge(o, ["cdi", "validate", out], 60_000);
    if (v.code !== 0) return fail(step, `cdi validate exited ${v.code}: ${tail(v.stderr || v.stdout)}`, ms(g.ms));
    const spec = JSON.parse(readFileSync(out, "utf8")) as { devices?: { name?: string }[] };
    const names = new Set((spec.devices ?? []).map((d) => d.name));
    const missing = reference.filter((r) => !names.has(String(r.index)) && !names.has(r.uuid)).map((r) => `${r.index} (${r.uuid})`);
    if (missing.length > 0) return fail(step, `the spec names no device for GPU ${missing.join(", ")}`, ms(g.ms));
    return pass(step, ms(g.ms), `${names.size} devices; validate exit 0`);
  } catch (error) {
    return fail(step, (error as Error).message);
  }
}
