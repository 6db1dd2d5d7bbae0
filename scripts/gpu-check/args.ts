/** The command line of scripts/gpu-check.ts: every refusal names the flag and the value. */
import { parseFlags, UsageError } from "../../src/cli/flags.ts";

export { UsageError };

export interface GpuCheckOptions {
  /** Shard sizes to seal and verify, in GiB (fractions allowed: 0.25 is 256 MiB). */
  readonly gib: readonly number[];
  /** The CUDA ordinal the VRAM and kernel steps use. */
  readonly device: number;
  /** How to run the bridge's own commands: the compiled binary, or Bun running src/main.ts. */
  readonly bridge: readonly string[];
  readonly nvidiaSmi: string;
  /** Extra arguments for `cdi generate` (e.g. --driver-root for a containerised driver). */
  readonly cdiArgs: readonly string[];
  /** Extra arguments for `serve` in the --mps and --mig steps (e.g. --cdi-root for a containerised driver). */
  readonly serveArgs: readonly string[];
  /** Run the MPS cap steps (an MPS-capable GPU: Volta or newer). */
  readonly mps: boolean;
  /** Run the MIG lease step (a GPU in MIG mode, with instances created). */
  readonly mig: boolean;
  /** Print the table as one JSON object too. */
  readonly json: boolean;
  readonly help: boolean;
}

export const USAGE = `Usage: bun scripts/gpu-check.ts [--gib 1,10] [--device N] [--bin PATH] [--nvidia-smi PATH]
    [--cdi-args "ARGS"] [--mps] [--mig] [--serve-args=ARGS] [--json]
  Runs every check that needs an NVIDIA GPU, in one go, and prints one table of figures. Exits 1
  when any step fails or cannot run (nothing is skipped), 2 on a bad command line.
  --gib LIST         shard sizes to seal and verify, in GiB (default 1,10; GPU_CHECK_GIB)
  --device N         the CUDA ordinal to use (default 0; GPU_CHECK_DEVICE)
  --bin PATH         run the bridge's commands with this binary (default: Bun running src/main.ts)
  --nvidia-smi PATH  the nvidia-smi to compare with (default: nvidia-smi on PATH)
  --cdi-args "ARGS"  extra arguments for cdi generate, split at spaces (e.g. "--driver-root /run/nvidia/driver")
  --mps              also check serve --mps on GPU-0: its daemon, a lease's memory cap against a
                     real client, the daemon stopped with the bridge (needs an MPS-capable GPU)
  --mig              also check a lease of a MIG device by UUID (needs a GPU in MIG mode)
  --serve-args=ARGS  extra arguments for serve in those steps, split at spaces (e.g. --serve-args="--cdi-root /run/nvidia/driver")
  --json             also print the table as one JSON object`;

const MAX_GIB = 1024;

/** Parses argv (without the program) and the environment's GPU_CHECK_* defaults. */
export function parseGpuCheckArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  mainTs: string,
  bun: string,
): GpuCheckOptions {
  const { values, positionals } = parseFlags(
    argv,
    {
      "gib": "string",
      "device": "int:0:1023",
      "bin": "string",
      "nvidia-smi": "string",
      "cdi-args": "string:blank",
      "serve-args": "string:blank",
      "mps": "bool",
      "mig": "bool",
      "json": "bool",
      "help": "bool",
    } as const,
  );
  if (positionals.length > 0) throw new UsageError(`Unexpected argument ${JSON.stringify(positionals[0])}`);
  const gibText = values.gib ?? env.GPU_CHECK_GIB ?? "1,10";
  const gib = gibText.split(",").map((part) => {
    const n = Number(part.trim());
    if (part.trim() === "" || !Number.isFinite(n) || n <= 0 || n > MAX_GIB) {
      throw new UsageError(
        `--gib: ${JSON.stringify(part)} in ${JSON.stringify(gibText)} is not a size in GiB above 0 and at most ${MAX_GIB}`,
      );
    }
    return n;
  });
  let device = values.device;
  if (device === undefined && env.GPU_CHECK_DEVICE !== undefined) {
    device = Number(env.GPU_CHECK_DEVICE);
    if (!/^\d{1,4}$/.test(env.GPU_CHECK_DEVICE) || device > 1023) {
      throw new UsageError(`GPU_CHECK_DEVICE: ${JSON.stringify(env.GPU_CHECK_DEVICE)} is not a CUDA ordinal (0..1023)`);
    }
  }
  return {
    gib,
    device: device ?? 0,
    bridge: values.bin !== undefined ? [values.bin] : [bun, mainTs],
    nvidiaSmi: values["nvidia-smi"] ?? "nvidia-smi",
    cdiArgs: (values["cdi-args"] ?? "").split(" ").filter((a) => a !== ""),
    serveArgs: (values["serve-args"] ?? "").split(" ").filter((a) => a !== ""),
    mps: values.mps === true,
    mig: values.mig === true,
    json: values.json === true,
    help: values.help === true,
  };
}
