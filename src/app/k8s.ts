/**
 * `serve --kubelet-dir DIR` / `--k8s`: the Kubernetes device plugin on the bridge's GPUs, leases
 * and CDI keeper (src/k8s). Its leases are ordinary leases: the API, the metrics and the VM see
 * them like any other.
 */
import { type ChangeRecord, within } from "../changes/record.ts";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import type { CdiKeeper } from "../cdi/keeper.ts";
import type { K8sOptions } from "../cli/options.ts";
import { DEFAULTS } from "../config/defaults.ts";
import type { GpuInfo } from "../contract/info.ts";
import type { HostState } from "../host/state.ts";
import type { GpuStats } from "../inventory/stats.ts";
import { Allocations } from "../k8s/allocations.ts";
import { jetsonProbe, NodeGpus } from "../k8s/gpus.ts";
import { HealthBook } from "../k8s/health.ts";
import { type NvmlEvents, NvmlHealthEvents } from "../k8s/nvml-events.ts";
import { renderPluginMetrics } from "../k8s/metrics.ts";
import { NfdFile } from "../k8s/nfd.ts";
import { DevicePluginServer } from "../k8s/plugin.ts";
import type { Clock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";

/** The running plugin's parts (tests and the API read them). */
export interface BridgeK8s {
  readonly plugin: DevicePluginServer;
  readonly allocations: Allocations;
  readonly gpus: NodeGpus;
  readonly health: HealthBook;
  /** The plugin's Prometheus lines. */
  metrics(): string;
  stop(): Promise<void>;
}

export interface BridgeK8sPorts {
  readonly options: K8sOptions;
  readonly sysRoot: string;
  readonly host: HostState;
  readonly cdi: CdiKeeper;
  readonly probe: () => Promise<readonly GpuInfo[]>;
  /** A Jetson: its health is read from sysfs under sysRoot as well. */
  readonly jetson?: boolean;
  readonly stats: () => readonly GpuStats[];
  /** The record of changes: health changes and the allocations' leases are recorded as the plugin's. */
  readonly changes?: ChangeRecord;
  readonly clock: Clock;
  readonly log: Logger;
  /** Opens NVML for health events; null where there is none (CUDA-only hosts, Jetson, the mock). */
  readonly nvml?: () => Promise<NvmlEvents | null>;
  /** Shorter periods for tests. */
  readonly tuning?: { readonly watchMs?: number; readonly probeMs?: number; readonly graceMs?: number };
}

/** Starts the plugin: the GPUs probed, the socket served, registration under way. */
export async function startBridgeK8s(p: BridgeK8sPorts): Promise<BridgeK8s> {
  const o = p.options;
  const health = new HealthBook(p.clock, o.recoverMs);
  let plugin: DevicePluginServer | null = null;
  const turns = new Map<string, { unhealthy: number; healthy: number }>();
  // The default file only where NFD's folder exists (NFD is installed); a given one always.
  const nfdPath = o.nfdFile ?? (existsSync(dirname(DEFAULTS.nfdFile)) ? DEFAULTS.nfdFile : null);
  const nfd = nfdPath === null ? null : new NfdFile(nfdPath, p.log);
  const gpus = new NodeGpus({
    probe: p.jetson === true ? jetsonProbe(p.probe, p.sysRoot) : p.probe,
    stats: p.stats,
    health,
    clock: p.clock,
    log: p.log,
    sysRoot: p.sysRoot,
    ...(p.tuning?.probeMs !== undefined && { probeMs: p.tuning.probeMs }),
    onHealth: (change) => {
      const n = turns.get(change.gpuId) ?? { unhealthy: 0, healthy: 0 };
      n[change.healthy ? "healthy" : "unhealthy"]++;
      turns.set(change.gpuId, n);
      p.changes?.append({
        type: "gpu.health",
        source: "k8s",
        gpu_id: change.gpuId,
        ...(!change.healthy && { severity: "warning" as const }),
        data: { healthy: change.healthy, reason: change.reason },
      });
      plugin?.notify();
    },
    onProbed: () => nfd?.update({ resource: o.resource, gpus: gpus.infos(), stats: p.stats(), share: o.share }),
  });
  await gpus.start();
  const events = await watchNvmlEvents(p, gpus);
  const leases = p.host.leases;
  const allocations = new Allocations({
    // A pod's lease is the plugin's doing, naming the worker id it stands for.
    leases: {
      grant: (req) => within({ source: "k8s", actor: { worker_id: req.worker_id } }, () => leases.grant(req)),
      release: (id, reason) => within({ source: "k8s" }, () => leases.release(id, reason)),
      renew: (id, ttlS) => leases.renew(id, ttlS),
      live: () => leases.live(),
    },
    clock: p.clock,
    share: o.share,
    graceMs: p.tuning?.graceMs ?? DEFAULTS.k8sGraceMs,
    memoryOf: (id) => gpus.memoryOf(id),
    // Renewed while a pod holds the devices: a shorter maximum TTL shortens the watchdog, and
    // every other maximum (memory, streams) refuses the Allocate like any grant.
    ttlS: Math.min(DEFAULTS.k8sLeaseTtlS, leases.policy.maxTtlS),
  });
  plugin = new DevicePluginServer({
    kubeletDir: o.kubeletDir,
    resource: o.resource,
    share: o.share,
    clock: p.clock,
    log: p.log,
    allocations,
    leases: p.host.leases,
    gpus: () => gpus.list(),
    cdiDevice: (leaseId) => p.cdi.deviceFor(leaseId),
    batch: (fn) => p.cdi.batch(fn),
    pollMs: o.pollMs,
    ...(p.tuning?.watchMs !== undefined && { watchMs: p.tuning.watchMs }),
  });
  const server = plugin;
  try {
    await server.start();
  } catch (error) {
    gpus.stop();
    events?.stop();
    nfd?.remove();
    await server.stop();
    throw error;
  }
  return {
    plugin: server,
    allocations,
    gpus,
    health,
    metrics: () => renderPluginMetrics(o.resource, gpus.list(), { ...server.stats, registered: server.registered }, turns),
    async stop() {
      gpus.stop();
      events?.stop();
      nfd?.remove();
      await server.stop();
    },
  };
}

/** NVML's critical events feeding the GPUs' health, where NVML is there; null otherwise. */
async function watchNvmlEvents(p: BridgeK8sPorts, gpus: NodeGpus): Promise<NvmlHealthEvents | null> {
  let nvml: NvmlEvents | null = null;
  try {
    nvml = (await p.nvml?.()) ?? null;
  } catch (error) {
    p.log.warn(`NVML health events unavailable (health follows whether the GPUs answer): ${(error as Error).message}`);
  }
  if (nvml === null) return null;
  const events = new NvmlHealthEvents({
    nvml,
    clock: p.clock,
    log: p.log,
    ignoredXids: p.options.ignoredXids,
    onCritical: (uuid, what) => gpus.critical(uuid, what),
  });
  try {
    const n = events.start();
    p.log.info(
      `NVML health events: ${n} GPUs watched for critical XIDs (ignored: ${p.options.ignoredXids.join(",") || "none"}) and ECC errors`,
    );
  } catch (error) {
    events.stop();
    p.log.warn(`NVML health events unavailable (health follows whether the GPUs answer): ${(error as Error).message}`);
    return null;
  }
  return events;
}
