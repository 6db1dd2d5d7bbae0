/**
 * The steps of `createBridge` (bridge.ts), one part each. Every step that starts something
 * registers how to end it on the wiring's `Teardown`, so a later step's failure, and the
 * bridge's `stop()`, end exactly what was started, newest first.
 */
import { hostname } from "node:os";
import { join } from "node:path";
import type { ApiModels, BridgeFacade } from "../api/facade.ts";
import type { CdiKeeper } from "../cdi/keeper.ts";
import { DEFAULTS } from "../config/defaults.ts";
import type { BridgeOptions } from "../cli/options.ts";
import { Publisher } from "../console/publisher.ts";
import { type ChangeRecord, contextActor, contextSource, within } from "../changes/record.ts";
import { toSafeId } from "../contract/ids.ts";
import type { GpuInfo } from "../contract/info.ts";
import type { ModelCatalog } from "../contract/models.ts";
import { makeSnapshot } from "../contract/snapshot.ts";
import { type HostOptions, HostState } from "../host/state.ts";
import { ProcessRunner } from "../job/runner.ts";
import { LeaseJournal } from "../lease/journal.ts";
import { DEFAULT_LEASE_POLICY, type LeasePolicy } from "../lease/policy.ts";
import { statusLine } from "../lease/records.ts";
import { activate, handEditRefusal, setApproval } from "../models/activation.ts";
import type { MpsDaemons } from "../mps/daemons.ts";
import { builtinCatalog } from "../models/catalog.ts";
import { RegistryWatch } from "../models/watch.ts";
import { TelemetryForwarder } from "../telemetry/forward.ts";
import { Spool } from "../telemetry/spool.ts";
import { type TelemetryView, telemetryView } from "../telemetry/view.ts";
import type { Clock } from "../util/clock.ts";
import { errorText } from "../util/error-text.ts";
import type { Logger } from "../util/log.ts";
import type { Teardown } from "../util/teardown.ts";
import { applyVmHistory, applyVmLines } from "../vm/apply.ts";
import { AppliedLines } from "../vm/applied.ts";
import { loadMirrorOrSetAside, MirrorStore } from "../vm/store.ts";
import { bothSidecars, VmSync } from "../vm/sync.ts";
import type { Vram } from "../vram/mod.ts";

import type { GpuStats } from "../inventory/stats.ts";
import { ActivitySummary } from "./activity.ts";
import { jobChange, shardChange } from "./changes.ts";
import type { BridgeK8s } from "./k8s.ts";
import type { BridgePorts, BridgeTuning } from "./bridge.ts";

/** The API's view of telemetry, and (for the daemon and tests) the spool and forwarder behind it. */
export type BridgeTelemetry = TelemetryView & { readonly spool: Spool; readonly forwarder: TelemetryForwarder | null };

/** What the wiring steps share: the inputs, the parts started so far, and how to end them. */
export interface Wiring {
  readonly options: BridgeOptions;
  readonly ports: BridgePorts;
  readonly tuning: BridgeTuning;
  readonly clock: Clock;
  readonly log: Logger;
  readonly teardown: Teardown;
  /** The VM mirror and the applied-lines ledger are kept on disk (publishing with a journal). */
  readonly persistVm: boolean;
  /** The inventory as last read. */
  gpus: readonly GpuInfo[];
  /** Set by the last step when publishing; until then a change has no one to tell. */
  publisher: Publisher | null;
  /** Tells the publisher that what the VM sees changed. */
  readonly changed: () => void;
  /** The record of changes every part appends to (src/changes/record.ts). */
  changes: ChangeRecord;
  /** Lease history from the audit trail (absent: no trail). */
  leaseHistory?: BridgeFacade["leaseHistory"];
  /** The host's MIG devices as the CDI keeper last described them (`MIG-<uuid>` to GPU id). */
  migDevices?: ReadonlyMap<string, string>;
}

/** `--runner auto`: the CPU runner on the mock inventory, CUDA on real GPUs. */
export function runnerKind(w: Wiring): "cpu" | "cuda" {
  const runner = w.options.runner;
  return runner === "auto" ? (w.ports.backend.name === "mock" ? "cpu" : "cuda") : runner;
}

/**
 * The model registry under --registry, watched for edits; null: the built-in catalog. A hand edit
 * of `active` naming a model that may not be active (src/models/activation.ts) is refused and
 * written back; each activation, and each refusal, is a change.
 */
export function watchRegistry(w: Wiring): RegistryWatch | null {
  const dir = w.options.registry;
  if (dir === undefined) return null;
  let active: string | null = null;
  let started = false;
  const sealLease = w.options.sealActive;
  const registry = new RegistryWatch({
    dir,
    log: w.log.child("registry"),
    gate: (catalog, id) => handEditRefusal({ dir, ...(sealLease !== undefined && { sealLease }) }, catalog, id),
    onRefused: (r) => w.changes.append({ type: "model.activation_refused", source: "registry", severity: "warning", data: { ...r } }),
    // A change of the active model is recorded whoever made it: the API (its request's context,
    // and what the activation did: forced, sealed), or the active file edited by hand ("registry").
    onChange: (catalog, note) => {
      if (started && catalog.active !== active) {
        const shard = note?.shard as { lease_id?: string; gpu_id?: string } | undefined;
        w.changes.append({
          type: "model.activated",
          source: contextSource() ?? "registry",
          ...(shard?.lease_id !== undefined && { lease_id: shard.lease_id }),
          ...(shard?.gpu_id !== undefined && { gpu_id: shard.gpu_id }),
          ...(note?.forced === true && { outcome: "forced", severity: "warning" as const }),
          data: { model_id: catalog.active, previous: active, path: join(dir, "available", catalog.active), ...note },
        });
      }
      active = catalog.active;
      w.changed();
    },
    pollMs: w.tuning.registryPollMs,
    clock: w.clock,
  });
  w.teardown.add("the registry watch", () => registry.close());
  active = registry.catalog.active;
  started = true;
  return registry;
}

/** The options' lease policy (src/lease/policy.ts); a setting a library caller left out keeps its default. */
export function leasePolicyOf(o: Partial<BridgeOptions>): LeasePolicy {
  const d = DEFAULT_LEASE_POLICY;
  return {
    maxTtlS: o.maxTtlS ?? d.maxTtlS,
    maxMemMb: o.maxLeaseMemMb ?? d.maxMemMb,
    maxStreams: o.maxLeaseStreams ?? d.maxStreams,
    memMb: o.leaseMemMb ?? d.memMb,
    streams: o.leaseStreams ?? d.streams,
    ttlS: o.leaseTtlS ?? d.ttlS,
  };
}

/** The leases and jobs, their journal under the state folder (unless tuning.noJournal). */
export function startHost(w: Wiring, shards: Pick<HostOptions, "gate" | "shardOf" | "shardOperand">): HostState {
  const { options, ports, tuning } = w;
  const backend = ports.backend;
  const host = new HostState({
    gpus: () => w.gpus,
    runner: new ProcessRunner(ports.runtime),
    runnerKind: runnerKind(w),
    log: w.log.child("host"),
    onChange: w.changed,
    onJobChange: (job) => w.changes.append(jobChange(job)),
    maxStreamsPerGpu: options.maxStreamsPerGpu,
    policy: leasePolicyOf(options),
    ...(options.allowedKernels !== undefined && { allowedKernels: options.allowedKernels }),
    retention: { resultBytes: options.jobResultsBytes, resultAgeMs: options.jobResultsAgeMs },
    ...(options.bundleDir !== undefined && { bundleDir: options.bundleDir }),
    ...(tuning.clock !== undefined && { clock: tuning.clock }),
    ...(!tuning.noJournal && { journal: new LeaseJournal(join(options.stateDir, "leases.jsonl")) }),
    ...(backend.cudaOrdinal !== undefined && { deviceOf: (id: string) => backend.cudaOrdinal!(id) }),
    // Before each job of a lease that holds sealed shards, the shards are verified; a job may
    // read one of them as operand b.
    ...shards,
    ...(options.cdiDir !== undefined && { migDevices: () => w.migDevices ?? new Map() }),
  });
  w.teardown.add("the leases and jobs", () => host.close());
  return host;
}

/** Sealed VRAM shards on the leases' GPUs; a lease's end frees its shards. */
export async function startLeaseVram(w: Wiring, host: HostState): Promise<Vram> {
  const vram = await (await import("../vram/mod.ts")).startVram({
    stateDir: w.options.stateDir,
    ephemeral: w.tuning.noJournal === true,
    inventory: w.ports.backend,
    gpus: () => w.gpus,
    lease: (id) => host.leases.get(id),
    log: w.log.child("vram"),
    clock: w.clock,
    onAudit: (event, fields) => w.changes.append(shardChange(event, fields)),
    verifyMaxAgeMs: w.options.verifyMaxAgeMs,
    ...(w.options.verifyMode !== undefined && { verify: { mode: w.options.verifyMode, sweepMs: w.options.verifySweepMs } }),
    policyCheckMs: w.options.vramPolicyCheckMs,
    onFailure: (shard) => {
      host.logsOf(shard.gpu_id).appendStatus(statusLine(shard.shard_id, "ERR", "SEAL-VERIFICATION-FAILED"));
      w.changed();
    },
  });
  w.teardown.add("the sealed VRAM shards", () => vram.close());
  host.leases.on((e) => e.type === "released" && vram.releaseLease(e.lease.id, e.reason));
  // Each granted lease gets its share socket (src/vram/share.ts); restored ones get theirs in wireBridge.
  host.leases.on((e) => e.type === "granted" && void vram.openLease(e.lease));
  return vram;
}

/** The VM's side of `/gpu` when publishing, and whether a stored mirror was loaded. */
export interface VmParts {
  readonly sync: VmSync;
  readonly stored: boolean;
}

/**
 * Publishing keeps the VM's node files true both ways (src/vm): the bridge's new lines go as
 * appends, the VM's own lines are read back, kept and acted on. The mirror of who wrote what
 * is kept in the state directory, so a restart neither repeats nor forgets a VM line.
 */
export function startVmSync(w: Wiring, host: HostState): VmParts | null {
  const { options, tuning, log } = w;
  if (!options.publish) return null;
  const mirrorPath = join(options.stateDir, "vm-mirror.json");
  const stored = w.persistVm ? loadMirrorOrSetAside(mirrorPath, log.child("vm")) : null;
  const store = w.persistVm
    ? new MirrorStore({ path: mirrorPath, clock: w.clock, log: log.child("vm"), saveMs: tuning.mirrorSaveMs ?? DEFAULTS.mirrorSaveMs })
    : null;
  if (store !== null) w.teardown.add("the VM mirror's store", () => store.close());
  // Which VM lines were acted on, by identity, written ahead: none is acted on twice (src/vm/applied.ts).
  const applied = AppliedLines.open(w.persistVm ? join(options.stateDir, "vm-applied.log") : null);
  w.teardown.add("the applied VM lines' ledger", () => applied.close());
  const sync = new VmSync({
    ...(stored !== null && { mirror: stored }),
    ...(store !== null && { persist: store }),
    ...(tuning.minSnapshotMs !== undefined && { minSnapshotMs: tuning.minSnapshotMs }),
    log: log.child("vm"),
    readbackMs: options.readbackMs,
    ...(tuning.clock !== undefined && { clock: tuning.clock }),
    // What the VM's lines change is recorded as the VM's doing.
    onVmLines: (gpuId, file, lines, place) =>
      within({ source: "vm" }, () => applyVmLines(host, log.child("vm"), gpuId, file, lines, { place, ledger: applied })),
    onVmHistory: (gpuId, file, lines) => applyVmHistory(host, log.child("vm"), gpuId, file, lines),
    pinned: (gpuId, file, text) => file === "lease" && host.isLiveActiveLine(gpuId, text),
    requestPublish: () => w.publisher?.notifyChange(),
    onLanded: () => applied.clear(),
  });
  w.teardown.add("the VM sync", () => sync.close());
  store?.attach(sync.mirror, stored !== null);
  return { sync, stored: stored !== null };
}

/**
 * Adopts the journal's leases. Their lines reach the VM unless a stored mirror holds them
 * already (it is saved at most every mirrorSaveMs, so it may lack the newest); from then on
 * every line the bridge logs goes to the VM as an append.
 */
export function restoreLeases(w: Wiring, host: HostState, vm: VmParts | null): void {
  if (vm === null) return host.restore();
  const mirror = vm.sync.mirror;
  const sink = (gpuId: string, file: "ctl" | "lease" | "status", text: string) => {
    mirror.own(gpuId, file, text);
    w.publisher?.notifyWork(); // an append needs no debounce: it goes at once
  };
  host.onLogLine = vm.stored ? (gpuId, file, text) => mirror.ownOnce(gpuId, file, text) : sink;
  host.restore();
  host.onLogLine = sink;
}

/** `--mps`: an MPS control daemon per GPU (started or adopted), stopped at the end if started here; null without it. */
export async function startMps(w: Wiring): Promise<MpsDaemons | null> {
  if (!w.options.mps) return null;
  const { MpsDaemons } = await import("../mps/daemons.ts");
  const mps = new MpsDaemons({
    stateDir: w.options.stateDir,
    binary: process.env.GPU_BRIDGE_MPS_CONTROL?.trim() || DEFAULTS.mpsControl,
    spawn: w.ports.runtime.spawn,
    log: w.log.child("mps"),
    clock: w.clock,
    onEvent: (e) =>
      w.changes.append({
        type: e.type,
        gpu_id: e.daemon.gpu_id,
        ...(e.type === "mps.failed" && { severity: "warning" as const }),
        data: { pipe_dir: e.daemon.pipe_dir, ...(e.daemon.reason !== undefined && { reason: e.daemon.reason }) },
      }),
  });
  w.teardown.add("the MPS control daemons", () => mps.stop());
  const stats = await w.ports.backend.stats();
  await mps.start(stats.map((g) => ({ id: g.id, uuid: g.uuid, migMode: g.mig_mode })));
  return mps;
}

/** The CDI keeper under --cdi-dir (the spec is written before this resolves); null without it. */
export async function startCdi(w: Wiring, host: HostState, vram?: Vram, mps: MpsDaemons | null = null): Promise<CdiKeeper | null> {
  const o = w.options;
  if (o.cdiDir === undefined) return null;
  const leaseEdits = mps === null ? undefined : (await import("../mps/edits.ts")).mpsLeaseEdits((id) => mps.get(id), o.maxStreamsPerGpu);
  const cdi = await (await import("./cdi.ts")).startBridgeCdi(
    {
      cdiDir: o.cdiDir,
      cdiRoot: o.cdiRoot,
      backend: o.backend,
      sysRoot: o.sysRoot,
      ...(leaseEdits !== undefined && { leaseEdits }),
      onMigs: (migs) => void (w.migDevices = migs),
    },
    host.leases,
    w.log.child("cdi"),
    w.clock,
    w.tuning.cdiRefreshMs,
    (leaseId) => vram?.share?.mount(leaseId) ?? null,
  );
  w.teardown.add("the CDI keeper", () => cdi.stop());
  return cdi;
}

/** The Kubernetes device plugin under --kubelet-dir / --k8s (loaded only then); null without it. */
export async function startK8s(
  w: Wiring,
  host: HostState,
  cdi: CdiKeeper | null,
  stats: () => readonly GpuStats[],
): Promise<BridgeK8s | null> {
  const k = w.options.k8s;
  if (k === undefined) return null;
  // The option parser refuses this too; a library caller gets the same reason.
  if (cdi === null) throw new Error("Cannot start the device plugin: it needs --cdi-dir, since each Allocate answers with a CDI device");
  const k8s = await (await import("./k8s.ts")).startBridgeK8s({
    options: k,
    sysRoot: w.options.sysRoot,
    host,
    cdi,
    probe: () => w.ports.backend.list(),
    jetson: w.ports.backend.name === "jetson",
    stats,
    changes: w.changes,
    clock: w.clock,
    log: w.log.child("k8s"),
    nvml: async () => {
      if (w.ports.backend.name !== "nvml") return null;
      const [{ loadFfiAdapter, nvmlCandidates }, { Nvml }] = await Promise.all([
        import("../../ffi/loader.ts"),
        import("../../ffi/nvml.ts"),
      ]);
      return Nvml.open(await loadFfiAdapter(), nvmlCandidates(process.env));
    },
    ...(w.tuning.k8s !== undefined && { tuning: w.tuning.k8s }),
  });
  w.teardown.add("the device plugin", () => k8s.stop());
  return k8s;
}

/** The telemetry spool under the state folder, and its forwarder to the Queen when publishing. */
export function openTelemetry(w: Wiring): BridgeTelemetry {
  const { options, tuning, log } = w;
  const deviceId = options.deviceId ?? toSafeId(hostname(), "host");
  const spool = Spool.open({
    dir: join(options.stateDir, "telemetry"),
    log: log.child("telemetry"),
    capBytes: options.spoolMaxBytes,
    ...(tuning.clock !== undefined && { clock: tuning.clock }),
  });
  w.teardown.add("the telemetry spool", () => spool.close());
  const forwarder = options.publish
    ? new TelemetryForwarder({
      spool,
      deviceId,
      log: log.child("telemetry"),
      queenSegmentBytes: options.queenSegmentBytes,
      ...(tuning.clock !== undefined && { clock: tuning.clock }),
    })
    : null;
  return { spool, forwarder, ...telemetryView(spool, forwarder, deviceId, () => w.publisher?.notifyWork()) };
}

/**
 * The catalog (the registry's, else the built-in one) and, with a registry, switching its active
 * model (gated, verified and, when asked, sealed: src/models/activation.ts) and approving models.
 */
export function apiModels(w: Wiring, registry: RegistryWatch | null, vram: Vram): ApiModels {
  const catalog = (): ModelCatalog => registry?.catalog ?? builtinCatalog();
  const dir = w.options.registry;
  if (registry === null || dir === undefined) return { catalog };
  const log = w.log.child("registry");
  const deps = {
    dir,
    watch: registry,
    log,
    ...(w.options.sealActive !== undefined && { sealLease: w.options.sealActive }),
    seal: async (leaseId: string, path: string, sha256: string) =>
      (await import("../vram/seal-weights.ts")).sealWeights(vram.store, vram.unavailable, leaseId, path, sha256),
  };
  return {
    catalog,
    registry: dir,
    setActive: async (modelId, o = {}) => {
      const done = await activate(deps, { model_id: modelId, ...o });
      log.info(
        `active model set to ${modelId} through the API${done.forced ? " (forced)" : ""}${
          done.shard ? ` (sealed as ${done.shard.shard_id})` : ""
        }`,
      );
      return done;
    },
    setApproval: (modelId, status, reason) => {
      const actor = contextActor();
      const by = actor?.principal ?? actor?.route;
      const done = setApproval(deps, modelId, {
        status,
        reason,
        ...(by !== undefined && { by }),
        at: new Date(w.clock.now()).toISOString(),
      });
      w.changes.append({ type: "model.approval", data: { ...done } });
      log.info(`${modelId} is now ${status} (was ${done.previous})`);
      return done;
    },
  };
}

/** Publishes to the VM's console; the forwarder's stall watch follows the connection. */
export function startPublisher(
  w: Wiring,
  facade: BridgeFacade,
  vm: VmSync | null,
  telemetry: BridgeTelemetry,
  refresh: () => Promise<void>,
): void {
  const { options, tuning } = w;
  const publisher = new Publisher({
    connect: w.ports.runtime.connect,
    target: { host: options.tcpHost, port: options.tcpPort, token: options.authToken, ticket: options.ticket },
    // The one place the hardware is re-read: before each publish decision. The VM sync
    // compacts where due and records what the snapshot carries, to commit it once it lands.
    snapshot: async () => {
      await refresh();
      vm?.prepare(w.gpus.map((g) => g.id));
      const ns = facade.namespace();
      const snap = makeSnapshot(ns);
      vm?.built(ns, snap);
      return snap;
    },
    log: w.log.child("publish"),
    intervalMs: options.intervalMs ?? DEFAULTS.serveIntervalMs,
    ackTimeoutMs: options.ackTimeoutMs,
    window: options.window,
    ...(tuning.refreshMs !== undefined && { refreshMs: tuning.refreshMs }),
    ...(tuning.pingIdleMs !== undefined && { pingIdleMs: tuning.pingIdleMs }),
    ...(tuning.backoff !== undefined && { backoff: tuning.backoff }),
    ...(vm !== null && { sidecar: bothSidecars(vm, telemetry.forwarder), vm }),
    ...(tuning.clock !== undefined && { clock: tuning.clock }),
    onState: (state, lastError) =>
      w.changes.append({ type: "console.state", data: { state, ...(state === "backoff" && lastError !== null && { error: lastError }) } }),
  });
  w.publisher = publisher;
  void publisher.start();
  w.teardown.add("the publisher", () => publisher.stop());
  const stopWatch = telemetry.forwarder?.watch(() => publisher.stats.state === "connected");
  if (stopWatch !== undefined) w.teardown.add("the telemetry stall watch", stopWatch);
}

/**
 * Not publishing: the inventory is still re-read every interval, so the API's GPU list and the
 * leases checked against it follow GPUs that are lost or come back.
 */
export function keepInventoryFresh(w: Wiring, refresh: () => Promise<void>): void {
  const intervalMs = w.options.intervalMs ?? DEFAULTS.serveIntervalMs;
  let timer: unknown;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    timer = w.clock.setTimer(
      intervalMs,
      () => void refresh().catch((e) => w.log.warn(`Cannot re-read the inventory: ${errorText(e)}`)).finally(tick),
    );
  };
  tick();
  w.teardown.add("the inventory refresh", () => {
    stopped = true;
    w.clock.clearTimer(timer);
  });
}

/** Per-publish, per-append and per-lease lines are DEBUG; INFO gets one line a period. */
export function startActivitySummary(w: Wiring, host: HostState, vm: VmSync | null): void {
  let leasesEnded = 0;
  host.leases.on((e) => void (e.type === "released" && leasesEnded++));
  const activity = new ActivitySummary({
    clock: w.clock,
    log: w.log.child("activity"),
    periodMs: w.tuning.activitySummaryMs ?? DEFAULTS.activitySummaryMs,
    read: () => ({
      publishes: w.publisher?.stats.publishes ?? 0,
      publishedBytes: w.publisher?.stats.publishedBytes ?? 0,
      appends: vm?.stats.appends ?? 0,
      readbacks: vm?.stats.readbacks ?? 0,
      compactions: vm?.stats.compactions ?? 0,
      vmLines: vm?.stats.vmLines ?? 0,
      leasesEnded,
    }),
  });
  w.teardown.add("the activity summary", () => activity.stop());
}
