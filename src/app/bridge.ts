/**
 * `createBridge(options, ports)`: wires one bridge from its capabilities (inventory, leases and
 * jobs, the model registry, the publisher, telemetry, sealed VRAM shards, the CDI spec) and returns it as the narrow façade the
 * API calls, plus what the daemon needs to run and stop it.
 *
 * Reads never touch the hardware: the inventory is re-read by `refresh()`, which the publisher
 * calls before every publish decision (or a timer, when nothing is published).
 */
import { prepareStateDir, stateDirError } from "../util/state-dir.ts";
import { hostname } from "node:os";
import { join } from "node:path";
import type { ApiCdi, ApiModels, BridgeFacade } from "../api/facade.ts";
import { DEFAULTS } from "../config/defaults.ts";
import type { BridgeOptions } from "../cli/options.ts";
import { Publisher } from "../console/publisher.ts";
import { toSafeId } from "../contract/ids.ts";
import type { GpuInfo } from "../contract/info.ts";
import type { ModelCatalog } from "../contract/models.ts";
import { buildNamespace, type Namespace, type NodeLogs } from "../contract/namespace.ts";
import { makeSnapshot, type Snapshot } from "../contract/snapshot.ts";
import { fitNamespace } from "../contract/fit.ts";
import { LIMITS } from "../contract/limits.ts";
import { HostState } from "../host/state.ts";
import { StatsSampler } from "../inventory/stats-cache.ts";
import type { GpuStats } from "../inventory/stats.ts";
import type { InventoryBackend } from "../inventory/types.ts";
import { ProcessRunner } from "../job/runner.ts";
import { LeaseJournal } from "../lease/journal.ts";
import { statusLine } from "../lease/records.ts";
import { writeActive } from "../models/active.ts";
import { builtinCatalog } from "../models/catalog.ts";
import { RegistryWatch } from "../models/watch.ts";
import type { Runtime } from "../runtime/types.ts";
import { TelemetryForwarder } from "../telemetry/forward.ts";
import { Spool } from "../telemetry/spool.ts";
import { type TelemetryView, telemetryView } from "../telemetry/view.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";
import { VERSION } from "../util/version.ts";
import type { Vram } from "../vram/mod.ts";
import { bothSidecars, VmSync } from "../vm/sync.ts";
import { ActivitySummary } from "./activity.ts";
import type { ReadbackMode } from "../console/readback.ts";
import { loadMirrorOrSetAside, MirrorStore } from "../vm/store.ts";
import { applyVmHistory, applyVmLines } from "../vm/apply.ts";
import { AppliedLines } from "../vm/applied.ts";

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
}

/** A running bridge: the API's façade, and its parts for the daemon and tests. */
export interface Bridge extends BridgeFacade {
  readonly publisher: Publisher | null;
  readonly host: HostState;
  readonly backend: InventoryBackend;
  /** The API's view of telemetry, and (for the daemon and tests) the spool and forwarder behind it. */
  readonly telemetry: TelemetryView & { readonly spool: Spool; readonly forwarder: TelemetryForwarder | null };
  /** Sealed VRAM shards (src/vram): the API's part of it, plus the gate, a lease's end and close. */
  readonly vram: Vram;
  /** The VM's side of `/gpu` (read-back and appends), when publishing. */
  readonly vm: VmSync | null;
  /** Re-reads the inventory (the hardware); the publisher calls it before every publish decision. */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

/** The façade's parts that are not the host's leases and jobs. */
export interface FacadeParts {
  readonly version?: string;
  readonly hostname?: string;
  readonly gpus: () => readonly GpuInfo[];
  readonly stats: () => Promise<readonly GpuStats[]>;
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
  };
}

/**
 * Starts a bridge's parts; `stop()` ends them. The state folder is checked first, and any
 * file-system failure in it is told as what `--state-dir` needs (StateDirError).
 */
export async function createBridge(options: BridgeOptions, ports: BridgePorts, tuning: BridgeTuning = {}): Promise<Bridge> {
  prepareStateDir(options.stateDir);
  try {
    return await wireBridge(options, ports, tuning);
  } catch (error) {
    throw stateDirError(options.stateDir, error) ?? error;
  }
}

async function wireBridge(options: BridgeOptions, ports: BridgePorts, tuning: BridgeTuning): Promise<Bridge> {
  const { runtime, log, backend } = ports;
  const clock = tuning.clock ?? systemClock;
  let publisher: Publisher | null = null;
  const changed = () => publisher?.notifyChange();
  const registry = options.registry === undefined
    ? null
    : new RegistryWatch({ dir: options.registry, log: log.child("registry"), onChange: changed, pollMs: tuning.registryPollMs, clock });
  const catalog = (): ModelCatalog => registry?.catalog ?? builtinCatalog();
  let gpus: readonly GpuInfo[] = await backend.list();
  const runnerKind = options.runner === "auto" ? (backend.name === "mock" ? "cpu" : "cuda") : options.runner;
  const host = new HostState({
    gpus: () => gpus,
    runner: new ProcessRunner(runtime),
    runnerKind,
    log: log.child("host"),
    onChange: changed,
    maxStreamsPerGpu: options.maxStreamsPerGpu,
    retention: { resultBytes: options.jobResultsBytes, resultAgeMs: options.jobResultsAgeMs },
    ...(options.bundleDir !== undefined && { bundleDir: options.bundleDir }),
    ...(tuning.clock !== undefined && { clock: tuning.clock }),
    ...(!tuning.noJournal && { journal: new LeaseJournal(join(options.stateDir, "leases.jsonl")) }),
    ...(backend.cudaOrdinal !== undefined && { deviceOf: (id: string) => backend.cudaOrdinal!(id) }),
    // Before each job of a lease that holds sealed shards, the shards are verified.
    gate: (leaseId) => vram.gate(leaseId),
  });
  const vram: Vram = await (await import("../vram/mod.ts")).startVram({
    stateDir: options.stateDir,
    ephemeral: tuning.noJournal === true,
    inventory: backend,
    gpus: () => gpus,
    lease: (id) => host.leases.get(id),
    workerId: options.deviceId ?? hostname(),
    log: log.child("vram"),
    clock,
    onFailure: (shard) => {
      host.logsOf(shard.gpu_id).appendStatus(statusLine(shard.shard_id, "ERR", "SEAL-VERIFICATION-FAILED"));
      changed();
    },
  });
  // A lease's end frees its shards.
  host.leases.on((e) => e.type === "released" && vram.releaseLease(e.lease.id, e.reason));
  // Publishing keeps the VM's node files true both ways (src/vm): the bridge's new lines go as
  // appends, the VM's own lines are read back, kept and acted on. The mirror of who wrote what
  // is kept in the state directory, so a restart neither repeats nor forgets a VM line.
  const mirrorPath = join(options.stateDir, "vm-mirror.json");
  const stored = options.publish && !tuning.noJournal ? loadMirrorOrSetAside(mirrorPath, log.child("vm")) : null;
  const store = options.publish && !tuning.noJournal
    ? new MirrorStore({ path: mirrorPath, clock, log: log.child("vm"), saveMs: tuning.mirrorSaveMs ?? DEFAULTS.mirrorSaveMs })
    : null;
  // Which VM lines were acted on, by identity, written ahead: none is acted on twice (src/vm/applied.ts).
  const applied = AppliedLines.open(options.publish && !tuning.noJournal ? join(options.stateDir, "vm-applied.log") : null);
  const vm: VmSync | null = !options.publish ? null : new VmSync({
    ...(stored !== null && { mirror: stored }),
    ...(store !== null && { persist: store }),
    ...(tuning.minSnapshotMs !== undefined && { minSnapshotMs: tuning.minSnapshotMs }),
    log: log.child("vm"),
    readbackMs: options.readbackMs,
    ...(tuning.clock !== undefined && { clock: tuning.clock }),
    onVmLines: (gpuId, file, lines, place) => applyVmLines(host, log.child("vm"), gpuId, file, lines, { place, ledger: applied }),
    onVmHistory: (gpuId, file, lines) => applyVmHistory(host, log.child("vm"), gpuId, file, lines),
    pinned: (gpuId, file, text) => file === "lease" && host.isLiveActiveLine(gpuId, text),
    requestPublish: () => publisher?.notifyChange(),
    onLanded: () => applied.clear(),
  });
  if (vm !== null) store?.attach(vm.mirror, stored !== null);
  const sink = (gpuId: string, file: "ctl" | "lease" | "status", text: string) => {
    vm!.mirror.own(gpuId, file, text);
    publisher?.notifyWork(); // an append needs no debounce: it goes at once
  };
  // Restored leases' lines reach the VM unless a stored mirror holds them already (it is saved
  // at most every mirrorSaveMs, so it may lack the newest).
  if (vm !== null) host.onLogLine = stored === null ? sink : (gpuId, file, text) => vm.mirror.ownOnce(gpuId, file, text);
  host.restore();
  if (vm !== null) host.onLogLine = sink;
  // After restore: the spec written at start already carries the leases that survived.
  const cdi = options.cdiDir === undefined ? null : await (await import("./cdi.ts")).startBridgeCdi(
    { cdiDir: options.cdiDir, cdiRoot: options.cdiRoot, backend: options.backend, sysRoot: options.sysRoot },
    host.leases,
    log.child("cdi"),
    clock,
    tuning.cdiRefreshMs,
  );
  const refresh = async () => {
    gpus = await backend.list();
  };
  const deviceId = options.deviceId ?? toSafeId(hostname(), "host");
  const spool = Spool.open({
    dir: join(options.stateDir, "telemetry"),
    log: log.child("telemetry"),
    capBytes: options.spoolMaxBytes,
    ...(tuning.clock !== undefined && { clock: tuning.clock }),
  });
  const forwarder = options.publish
    ? new TelemetryForwarder({
      spool,
      deviceId,
      log: log.child("telemetry"),
      queenSegmentBytes: options.queenSegmentBytes,
      ...(tuning.clock !== undefined && { clock: tuning.clock }),
    })
    : null;
  const models: ApiModels = {
    catalog,
    ...(registry !== null && {
      setActive: (modelId: string) => {
        writeActive(options.registry!, modelId);
        registry.reload();
        log.info(`active model set to ${modelId} through the API`);
      },
    }),
  };
  const telemetry = { spool, forwarder, ...telemetryView(spool, forwarder, deviceId, () => publisher?.notifyWork()) };
  // Live stats are sampled on the clock; reads serve the last sample, never the hardware.
  const sampler = new StatsSampler({ poll: () => backend.stats(), clock, periodMs: DEFAULTS.statsSampleMs, log: log.child("stats") });
  await sampler.start();
  const facade = bridgeFacade({
    version: VERSION,
    log,
    gpus: () => gpus,
    stats: () => Promise.resolve(sampler.latest()),
    host,
    models,
    ...(options.publish && { console: { host: options.tcpHost, port: options.tcpPort } }),
    get publisher() {
      return publisher;
    },
    telemetry,
    vram,
    ...(cdi !== null && { cdi }),
    ...(vm !== null && { nodeLogs: (id: string) => vm.nodeLogs(id), vmReadback: () => vm.readback.mode }),
  });
  const intervalMs = options.intervalMs ?? DEFAULTS.serveIntervalMs;
  let refreshTimer: unknown;
  let stopped = false;
  let stopWatch: (() => void) | undefined;
  if (options.publish) {
    publisher = new Publisher({
      connect: runtime.connect,
      target: { host: options.tcpHost, port: options.tcpPort, token: options.authToken, ticket: options.ticket },
      // The one place the hardware is re-read: before each publish decision. The VM sync
      // compacts where due and records what the snapshot carries, to commit it once it lands.
      snapshot: async () => {
        await refresh();
        vm?.prepare(gpus.map((g) => g.id));
        const ns = facade.namespace();
        const snap = makeSnapshot(ns);
        vm?.built(ns, snap);
        return snap;
      },
      log: log.child("publish"),
      intervalMs,
      ackTimeoutMs: options.ackTimeoutMs,
      window: options.window,
      ...(tuning.refreshMs !== undefined && { refreshMs: tuning.refreshMs }),
      ...(tuning.pingIdleMs !== undefined && { pingIdleMs: tuning.pingIdleMs }),
      ...(tuning.backoff !== undefined && { backoff: tuning.backoff }),
      ...(vm !== null && { sidecar: bothSidecars(vm, forwarder), vm }),
      ...(tuning.clock !== undefined && { clock: tuning.clock }),
    });
    void publisher.start();
    const up = publisher;
    stopWatch = forwarder?.watch(() => up.stats.state === "connected");
  } else {
    // Not publishing: the inventory is still re-read every interval, so the API's GPU list and
    // the leases checked against it follow GPUs that are lost or come back.
    const tick = () => {
      if (stopped) return;
      refreshTimer = clock.setTimer(
        intervalMs,
        () => void refresh().catch((e) => log.warn(`Cannot re-read the inventory: ${e}`)).finally(tick),
      );
    };
    tick();
  }
  // Per-publish, per-append and per-lease lines are DEBUG; INFO gets one line a period.
  let leasesEnded = 0;
  host.leases.on((e) => void (e.type === "released" && leasesEnded++));
  const activity = new ActivitySummary({
    clock,
    log: log.child("activity"),
    periodMs: tuning.activitySummaryMs ?? DEFAULTS.activitySummaryMs,
    read: () => ({
      publishes: publisher?.stats.publishes ?? 0,
      publishedBytes: publisher?.stats.publishedBytes ?? 0,
      appends: vm?.stats.appends ?? 0,
      readbacks: vm?.stats.readbacks ?? 0,
      compactions: vm?.stats.compactions ?? 0,
      vmLines: vm?.stats.vmLines ?? 0,
      leasesEnded,
    }),
  });
  log.info(`serving ${gpus.length} GPUs from the ${backend.name} backend; jobs run on the ${runnerKind} runner`);
  return {
    ...facade,
    publisher,
    host,
    backend,
    telemetry,
    vram,
    vm,
    ...(vm !== null && { vmMetrics: () => vm.metrics() }),
    refresh,
    async stop() {
      stopped = true;
      // Job children first: killed now, so they are gone by the time the rest has stopped.
      host.jobs.close();
      clock.clearTimer(refreshTimer);
      sampler.stop();
      stopWatch?.();
      activity.stop();
      registry?.close();
      cdi?.stop();
      await publisher?.stop();
      vm?.close();
      store?.close();
      host.close();
      applied.close();
      vram.close();
      spool.close();
      // A clean stop leaves no job process behind: wait (bounded) until every child has exited.
      if (!(await host.jobs.idle(DEFAULTS.stopChildrenMs))) {
        log.warn(`job processes still running ${DEFAULTS.stopChildrenMs} ms into the stop; they die with the bridge`);
      }
    },
  };
}
