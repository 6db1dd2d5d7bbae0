/**
 * The GPUs a spec describes, read from whichever backend is in use: the mock inventory, NVML
 * (minor numbers and MIG devices), CUDA alone (minors from `/proc/driver/nvidia/gpus`), or a
 * Jetson (CSV mode: the CSV files describe everything). Native code is imported only here.
 */
import { readFileSync } from "node:fs";
import type { Backend } from "../config/defaults.ts";
import { MOCK_GPUS, mockStats } from "../inventory/mock.ts";
import { normalizePciBusId } from "../inventory/pci.ts";
import { nvidiaDriverVersion } from "../inventory/sysfs.ts";
import type { Logger } from "../util/log.ts";
import { under } from "./discover.ts";
import type { HostGpu } from "./generate.ts";

/** A backend as the bridge names them (--backend). */
export type CdiBackend = Backend;

export type HostView =
  | { readonly mode: "discrete"; readonly backend: string; readonly driverVersion: string; readonly gpus: HostGpu[] }
  | { readonly mode: "csv"; readonly backend: "jetson" };

/** The mock GPUs as a discrete host with driver 555.0 (their UUIDs and bus ids from the mock stats). */
export function mockHost(): HostView {
  const stats = mockStats();
  return {
    mode: "discrete",
    backend: "mock",
    driverVersion: MOCK_GPUS[0]!.driver_version,
    gpus: MOCK_GPUS.map((_, i) => ({
      index: i,
      uuid: stats[i]!.uuid!,
      minor: i,
      pciBusId: normalizePciBusId(stats[i]!.pci_bus_id!),
      mig: null,
    })),
  };
}

/** `Device Minor:` of a GPU in `/proc/driver/nvidia/gpus/<bus id>/information`, or null. */
export function procMinor(sysRoot: string, pciBusId: string | null): number | null {
  if (pciBusId === null) return null;
  try {
    const m = /^Device Minor:\s*(\d+)/m.exec(readFileSync(under(sysRoot, `/proc/driver/nvidia/gpus/${pciBusId}/information`), "utf8"));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

/** Reads the host through `backend`. */
export async function readHost(
  backend: CdiBackend,
  sysRoot: string,
  env: Readonly<Record<string, string | undefined>>,
  log: Logger,
): Promise<HostView> {
  if (backend === "mock") return mockHost();
  if (backend === "jetson") return { mode: "csv", backend: "jetson" };
  const [{ loadFfiAdapter, nvmlCandidates, cudaCandidates }, { Nvml }, { Cuda }, { selectBackend }] = await Promise.all([
    import("../../ffi/loader.ts"),
    import("../../ffi/nvml.ts"),
    import("../../ffi/cuda.ts"),
    import("../inventory/mod.ts"),
  ]);
  let kind: CdiBackend = backend;
  if (kind === "auto") {
    const probe = await selectBackend({ backend: "auto", sysRoot }, log);
    kind = probe.name as CdiBackend;
    probe.close();
    if (kind === "jetson") return { mode: "csv", backend: "jetson" };
  }
  const adapter = await loadFfiAdapter();
  if (kind === "nvml") {
    const nvml = Nvml.open(adapter, nvmlCandidates(env));
    try {
      const gpus: HostGpu[] = [];
      for (let index = 0; index < nvml.deviceCount(); index++) {
        const h = nvml.handle(index);
        const pciBusId = normalizePciBusId(nvml.pciBusId(h));
        let minor: number | null;
        try {
          minor = nvml.minorNumber(h);
        } catch {
          minor = procMinor(sysRoot, pciBusId);
        }
        if (minor === null) {
          log.warn(`GPU ${index} left out: neither NVML nor /proc/driver/nvidia gives its minor number`);
          continue;
        }
        let mig: HostGpu["mig"] = null;
        try {
          if (nvml.migMode(h).current === 1) mig = nvml.migDevices(h).map((m) => ({ uuid: nvml.uuid(m.handle), gi: m.gi, ci: m.ci }));
        } catch {
          mig = null; // MIG not supported (before Ampere, or an old driver)
        }
        gpus.push({ index, uuid: nvml.uuid(h), minor, pciBusId, mig });
      }
      return { mode: "discrete", backend: "nvml", driverVersion: nvml.driverVersion(), gpus };
    } finally {
      nvml.close();
    }
  }
  const cuda = Cuda.open(adapter, cudaCandidates(env));
  try {
    const driverVersion = nvidiaDriverVersion(sysRoot);
    if (driverVersion === null) {
      throw new Error(
        `Cannot generate a CDI spec with the CUDA backend: no driver version in ${under(sysRoot, "/proc/driver/nvidia/version")}`,
      );
    }
    const found = [];
    for (let ordinal = 0; ordinal < cuda.deviceCount(); ordinal++) {
      const dev = cuda.device(ordinal);
      found.push({ uuid: cuda.uuid(dev), pciBusId: normalizePciBusId(cuda.pciBusId(dev)) });
    }
    // Indexes follow the PCI bus order, as NVML's (and the bridge's) do; CUDA's is fastest first.
    found.sort((a, b) => (a.pciBusId ?? "").localeCompare(b.pciBusId ?? ""));
    const gpus: HostGpu[] = [];
    found.forEach((g, index) => {
      const minor = procMinor(sysRoot, g.pciBusId);
      if (minor === null) {
        log.warn(`GPU ${index} (${g.uuid}) left out: no Device Minor in /proc/driver/nvidia/gpus/${g.pciBusId}/information`);
      } else gpus.push({ index, uuid: g.uuid, minor, pciBusId: g.pciBusId, mig: null });
    });
    return { mode: "discrete", backend: "cuda", driverVersion, gpus };
  } finally {
    cuda.close();
  }
}
