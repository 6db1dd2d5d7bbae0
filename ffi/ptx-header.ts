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
 * The newest PTX ISA a driver of CUDA release `driverVersion` (cuDriverGetVersion's 1000*major +
 * 10*minor) JIT-compiles, in tenths, from NVIDIA's PTX ISA release notes; null below CUDA 9.0.
 */
export function maxPtxIsa(driverVersion: number): number | null {
  const table: [number, number][] = [
    [13000, 90],
    [12090, 88],
    [12080, 87],
    [12070, 86],
    [12050, 85],
    [12040, 84],
    [12030, 83],
    [12020, 82],
    [12010, 81],
    [12000, 80],
    [11080, 78],
    [11070, 77],
    [11060, 76],
    [11050, 75],
    [11040, 74],
    [11030, 73],
    [11020, 72],
    [11010, 71],
    [11000, 70],
    [10020, 65],
    [10010, 64],
    [10000, 63],
    [9020, 62],
    [9010, 61],
    [9000, 60],
  ];
  for (const [cuda, isa] of table) if (driverVersion >= cuda) return isa;
  return null;
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
