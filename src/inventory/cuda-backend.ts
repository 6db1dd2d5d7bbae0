/**
 * Backends without NVML. `CudaBackend`: discrete GPUs through the CUDA driver alone, ordered by
 * PCI bus id so the ids match what NVML would give. `JetsonBackend`: the integrated GPU, with
 * memory from `/proc/meminfo` (shared with the CPU) and live data from sysfs.
 */
import { CU_ATTR, type Cuda } from "../../ffi/cuda.ts";
import type { Logger } from "../util/log.ts";
import { cudaVersionText, normalizePciBusId } from "./pci.ts";
import { emptyStats, type GpuStats, toMiB } from "./stats.ts";
import { meminfo, nvidiaDriverVersion, sampleJetsonGpu, tegraRelease } from "./sysfs.ts";
import type { GpuInfo, InventoryBackend } from "./types.ts";

interface CudaDevice {
  readonly dev: number;
  readonly uuid: string;
  readonly pci: string;
  readonly info: GpuInfo;
}

abstract class CudaBased implements InventoryBackend {
  abstract readonly name: string;
  protected readonly cuda: Cuda;
  protected readonly log: Logger;
  protected readonly sysRoot: string;
  #failing = false;
  #ordinals = new Map<string, number>();

  constructor(cuda: Cuda, log: Logger, sysRoot: string) {
    this.cuda = cuda;
    this.log = log;
    this.sysRoot = sysRoot;
  }

  protected abstract driverVersion(): string;
  protected abstract memoryMb(dev: number): number;

  list(): Promise<GpuInfo[]> {
    return Promise.resolve(this.scan().map((d) => d.info));
  }

  abstract stats(): Promise<GpuStats[]>;

  close(): void {
    this.cuda.close();
  }

  cudaOrdinal(id: string): number | undefined {
    return this.#ordinals.get(id);
  }

  protected scan(): CudaDevice[] {
    const cuda = this.cuda;
    try {
      const runtime = cudaVersionText(cuda.driverVersion());
      const driver = this.driverVersion();
      const found = [];
      for (let ordinal = 0; ordinal < cuda.deviceCount(); ordinal++) {
        const dev = cuda.device(ordinal);
        found.push({ dev, uuid: cuda.uuid(dev), pci: cuda.pciBusId(dev) });
      }
      found.sort((a, b) => (normalizePciBusId(a.pci) ?? a.pci).localeCompare(normalizePciBusId(b.pci) ?? b.pci));
      const devices = found.map((d, index) => ({
        ...d,
        info: {
          id: `GPU-${index}`,
          name: cuda.name(d.dev),
          memory_mb: this.memoryMb(d.dev),
          sm_count: cuda.attribute(CU_ATTR.MULTIPROCESSOR_COUNT, d.dev),
          driver_version: driver,
          runtime_version: runtime,
        },
      }));
      this.#ordinals = new Map(devices.map((d) => [d.info.id, d.dev]));
      if (this.#failing) this.log.info("the CUDA driver is answering again");
      this.#failing = false;
      return devices;
    } catch (error) {
      if (!this.#failing) this.log.warn(`Cannot enumerate GPUs through CUDA: ${(error as Error).message}; reporting none`);
      this.#failing = true;
      return [];
    }
  }

  protected computeCapability(dev: number): string | null {
    try {
      return `${this.cuda.attribute(CU_ATTR.COMPUTE_CAPABILITY_MAJOR, dev)}.${this.cuda.attribute(CU_ATTR.COMPUTE_CAPABILITY_MINOR, dev)}`;
    } catch {
      return null;
    }
  }
}

/** Discrete GPUs through CUDA alone. */
export class CudaBackend extends CudaBased {
  readonly name = "cuda";

  protected driverVersion(): string {
    return nvidiaDriverVersion(this.sysRoot) ?? "unknown";
  }

  protected memoryMb(dev: number): number {
    return toMiB(this.cuda.totalMemBytes(dev));
  }

  stats(): Promise<GpuStats[]> {
    return Promise.resolve(
      this.scan().map((d) => ({
        ...emptyStats(d.info.id, d.info.name, "cuda"),
        uuid: d.uuid,
        pci_bus_id: d.pci,
        memory_total_mib: d.info.memory_mb,
        compute_capability: this.computeCapability(d.dev),
      })),
    );
  }
}

/** A Jetson's integrated GPU: CUDA for identity, sysfs and /proc for everything live. */
export class JetsonBackend extends CudaBased {
  readonly name = "jetson";

  protected driverVersion(): string {
    return tegraRelease(this.sysRoot) ?? nvidiaDriverVersion(this.sysRoot) ?? "unknown";
  }

  /** Shared memory: MemTotal, since cuDeviceTotalMem reports only a share of it. */
  protected memoryMb(dev: number): number {
    const { totalKb } = meminfo(this.sysRoot);
    return totalKb === null ? toMiB(this.cuda.totalMemBytes(dev)) : Math.floor(totalKb / 1024);
  }

  stats(): Promise<GpuStats[]> {
    const sample = sampleJetsonGpu(this.sysRoot);
    const mem = meminfo(this.sysRoot);
    return Promise.resolve(
      this.scan().map((d) => {
        const total = mem.totalKb === null ? null : Math.floor(mem.totalKb / 1024);
        const free = mem.availableKb === null ? null : Math.floor(mem.availableKb / 1024);
        return {
          ...emptyStats(d.info.id, d.info.name, "jetson"),
          uuid: d.uuid,
          utilization_gpu_pct: sample.loadPct,
          memory_total_mib: total,
          memory_free_mib: free,
          memory_used_mib: total === null || free === null ? null : total - free,
          temperature_c: sample.temperatureC,
          clock_graphics_mhz: sample.curHz === null ? null : Math.round(sample.curHz / 1e6),
          compute_capability: this.computeCapability(d.dev),
          gpu_freq_hz: { cur: sample.curHz, min: sample.minHz, max: sample.maxHz },
          governor: sample.governor,
        };
      }),
    );
  }
}
