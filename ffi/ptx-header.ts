/**
 * What a PTX module's header promises a driver: the PTX ISA version it is written in (a driver
 * JIT-compiles only ISA versions its CUDA release knows) and the oldest GPU it targets (a GPU
 * older than `.target` cannot run it). Used to explain a driver's refusal, and by anything that
 * tells an operator in advance whether the shipped kernels will load on a GPU.
 */

export interface PtxHeader {
  /** `.version`, e.g. "6.0". */
  readonly version: string;
  /** The version as a number of tenths (6.0 -> 60), for comparisons. */
  readonly isa: number;
  /** `.target`, e.g. "sm_50". */
  readonly target: string;
  /** The target's compute capability as major*10 + minor (sm_50 -> 50). */
  readonly sm: number;
}

/** A malformed or missing `.version` / `.target` directive. */
export class PtxHeaderError extends Error {
  override name = "PtxHeaderError";
}

/** The `.version` and `.target` directives of `text` (comments and blank lines may precede them). */
export function parsePtxHeader(text: string): PtxHeader {
  const version = /^\.version[ \t]+(\d+)\.(\d+)[ \t]*$/m.exec(text);
  if (version === null) throw new PtxHeaderError("The PTX has no `.version <major>.<minor>` directive");
  const target = /^\.target[ \t]+(sm_(\d+)[a-z]?)\b/m.exec(text);
  if (target === null) throw new PtxHeaderError("The PTX has no `.target sm_<NN>` directive");
  return {
    version: `${version[1]}.${version[2]}`,
    isa: Number(version[1]) * 10 + Number(version[2]),
    target: target[1]!,
    sm: Number(target[2]),
  };
}

/**
 * The CUDA release that introduced each PTX ISA version (NVIDIA's PTX ISA release notes): a
 * driver of that CUDA version or newer JIT-compiles it. The one table of these facts: `doctor`
 * explains refusals with it, and `maxPtxIsa` reads it backwards.
 */
export const PTX_ISA_MIN_CUDA: Readonly<Record<string, string>> = {
  "3.1": "5.0",
  "3.2": "5.5",
  "4.0": "6.0",
  "4.1": "6.5",
  "4.2": "7.0",
  "4.3": "7.5",
  "5.0": "8.0",
  "6.0": "9.0",
  "6.1": "9.1",
  "6.2": "9.2",
  "6.3": "10.0",
  "6.4": "10.1",
  "6.5": "10.2",
  "7.0": "11.0",
  "7.1": "11.1",
  "7.2": "11.2",
  "7.3": "11.3",
  "7.4": "11.4",
  "7.5": "11.5",
  "7.6": "11.6",
  "7.7": "11.7",
  "7.8": "11.8",
  "8.0": "12.0",
  "8.1": "12.1",
  "8.2": "12.2",
  "8.3": "12.3",
  "8.4": "12.4",
  "8.5": "12.5",
  "8.6": "12.7",
  "8.7": "12.8",
  "8.8": "12.9",
  "9.0": "13.0",
};

/** `1000*major + 10*minor` (as the drivers report it) for `X.Y`. */
export const cudaNumber = (v: string) => {
  const [major, minor] = v.split(".").map(Number);
  return 1000 * major! + 10 * (minor ?? 0);
};

/** The oldest PTX ISA this code reasons about in tenths: CUDA 9.0's, older than anything it ships. */
const OLDEST_ISA = 60;

/**
 * The newest PTX ISA a driver of CUDA release `driverVersion` (cuDriverGetVersion's 1000*major +
 * 10*minor) JIT-compiles, in tenths, from `PTX_ISA_MIN_CUDA`; null below CUDA 9.0.
 */
export function maxPtxIsa(driverVersion: number): number | null {
  let best: number | null = null;
  for (const [isa, cuda] of Object.entries(PTX_ISA_MIN_CUDA)) {
    const [major, minor] = isa.split(".").map(Number);
    const tenths = major! * 10 + minor!;
    if (tenths >= OLDEST_ISA && driverVersion >= cudaNumber(cuda) && (best === null || tenths > best)) best = tenths;
  }
  return best;
}

/** Whether a driver and GPU can JIT-compile a module with `header`, and why not. */
export function jitVerdict(
  header: PtxHeader,
  gpu: { ccMajor: number; ccMinor: number; driverVersion: number },
): { ok: true } | { ok: false; reason: string } {
  const cc = gpu.ccMajor * 10 + gpu.ccMinor;
  const cuda = `${Math.floor(gpu.driverVersion / 1000)}.${(gpu.driverVersion % 1000) / 10}`;
  const isa = maxPtxIsa(gpu.driverVersion);
  if (cc < header.sm) {
    return {
      ok: false,
      reason: `the GPU (compute capability ${gpu.ccMajor}.${gpu.ccMinor}) is older than the PTX's .target ${header.target}`,
    };
  }
  if (isa === null || isa < header.isa) {
    const has = isa === null ? "no PTX ISA this code knows" : `PTX ISA up to ${Math.floor(isa / 10)}.${isa % 10}`;
    return { ok: false, reason: `the driver (CUDA ${cuda}) JIT-compiles ${has}, and the PTX is ISA ${header.version}` };
  }
  return { ok: true };
}

/**
 * The oldest PTX ISA that can name `.target sm_<sm>` (PTX ISA release notes), in tenths; null for
 * a target this table does not know.
 */
export function minIsaForTarget(sm: number): number | null {
  const table: Record<number, number> = {
    50: 40,
    52: 41,
    53: 42,
    60: 50,
    61: 50,
    62: 50,
    70: 60,
    72: 61,
    75: 63,
    80: 70,
    86: 71,
    87: 74,
    89: 78,
    90: 78,
    100: 86,
    101: 86,
    103: 88,
    120: 87,
    121: 88,
  };
  return table[sm] ?? null;
}

/** `ptx` with its `.version` and `.target` directives replaced (the body untouched). */
export function withHeader(ptx: string, isa: number, sm: number): string {
  parsePtxHeader(ptx);
  return ptx.replace(/^\.version[ \t]+\d+\.\d+[ \t]*$/m, `.version ${Math.floor(isa / 10)}.${isa % 10}`)
    .replace(/^\.target[ \t]+sm_\d+[a-z]?\b/m, `.target sm_${sm}`);
}
