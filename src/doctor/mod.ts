/**
 * `gpu-bridge-host doctor`: everything an operator should know before the first start on a new
 * host, as a list of checks. It reads the host (under `sysRoot`/`devRoot` for tests), loads the
 * native libraries the bridge would, and talks to the console only when asked, read only. Never
 * writes anything. The report is data; render.ts prints it.
 */
import type { FfiAdapter } from "../../ffi/types.ts";
import { procMinor } from "../cdi/host.ts";
import type { Backend } from "../config/defaults.ts";
import { MOCK_GPUS, mockStats } from "../inventory/mock.ts";
import { cudaNumber } from "./ptx.ts";
import type { Connect } from "../runtime/transport.ts";
import type { Clock } from "../util/clock.ts";
import { cdiChecks } from "./cdi.ts";
import { consoleCheck, type ConsoleProbe } from "./console.ts";
import { migChecks, type MigFacts, mpsChecks } from "./caps.ts";
import { type GpuFacts, ptxChecks, sharingChecks } from "./gpu-checks.ts";
import { discreteNodes, diskCheck, jetsonNodes, nodeChecks, stateChecks } from "./host.ts";
import { nativeChecks, probeNative } from "./native.ts";
import { shippedPtx } from "./ptx-shipped.ts";
import { type Check, check } from "./types.ts";

export type { Check, Status } from "./types.ts";

export interface DoctorOptions {
  readonly backend: Backend;
  readonly sysRoot: string;
  readonly devRoot: string;
  readonly stateDir: string;
  readonly spoolMaxBytes: number;
  readonly cdiSpecDirs: readonly string[];
  /** Probe the console (only when --tcp-port or --auth-token was given); null: not asked. */
  readonly console: ConsoleProbe | null;
  readonly timeoutMs: number;
}

export interface DoctorDeps {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly adapter: () => Promise<FfiAdapter>;
  readonly connect: () => Promise<Connect>;
  readonly uid: number;
  readonly clock?: Clock;
}

export interface DoctorReport {
  readonly ok: boolean;
  readonly checks: readonly Check[];
}

/** Runs every check the options call for. */
export async function runDoctor(o: DoctorOptions, d: DoctorDeps): Promise<DoctorReport> {
  const checks: Check[] = [];
  const consoleProbe = o.console === null ? null : d.connect().then((connect) => consoleCheck(connect, o.console!, o.timeoutMs, d.clock));
  consoleProbe?.catch(() => {});
  let gpus: GpuFacts[] = [];
  let migGpus: { label: string; minor: number | null; migs: readonly MigFacts[] }[] = [];
  let driverCuda: number | null = null;
  let driverVersion: string | null = null;

  if (o.backend === "mock") {
    checks.push(check("libraries", "native", "info", "--mock: the mock inventory stands in for NVML and CUDA; driver checks skipped"));
    const stats = mockStats();
    // Under --mock host memory stands in for VRAM: no VRAM-only policy line per GPU, one note instead.
    checks.push(check("sharing", "VRAM-only policy", "info", "not applicable: --mock keeps shards in host memory, nothing is on a GPU"));
    gpus = MOCK_GPUS.map((g, i) => ({
      label: `${g.id} (mock ${g.name})`,
      cc: stats[i]?.compute_capability ?? null,
      integrated: null,
      vmm: null,
      posixFd: null,
      mig: null,
    }));
    driverCuda = cudaNumber(MOCK_GPUS[0]!.runtime_version);
  } else {
    const native = await probeNative(await d.adapter(), d.env);
    checks.push(...nativeChecks(native));
    const nvml = "path" in native.nvml ? native.nvml : null;
    const cuda = "path" in native.cuda ? native.cuda : null;
    driverVersion = nvml?.driver ?? null;
    driverCuda = cuda?.cuda ?? nvml?.cuda ?? null;
    const integrated = cuda?.gpus.some((g) => g.integrated === true) ?? false;
    // The bridge's GPU ids follow the PCI order, which both lists are in.
    const base = cuda?.gpus ?? nvml?.gpus.map((g) => ({ ...g, integrated: null, vmm: null, posixFd: null })) ?? [];
    gpus = base.map((g, i) => {
      const n = nvml?.gpus.find((x) => x.uuid === g.uuid) ?? nvml?.gpus.find((x) => x.pci !== null && x.pci === g.pci);
      return {
        label: `GPU-${i} ${g.name}`,
        cc: g.cc ?? n?.cc ?? null,
        integrated: g.integrated,
        vmm: g.vmm,
        posixFd: g.posixFd,
        mig: nvml === null ? null : n?.mig ?? "unknown (NVML does not list this GPU)",
      };
    });
    migGpus = gpus.map((g, i) => {
      const n = nvml?.gpus.find((x) => x.uuid === base[i]!.uuid);
      return { label: g.label, minor: n?.minor ?? null, migs: n?.migs ?? [] };
    });
    const wants = integrated
      ? jetsonNodes(o.devRoot)
      : discreteNodes(o.sysRoot, base.map((g) => nvml?.gpus.find((x) => x.uuid === g.uuid)?.minor ?? procMinor(o.sysRoot, g.pci)));
    if (base.length > 0) checks.push(...nodeChecks(o.devRoot, wants, d.uid));
  }
  checks.push(...ptxChecks(shippedPtx(), gpus, driverCuda));
  checks.push(...sharingChecks(gpus));
  checks.push(...mpsChecks(o.stateDir, o.sysRoot, d.env));
  checks.push(...migChecks({ devRoot: o.devRoot, driverRoot: "/", sysRoot: o.sysRoot }, migGpus));
  checks.push(...cdiChecks({ sysRoot: o.sysRoot, devRoot: o.devRoot, dirs: o.cdiSpecDirs, driverVersion }));
  checks.push(...stateChecks(o.stateDir, d.uid), diskCheck(o.stateDir, o.spoolMaxBytes));
  if (consoleProbe !== null) checks.push(await consoleProbe);
  else checks.push(check("console", "console", "info", "not checked: pass --tcp-port (and --auth-token) to check the VM's console"));
  return { ok: checks.every((c) => c.status !== "fail"), checks };
}
