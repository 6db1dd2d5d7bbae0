/**
 * Will a PTX module JIT-compile on a GPU? A driver compiles PTX whose ISA version its CUDA
 * release knows, for a `.target` at or below the GPU's compute capability (an arch-specific
 * target such as `sm_90a` only on that exact GPU). Pure: headers in, a verdict out. The header
 * parser and the ISA table are the FFI layer's (ffi/ptx-header.ts), which loads the modules.
 */
import { cudaNumber, parsePtxHeader as parseHeader, PTX_ISA_MIN_CUDA, PtxHeaderError } from "../../ffi/ptx-header.ts";

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
  let header;
  try {
    header = parseHeader(text);
  } catch (error) {
    if (error instanceof PtxHeaderError) return null;
    throw error;
  }
  const entries = [...text.matchAll(/\.entry\s+([A-Za-z_$][\w$]*)/g)].map((m) => m[1]!);
  return { isa: header.version, target: header.target, entries };
}

export { cudaNumber, PTX_ISA_MIN_CUDA };

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
