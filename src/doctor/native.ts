/**
 * The driver as NVML and the CUDA driver API see it: which library loaded from where (and what
 * the override variables did), versions, the GPUs each lists and whether they agree, and per
 * GPU the facts later checks need (compute capability, minor number, MIG mode, integrated,
 * VMM and POSIX-fd sharing). Every native call is wrapped: a refusal is a finding, not a crash.
 */
import { CU_ATTR, type Cuda } from "../../ffi/cuda.ts";
import type { Nvml } from "../../ffi/nvml.ts";
import type { FfiAdapter } from "../../ffi/types.ts";
import { cudaVersionText, normalizePciBusId } from "../inventory/pci.ts";
import { type Check, check, type SeenGpu } from "./types.ts";

type Env = Readonly<Record<string, string | undefined>>;

export interface NvmlGpu extends SeenGpu {
  readonly minor: number | null;
  /** `enabled`, `disabled`, or why it is not known. */
  readonly mig: string;
  /** The MIG devices of a GPU in MIG mode (empty otherwise, or when NVML cannot list them). */
  readonly migs: readonly { readonly uuid: string; readonly gi: number; readonly ci: number }[];
}
export interface CudaGpu extends SeenGpu {
  readonly ordinal: number;
  readonly integrated: boolean | null;
  readonly vmm: number | null;
  readonly posixFd: number | null;
}

export interface NativeView {
  readonly nvml: { readonly path: string; readonly driver: string; readonly cuda: number | null; readonly gpus: NvmlGpu[] } | {
    readonly error: string;
  };
  readonly cuda: { readonly path: string; readonly cuda: number; readonly gpus: CudaGpu[] } | { readonly error: string };
  /** What each override variable did. */
  readonly overrides: { readonly name: string; readonly value: string | undefined; readonly error: string | null }[];
}

const msg = (e: unknown) => (e instanceof Error ? e.message : String(e));
const firstLine = (e: unknown) => msg(e).split("\n")[0]!;
function attempt<T>(f: () => T): T | null {
  try {
    return f();
  } catch {
    return null;
  }
}

/** Opens NVML and CUDA as the bridge would (override first), reads what the checks need, closes both. */
export async function probeNative(adapter: FfiAdapter, env: Env): Promise<NativeView> {
  const [{ Nvml }, { Cuda }, { nvmlCandidates, cudaCandidates }] = await Promise.all([
    import("../../ffi/nvml.ts"),
    import("../../ffi/cuda.ts"),
    import("../../ffi/loader.ts"),
  ]);
  const overrides: NativeView["overrides"][number][] = [];
  const override = (name: string, open: (paths: string[]) => { close(): void }) => {
    const value = env[name]?.trim() || undefined;
    let error: string | null = null;
    if (value !== undefined) {
      try {
        open([value]).close();
      } catch (e) {
        error = msg(e).split("\n").find((l) => l.includes(value))?.trim() ?? firstLine(e);
      }
    }
    overrides.push({ name, value, error });
  };
  override("GPU_BRIDGE_NVML_LIB", (p) => Nvml.open(adapter, p));
  override("GPU_BRIDGE_CUDA_LIB", (p) => Cuda.open(adapter, p));

  let nvml: NativeView["nvml"];
  try {
    const lib = Nvml.open(adapter, nvmlCandidates(env));
    try {
      nvml = { path: lib.path, driver: lib.driverVersion(), cuda: attempt(() => lib.cudaDriverVersion()), gpus: nvmlGpus(lib) };
    } finally {
      lib.close();
    }
  } catch (e) {
    nvml = { error: msg(e) };
  }
  let cuda: NativeView["cuda"];
  try {
    const lib = Cuda.open(adapter, cudaCandidates(env));
    try {
      cuda = { path: lib.path, cuda: lib.driverVersion(), gpus: cudaGpus(lib) };
    } finally {
      lib.close();
    }
  } catch (e) {
    cuda = { error: msg(e) };
  }
  return { nvml, cuda, overrides };
}

function nvmlGpus(nvml: Nvml): NvmlGpu[] {
  const out: NvmlGpu[] = [];
  for (let index = 0; index < nvml.deviceCount(); index++) {
    const h = nvml.handle(index);
    const cc = attempt(() => nvml.computeCapability(h));
    let mig: string;
    try {
      mig = nvml.migMode(h).current === 1 ? "enabled" : "disabled";
    } catch (e) {
      mig = `unknown (${firstLine(e)})`;
    }
    const migs = mig !== "enabled"
      ? []
      : attempt(() => nvml.migDevices(h).map((m) => ({ uuid: nvml.uuid(m.handle), gi: m.gi, ci: m.ci }))) ?? [];
    out.push({
      index,
      name: nvml.name(h),
      uuid: nvml.uuid(h),
      pci: attempt(() => normalizePciBusId(nvml.pciBusId(h))),
      cc: cc === null ? null : `${cc[0]}.${cc[1]}`,
      minor: attempt(() => nvml.minorNumber(h)),
      mig,
      migs,
    });
  }
  return out;
}

function cudaGpus(cuda: Cuda): CudaGpu[] {
  const out: CudaGpu[] = [];
  for (let ordinal = 0; ordinal < cuda.deviceCount(); ordinal++) {
    const dev = cuda.device(ordinal);
    const attr = (a: number) => attempt(() => cuda.attribute(a, dev));
    const major = attr(CU_ATTR.COMPUTE_CAPABILITY_MAJOR);
    const minor = attr(CU_ATTR.COMPUTE_CAPABILITY_MINOR);
    const integrated = attr(CU_ATTR.INTEGRATED);
    out.push({
      index: ordinal,
      ordinal,
      name: cuda.name(dev),
      uuid: cuda.uuid(dev),
      pci: attempt(() => normalizePciBusId(cuda.pciBusId(dev))),
      cc: major === null || minor === null ? null : `${major}.${minor}`,
      integrated: integrated === null ? null : integrated === 1,
      vmm: attr(CU_ATTR.VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED),
      posixFd: attr(CU_ATTR.HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED),
    });
  }
  // The bridge numbers GPUs in PCI order, as NVML does; CUDA lists the fastest first.
  return out.sort((a, b) => (a.pci ?? "").localeCompare(b.pci ?? ""));
}

const ZERO_UUID = "GPU-00000000-0000-0000-0000-000000000000";

/** Whether the two backends list the same GPUs: by UUID, or by PCI bus id where CUDA's UUIDs are zero. */
export function agreement(nvml: readonly SeenGpu[], cuda: readonly SeenGpu[]): { same: boolean; detail: string } {
  const byPci = cuda.some((g) => g.uuid === ZERO_UUID);
  const key = (g: SeenGpu) => (byPci ? g.pci ?? `?${g.index}` : g.uuid);
  const a = new Set(nvml.map(key));
  const b = new Set(cuda.map(key));
  const onlyNvml = [...a].filter((k) => !b.has(k));
  const onlyCuda = [...b].filter((k) => !a.has(k));
  if (onlyNvml.length === 0 && onlyCuda.length === 0) {
    return { same: true, detail: `NVML and CUDA list the same ${a.size} GPU(s), joined by ${byPci ? "PCI bus id" : "UUID"}` };
  }
  return {
    same: false,
    detail: [
      onlyNvml.length > 0 ? `only NVML sees ${onlyNvml.join(", ")}` : "",
      onlyCuda.length > 0 ? `only CUDA sees ${onlyCuda.join(", ")}` : "",
    ].filter((s) => s !== "").join("; "),
  };
}

/** The library, version, override and GPU-agreement checks. */
export function nativeChecks(v: NativeView): Check[] {
  const out: Check[] = [];
  const cudaOk = "path" in v.cuda;
  const integrated = "path" in v.cuda && v.cuda.gpus.some((g) => g.integrated === true);
  if ("path" in v.nvml) {
    const cuda = v.nvml.cuda === null ? "CUDA version unknown" : `CUDA ${cudaVersionText(v.nvml.cuda)}`;
    out.push(check("libraries", "NVML", "ok", `driver ${v.nvml.driver} (${cuda}) from ${v.nvml.path}`));
  } else {
    // A Jetson before JetPack 6 has no NVML at all; elsewhere the bridge loses live stats without it.
    out.push(check(
      "libraries",
      "NVML",
      integrated ? "info" : cudaOk ? "warn" : "fail",
      `not loaded: ${firstLine(v.nvml.error)}${integrated ? " (Jetson: the bridge reads sysfs instead)" : ""}`,
      "install the NVIDIA driver's libnvidia-ml.so.1, or set GPU_BRIDGE_NVML_LIB to its path",
    ));
  }
  if ("path" in v.cuda) {
    out.push(check("libraries", "libcuda", "ok", `CUDA ${cudaVersionText(v.cuda.cuda)} driver API from ${v.cuda.path}`));
  } else {
    out.push(check(
      "libraries",
      "libcuda",
      "fail",
      `not loaded: ${firstLine(v.cuda.error)}`,
      "install the NVIDIA driver (libcuda.so.1), or set GPU_BRIDGE_CUDA_LIB to its path; --mock runs without one",
    ));
  }
  for (const o of v.overrides) {
    if (o.value === undefined) {
      out.push(check("libraries", o.name, "info", "unset: the loader path, then the Jetson folders, are searched"));
    } else if (o.error === null) {
      out.push(check("libraries", o.name, "ok", `points at ${o.value}, which loads`));
    } else {
      out.push(
        check(
          "libraries",
          o.name,
          "fail",
          `points at ${o.value}, which does not load: ${o.error}`,
          `fix the path in ${o.name} or unset it`,
        ),
      );
    }
  }
  const nvmlGpus = "path" in v.nvml ? v.nvml.gpus : null;
  const cudaGpus = "path" in v.cuda ? v.cuda.gpus : null;
  for (const [backend, gpus] of [["NVML", nvmlGpus], ["CUDA", cudaGpus]] as const) {
    if (gpus === null) continue;
    const list = gpus.map((g) => `${g.name} (cc ${g.cc ?? "?"}, ${g.pci ?? "no PCI id"}, ${g.uuid})`).join("; ");
    out.push(check(
      "gpus",
      `${backend} sees`,
      gpus.length > 0 ? "ok" : "fail",
      gpus.length > 0 ? `${gpus.length}: ${list}` : "no GPUs",
      "check that the driver is loaded (nvidia-smi, dmesg) and this user can open the device nodes",
    ));
  }
  if (nvmlGpus !== null && cudaGpus !== null) {
    const a = agreement(nvmlGpus, cudaGpus);
    out.push(check(
      "gpus",
      "NVML and CUDA agree",
      a.same ? "ok" : "fail",
      a.detail,
      "a GPU one backend cannot see is usually CUDA_VISIBLE_DEVICES, a MIG-only GPU, or a driver and library of different versions: check both",
    ));
  }
  if (nvmlGpus === null && cudaGpus === null) {
    out.push(check("gpus", "GPUs", "fail", "no backend could list GPUs", "install the NVIDIA driver, or run with --mock"));
  }
  return out;
}
