/**
 * `createBridge(options, ports)`: wires one bridge from its capabilities (inventory, leases and
 * jobs, the model registry, the publisher, telemetry, sealed VRAM shards, the CDI spec) and returns it as the narrow façade the
 * API calls, plus what the daemon needs to run and stop it.
 *
 * Reads never touch the hardware: the inventory is re-read by `refresh()`, which the publisher
 * calls before every publish decision (or a timer, when nothing is published).
 */
import { hostname } from "node:os";
import type { ApiCdi, ApiModels, BridgeFacade } from "../api/facade.ts";
import { DEFAULTS } from "../config/defaults.ts";
import type { BridgeOptions } from "../cli/options.ts";
import type { Publisher } from "../console/publisher.ts";
import type { ReadbackMode } from "../console/readback.ts";
import { fitNamespace } from "../contract/fit.ts";
import type { GpuInfo } from "../contract/info.ts";
import { LIMITS } from "../contract/limits.ts";
import { buildNamespace, type Namespace, type NodeLogs } from "../contract/namespace.ts";
import { makeSnapshot, type Snapshot } from "../contract/snapshot.ts";
import type { HostState } from "../host/state.ts";
import { StatsSampler } from "../inventory/stats-cache.ts";
import type { InventoryBackend } from "../inventory/types.ts";
import type { Runtime } from "../runtime/types.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";
import { prepareStateDir, stateDirError } from "../util/state-dir.ts";
import { Teardown } from "../util/teardown.ts";
import { VERSION } from "../util/version.ts";
import type { ChangeRecord } from "../changes/record.ts";
import { auditedRecord, leaseHistory, openAuditTrail } from "./audit.ts";
import { EventHub } from "../changes/stream.ts";
import { feedHostChanges, healthChanges } from "./changes.ts";
import type { VmSync } from "../vm/sync.ts";
import type { Vram } from "../vram/mod.ts";
import type { BridgeK8s } from "./k8s.ts";
import {
  apiModels,
  type BridgeTelemetry,
  keepInventoryFresh,
  openTelemetry,
  restoreLeases,
  runnerKind,
  startActivitySummary,
  startCdi,
  startHost,
  startK8s,
  startLeaseVram,
  startMps,
  startPublisher,
  startVmSync,
  watchRegistry,
  type Wiring,
} from "./wiring.ts";

/** What a bridge is wired to outside itself. */
export interface BridgePorts {
  readonly runtime: Runtime;
  readonly log: Logger;
  readonly backend: InventoryBackend;
}

/** Settings beyond the bridge's flags (tests shorten them). */
export interface BridgeTuning {
  readonly refreshMs?: number;
  readonly pingIdleMs?: number;
  readonly backoff?: { baseMs: number; capMs: number };
  readonly registryPollMs?: number;
  readonly clock?: Clock;
  /** Keep leases in memory only (tests); default: journal under the state directory. */
  readonly noJournal?: boolean;
  /** How often the CDI spec's host description is refreshed (default DEFAULTS.cdiRefreshMs). */
  readonly cdiRefreshMs?: number;
  /** The period of the INFO activity summary (default DEFAULTS.activitySummaryMs). */
  readonly activitySummaryMs?: number;
  /** Least time between the VM sync's full snapshots (default DEFAULTS.minSnapshotMs). */
  readonly minSnapshotMs?: number;
  /** Most often an ordinary change to the VM mirror is saved (default DEFAULTS.mirrorSaveMs). */
  readonly mirrorSaveMs?: number;
  /** The device plugin's periods (src/app/k8s.ts). */
  readonly k8s?: { readonly watchMs?: number; readonly probeMs?: number; readonly graceMs?: number };
}

/** A running bridge: the API's façade, and its parts for the daemon and tests. */
export interface Bridge extends BridgeFacade {
  readonly publisher: Publisher | null;
  readonly host: HostState;
  readonly backend: InventoryBackend;
  /** The API's view of telemetry, and (for the daemon and tests) the spool and forwarder behind it. */
  readonly telemetry: BridgeTelemetry;
  /** Sealed VRAM shards (src/vram): the API's part of it, plus the gate, a lease's end and close. */
  readonly vram: Vram;
  /** The VM's side of `/gpu` (read-back and appends), when publishing. */
  readonly vm: VmSync | null;
  /** The record of changes (src/changes/record.ts): the event stream and the audit trail read it. */
  readonly changes: ChangeRecord;
  /** The Kubernetes device plugin, with --kubelet-dir or --k8s. */
  readonly k8s: BridgeK8s | null;
  /** Re-reads the inventory (the hardware); the publisher calls it before every publish decision. */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

/** The façade's parts that are not the host's leases and jobs. */
export interface FacadeParts {
  readonly version?: string;
  readonly hostname?: string;
  readonly gpus: () => readonly GpuInfo[];
  readonly stats: BridgeFacade["stats"];
  readonly host: HostState;
  readonly models: ApiModels;
  readonly publisher?: Publisher | null;
  readonly console?: { readonly host: string; readonly port: number };
  /** Whether the console reads the VM's files back (the VM sync's probe). */
  readonly vmReadback?: () => ReadbackMode;
  readonly telemetry?: BridgeFacade["telemetry"];
  /** A GPU node's logs as the VM holds them (the VM sync's mirror); default: the host's own. */
  readonly nodeLogs?: (gpuId: string) => NodeLogs | undefined;
  /** Told which models a snapshot had to leave out. */
  readonly log?: Logger;
  readonly vram?: BridgeFacade["vram"];
  readonly cdi?: ApiCdi;
  readonly events?: EventHub;
  readonly leaseHistory?: BridgeFacade["leaseHistory"];
}

/** The façade over a host's leases and jobs and the given parts (tests build one directly). */
export function bridgeFacade(p: FacadeParts): BridgeFacade {
  const host = p.host;
  let leftOut = "";
  const namespace = (): Namespace => {
    // The VM refuses a snapshot past 131,072 bytes: publish what fits, and say what did not.
    const fitted = fitNamespace(buildNamespace(p.gpus(), p.models.catalog(), p.nodeLogs ?? ((id) => host.nodeLogs(id))));
    const key = fitted.droppedModels.join(" ");
    if (key !== leftOut) {
      leftOut = key;
      const d = fitted.droppedModels;
      if (d.length > 0) {
        p.log?.warn(
          `snapshot: the registry does not fit the VM's ${LIMITS.snapshotBytes}-byte snapshot; left out ${d.length} models: ` +
            `${d.slice(0, 50).join(", ")}${d.length > 50 ? `, and ${d.length - 50} more` : ""}`,
        );
      }
    }
    return fitted.ns;
  };
  return {
    version: p.version ?? VERSION,
    hostname: p.hostname ?? hostname(),
    gpus: p.gpus,
    stats: p.stats,
    namespace,
    snapshot: (): Snapshot => makeSnapshot(namespace()),
    control: (gpuId, line) => host.control(gpuId, line),
    leases: {
      list: () => host.leases.list(),
      live: (gpuId) => host.leases.live(gpuId),
      get: (id) => host.leases.get(id),
      grant: (req) => host.grant(req),
      renew: (id, ttlS) => host.leases.renew(id, ttlS),
      release: (id, reason) => host.leases.release(id, reason),
      policy: host.leases.policy,
    },
    jobs: {
      submit: (leaseId, descriptor) => host.submitJob(leaseId, descriptor),
      get: (job) => host.jobs.get(job),
      counts: () => host.jobs.counts(),
      results: () => host.jobs.results(),
      policy: host.jobs.policy,
    },
    models: p.models,
    console: { target: p.console ?? null, stats: () => p.publisher?.stats ?? null, vmReadback: () => p.vmReadback?.() ?? null },
    ...(p.telemetry !== undefined && { telemetry: p.telemetry }),
    ...(p.vram !== undefined && { vram: p.vram }),
    ...(p.cdi !== undefined && { cdi: p.cdi }),
    ...(p.events !== undefined && { events: p.events }),
    ...(p.leaseHistory !== undefined && { leaseHistory: p.leaseHistory }),
  };
}

/**
 * Starts a bridge's parts; `stop()` ends them. The state folder is checked first, and any
 * file-system failure in it is told as what `--state-dir` needs (StateDirError). When a step
 * fails, every part the steps before it started is ended before the error is thrown: no timer,
 * watch, worker thread or open file outlives a failed start.
 */
export async function createBridge(options: BridgeOptions, ports: BridgePorts, tuning: BridgeTuning = {}): Promise<Bridge> {
  prepareStateDir(options.stateDir);
  const w: Wiring = {
    options,
    ports,
    tuning,
    clock: tuning.clock ?? systemClock,
    log: ports.log,
    teardown: new Teardown(),
    persistVm: options.publish && !tuning.noJournal,
    gpus: [],
    publisher: null,
    changed: () => w.publisher?.notifyChange(),
    changes: auditedRecord(null, tuning.clock ?? systemClock, ports.log.child("changes")),
  };
  try {
    // Before anything can change: the record numbers on from the trail, which hears every change.
    const trail = await openAuditTrail(options, tuning.noJournal === true, ports.log.child("audit"));
    if (trail !== null) {
      w.changes = auditedRecord(trail, w.clock, ports.log.child("changes"));
      w.teardown.add("the audit trail", () => trail.close());
      w.leaseHistory = leaseHistory(options, trail);
    }
    return await wireBridge(w);
  } catch (error) {
    await w.teardown.run(ports.log, "after a failed start");
    throw stateDirError(options.stateDir, error) ?? error;
  }
}

async function wireBridge(w: Wiring): Promise<Bridge> {
  const { options, ports, log } = w;
  const registry = watchRegistry(w);
  w.gpus = await ports.backend.list();
  // Jobs run only once the bridge is returned, when vram is set; until then no lease holds shards.
  let vram: Vram | null = null;
  const host = startHost(w, {
    gate: (leaseId) => vram?.gate(leaseId) ?? null,
    shardOf: (leaseId, shardId) => vram?.shardOf(leaseId, shardId),
    shardOperand: async (leaseId, shardId, map) =>
      vram === null
        ? { ok: false, detail: "NOT-SEALED", message: `shard ${shardId}: sealed shards are not started yet` }
        : await vram.jobOperand(leaseId, shardId, map),
  });
  w.teardown.add("the lease changes' feed", feedHostChanges(w.changes, host));
  vram = await startLeaseVram(w, host);
  const vm = startVmSync(w, host);
  // After restore: the spec written at start already carries the leases that survived.
  restoreLeases(w, host, vm);
  await Promise.all(host.leases.live().map((l) => vram.openLease(l))); // restored leases emit no `granted`
  const cdi = await startCdi(w, host, vram, await startMps(w));
  const telemetry = openTelemetry(w);
  const refresh = async () => {
    const before = w.gpus;
    w.gpus = await ports.backend.list();
    for (const c of healthChanges(before, w.gpus)) w.changes.append(c);
  };
  // Live stats are sampled on the clock; reads serve the last sample, never the hardware.
  const sampler = new StatsSampler({
    poll: () => ports.backend.stats(),
    clock: w.clock,
    periodMs: DEFAULTS.statsSampleMs,
    log: log.child("stats"),
  });
  w.teardown.add("the stats sampler", () => sampler.stop());
  await sampler.start();
  const k8s = await startK8s(w, host, cdi, () => sampler.latest());
  const facade = bridgeFacade({
    version: VERSION,
    log,
    gpus: () => w.gpus,
    stats: () => sampler.latest(),
    host,
    models: apiModels(w, registry, vram),
    ...(options.publish && { console: { host: options.tcpHost, port: options.tcpPort } }),
    get publisher() {
      return w.publisher;
    },
    telemetry,
    vram,
    ...(cdi !== null && { cdi }),
    ...(w.leaseHistory !== undefined && { leaseHistory: w.leaseHistory }),
    events: new EventHub({
      record: w.changes,
      clock: w.clock,
      maxQueued: DEFAULTS.eventClientQueue,
      heartbeatMs: DEFAULTS.eventHeartbeatMs,
    }),
    ...(vm !== null && { nodeLogs: (id: string) => vm.sync.nodeLogs(id), vmReadback: () => vm.sync.readback.mode }),
  });
  if (options.publish) startPublisher(w, facade, vm?.sync ?? null, telemetry, refresh);
  else keepInventoryFresh(w, refresh);
  startActivitySummary(w, host, vm?.sync ?? null);
  log.info(`serving ${w.gpus.length} GPUs from the ${ports.backend.name} backend; jobs run on the ${runnerKind(w)} runner`);
  return {
    ...facade,
    publisher: w.publisher,
    host,
    backend: ports.backend,
    telemetry,
    vram,
    vm: vm?.sync ?? null,
    changes: w.changes,
    k8s,
    ...(k8s !== null && { k8sMetrics: () => k8s.metrics() }),
    ...(vm !== null && { vmMetrics: () => vm.sync.metrics() }),
    refresh,
    async stop() {
      // Job children first: killed now, so they are gone by the time the rest has stopped.
      host.jobs.close();
      await w.teardown.run(log, "while stopping");
      // A clean stop leaves no job process behind: wait (bounded) until every child has exited.
      if (!(await host.jobs.idle(DEFAULTS.stopChildrenMs))) {
        log.warn(`job processes still running ${DEFAULTS.stopChildrenMs} ms into the stop; they die with the bridge`);
      }
    },
  };
}
