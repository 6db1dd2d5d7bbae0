/**
 * The NVML backend: GPUs in NVML (PCI) order as `GPU-<index>`, the SM count from CUDA joined
 * by UUID or PCI bus id (never by index: CUDA orders devices fastest first).
 */
import { CU_ATTR, type Cuda } from "../../ffi/cuda.ts";
import { type Nvml, NvmlError, type NvmlHandle } from "../../ffi/nvml.ts";
import type { Logger } from "../util/log.ts";
import { cudaVersionText, normalizePciBusId } from "./pci.ts";
import { emptyStats, type GpuStats, toMiB } from "./stats.ts";
import type { GpuInfo, InventoryBackend } from "./types.ts";

interface Present {
  readonly index: number;
  readonly handle: NvmlHandle;
  readonly uuid: string;
  readonly pci: string;
  readonly info: GpuInfo;
}

export class NvmlBackend implements InventoryBackend {
  readonly name = "nvml";
  readonly #nvml: Nvml;
  readonly #cuda: Cuda | null;
  readonly #log: Logger;
  #smByKey: Map<string, number> | null = null;
  #ordinalByUuid = new Map<string, number>();
  #uuidById = new Map<string, string>();
  #gone = new Set<string>();
  #warnedNoSm = false;

  constructor(nvml: Nvml, cuda: Cuda | null, log: Logger, _sysRoot: string) {
    this.#nvml = nvml;
    this.#cuda = cuda;
    this.#log = log;
  }

  list(): Promise<GpuInfo[]> {
    return Promise.resolve(this.#scan().map((d) => d.info));
  }

  stats(): Promise<GpuStats[]> {
    return Promise.resolve(this.#scan().map((d) => this.#stats(d)));
  }

  close(): void {
    this.#nvml.close();
    this.#cuda?.close();
  }

  cudaOrdinal(id: string): number | undefined {
    const uuid = this.#uuidById.get(id);
    return uuid === undefined ? undefined : this.#ordinalByUuid.get(uuid.toLowerCase());
  }

  #scan(): Present[] {
    const nvml = this.#nvml;
    let count: number;
    try {
      count = nvml.deviceCount();
    } catch (error) {
      this.#transition("all", `Cannot count GPUs: ${(error as Error).message}; reporting none`);
      return [];
    }
    this.#transition("all", null);
    const driver = nvml.driverVersion();
    const runtime = this.#runtimeVersion();
    const present: Present[] = [];
    for (let index = 0; index < count; index++) {
      const id = `GPU-${index}`;
      try {
        const handle = nvml.handle(index);
        const uuid = nvml.uuid(handle);
        const pci = nvml.pciBusId(handle);
        const info: GpuInfo = {
          id,
          name: nvml.name(handle),
          memory_mb: toMiB(nvml.memory(handle).total),
          sm_count: this.#smCount(uuid, pci),
          driver_version: driver,
          runtime_version: runtime,
        };
        this.#transition(id, null);
        this.#uuidById.set(id, uuid);
        present.push({ index, handle, uuid, pci, info });
      } catch (error) {
        if (!(error instanceof NvmlError)) throw error;
        this.#transition(id, `${id} dropped from the inventory: ${error.message}`);
      }
    }
    return present;
  }

  /** Logs a GPU going away, or coming back, once per change rather than once per poll. */
  #transition(key: string, problem: string | null): void {
    if (problem !== null && !this.#gone.has(key)) {
      this.#gone.add(key);
      this.#log.warn(problem);
    } else if (problem === null && this.#gone.delete(key)) {
      this.#log.info(`${key === "all" ? "NVML" : key} is answering again`);
    }
  }

  #runtimeVersion(): string {
    try {
      return cudaVersionText(this.#nvml.cudaDriverVersion());
    } catch {
      try {
        return this.#cuda === null ? "unknown" : cudaVersionText(this.#cuda.driverVersion());
      } catch {
        return "unknown";
      }
    }
  }

  #smCount(uuid: string, pci: string): number {
    const lookup = () => this.#smByKey?.get(uuid.toLowerCase()) ?? this.#smByKey?.get(normalizePciBusId(pci) ?? "");
    let sm = lookup();
    if (sm === undefined) {
      this.#smByKey = this.#cudaIndex(); // a device CUDA had not listed yet: index again
      sm = lookup();
    }
    if (sm === undefined) {
      if (!this.#warnedNoSm) this.#log.warn(`No CUDA device matches ${uuid} (${pci}); sm_count is 0`);
      this.#warnedNoSm = true;
      return 0;
    }
    return sm;
  }

  /** SM counts keyed by lowercase UUID and by normalised PCI bus id. */
  #cudaIndex(): Map<string, number> {
    const map = new Map<string, number>();
    const cuda = this.#cuda;
    if (cuda === null) return map;
    try {
      for (let ordinal = 0; ordinal < cuda.deviceCount(); ordinal++) {
        const dev = cuda.device(ordinal);
        const sm = cuda.attribute(CU_ATTR.MULTIPROCESSOR_COUNT, dev);
        map.set(cuda.uuid(dev).toLowerCase(), sm);
        this.#ordinalByUuid.set(cuda.uuid(dev).toLowerCase(), ordinal);
        const pci = normalizePciBusId(cuda.pciBusId(dev));
        if (pci !== null) map.set(pci, sm);
      }
    } catch (error) {
      this.#log.warn(`Cannot read SM counts from CUDA: ${(error as Error).message}`);
    }
    return map;
  }

  #stats(d: Present): GpuStats {
    const nvml = this.#nvml;
    const h = d.handle;
    const mem = opt(() => nvml.memory(h));
    const util = opt(() => nvml.utilization(h));
    const cc = opt(() => nvml.computeCapability(h));
    const mig = opt(() => nvml.migMode(h));
    const power = opt(() => nvml.powerMw(h));
    const limit = opt(() => nvml.powerLimitMw(h));
    return {
      ...emptyStats(d.info.id, d.info.name, "nvml"),
      uuid: d.uuid,
      pci_bus_id: d.pci,
      utilization_gpu_pct: util?.gpu ?? null,
      utilization_memory_pct: util?.memory ?? null,
      memory_total_mib: mem === null ? null : toMiB(mem.total),
      memory_used_mib: mem === null ? null : toMiB(mem.used),
      memory_free_mib: mem === null ? null : toMiB(mem.free),
      temperature_c: opt(() => nvml.temperatureC(h)),
      power_w: power === null ? null : power / 1000,
      power_limit_w: limit === null ? null : limit / 1000,
      energy_mj: opt(() => nvml.energyMj(h)),
      clock_graphics_mhz: opt(() => nvml.clockMhz(h, 0)),
      clock_sm_mhz: opt(() => nvml.clockMhz(h, 1)),
      clock_memory_mhz: opt(() => nvml.clockMhz(h, 2)),
      compute_capability: cc === null ? null : `${cc[0]}.${cc[1]}`,
      mig_mode: mig === null ? null : mig.current === 1 ? "enabled" : "disabled",
      processes: opt(() => nvml.processes(h).map((p) => ({ pid: p.pid, used_memory_mib: toMiB(p.usedBytes) }))),
    };
  }
}

/** The value, or null where NVML cannot give it (unsupported, no permission, lost since the scan). */
function opt<T>(read: () => T): T | null {
  try {
    return read();
  } catch (error) {
    if (error instanceof NvmlError) return null;
    throw error;
  }
}
