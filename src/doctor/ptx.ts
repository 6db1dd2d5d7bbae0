/**
 * Will a PTX module JIT-compile on a GPU? A driver compiles PTX whose ISA version its CUDA
 * release knows, for a `.target` at or below the GPU's compute capability (an arch-specific
 * target such as `sm_90a` only on that exact GPU). Pure: headers in, a verdict out.
 */

/** The header of a PTX module: `.version` and `.target`. */
export interface PtxHeader {
  /** PTX ISA version, e.g. `6.5`. */
  readonly isa: string;
  /** The target, e.g. `sm_53` or `sm_90a`. */
  readonly target: string;
  /** `.entry` names: which kernels the module holds. */
  readonly entries: readonly string[];
}

/** Parses `.version X.Y`, `.target sm_NN[a]` and the `.entry` names; null when the header is missing. */
export function parsePtxHeader(text: string): PtxHeader | null {
  const version = /^\s*\.version\s+(\d+\.\d+)\s*$/m.exec(text);
  const target = /^\s*\.target\s+(sm_\d+[a-z]?)\b/m.exec(text);
  if (version === null || target === null) return null;
  const entries = [...text.matchAll(/\.entry\s+([A-Za-z_$][\w$]*)/g)].map((m) => m[1]!);
  return { isa: version[1]!, target: target[1]!, entries };
}

/**
 * The CUDA release that introduced each PTX ISA version (NVIDIA's PTX ISA release notes): a
 * driver of that CUDA version or newer JIT-compiles it.
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
const cudaText = (n: number) => `${Math.floor(n / 1000)}.${(n % 1000) / 10}`;

/** Whether `header` JIT-compiles on a GPU of compute capability `cc` (`8.7`) under a CUDA `driverCuda` (1000*major+10*minor). */
export function jitVerdict(header: PtxHeader, cc: string, driverCuda: number): { ok: boolean; why: string } {
  const m = /^sm_(\d+)(\d)([a-z]?)$/.exec(header.target);
  if (m === null) return { ok: false, why: `unknown target ${header.target}` };
  const [gpuMajor, gpuMinor] = cc.split(".").map(Number);
  const need = Number(m[1]) * 10 + Number(m[2]);
  const have = gpuMajor! * 10 + gpuMinor!;
  const specific = m[3] !== "";
  if (specific ? have !== need : have < need) {
    return {
      ok: false,
      why: `.target ${header.target} needs ${specific ? "exactly" : "at least"} compute capability ${m[1]}.${m[2]}; this GPU is ${cc}`,
    };
  }
  const min = PTX_ISA_MIN_CUDA[header.isa];
  if (min === undefined) return { ok: false, why: `PTX ISA ${header.isa} is newer than this check knows; the driver may refuse it` };
  if (driverCuda < cudaNumber(min)) {
    return { ok: false, why: `PTX ISA ${header.isa} needs a CUDA ${min} driver; this one is CUDA ${cudaText(driverCuda)}` };
  }
  return { ok: true, why: `ISA ${header.isa} (CUDA ${min}+) and ${header.target} on cc ${cc}, CUDA ${cudaText(driverCuda)}` };
}
