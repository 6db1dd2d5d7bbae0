/**
 * The long-running bridge: inventory and registry feed the namespace, the publisher keeps the
 * VM's `/gpu` current, and SIGINT/SIGTERM end it cleanly (exit 0 within 2 s).
 */
import process from "node:process";
import { renameSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { ApiModels } from "../api/app.ts";
import { VERSION } from "../version.ts";
import { cachedStats } from "../inventory/stats-cache.ts";
import { stopSignal } from "../util/signals.ts";
import type { BridgeOptions } from "../cli/options.ts";
import { HostState } from "../host/state.ts";
import { ProcessRunner } from "../job/runner.ts";
import { LeaseJournal } from "../lease/journal.ts";
import type { Clock } from "../lease/types.ts";
import type { GpuInfo, InventoryBackend } from "../inventory/types.ts";
import type { Logger } from "../log.ts";
import { builtinCatalog } from "../models/catalog.ts";
import type { ModelCatalog } from "../models/types.ts";
import { RegistryWatch } from "../models/watch.ts";
import { buildNamespace, type Namespace } from "../namespace/mod.ts";
import type { Runtime } from "../runtime/types.ts";
import { makeSnapshot, type Snapshot } from "../snapshot/encode.ts";
import { Publisher } from "./publisher.ts";
import { Spool } from "../telemetry/spool.ts";
import { TelemetryForwarder } from "../telemetry/forward.ts";
import { bothSidecars, VmSync } from "../vm/sync.ts";
import { loadMirror, saveMirror } from "../vm/store.ts";
import { applyVmHistory, applyVmLines } from "../vm/apply.ts";

/** Daemon settings beyond the bridge's flags (tests shorten them). */
export interface DaemonTuning {
  readonly refreshMs?: number;
  readonly pingIdleMs?: number;
  readonly backoff?: { baseMs: number; capMs: number };
  readonly registryPollMs?: number;
  readonly clock?: Clock;
  /** Keep leases in memory only (tests); default: journal under the state directory. */
  readonly noJournal?: boolean;
}

/** The parts of a running daemon, for the API and for tests. */
export interface Daemon {
  readonly publisher: Publisher | null;
  readonly host: HostState;
  readonly backend: InventoryBackend;
  /** The inventory as last read. */
  gpus(): readonly GpuInfo[];
  /** The model registry (switching the active model needs --registry). */
  readonly models: ApiModels;
  readonly telemetry: { readonly spool: Spool; readonly forwarder: TelemetryForwarder | null; readonly deviceId: string; spooled(): void };
  /** The VM's side of `/gpu` (read-back and appends), when publishing. */
  readonly vm: VmSync | null;
  /** The namespace as it would be published now. */
  namespace(): Promise<Namespace>;
  snapshot(): Promise<Snapshot>;
  stop(): Promise<void>;
}

/** Starts the daemon's parts; `stop()` ends them. */
export async function startDaemon(
  options: BridgeOptions,
  deps: { readonly runtime: Runtime; readonly log: Logger; readonly backend: InventoryBackend },
  tuning: DaemonTuning = {},
): Promise<Daemon> {
  const { runtime, log, backend } = deps;
  let publisher: Publisher | null = null;
  const changed = () => publisher?.notifyChange();
  const registry =
    options.registry === undefined
      ? null
      : new RegistryWatch({ dir: options.registry, log: log.child("registry"), onChange: changed, pollMs: tuning.registryPollMs });
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
    ...(options.bundleDir !== undefined && { bundleDir: options.bundleDir }),
    ...(tuning.clock !== undefined && { clock: tuning.clock }),
    ...(!tuning.noJournal && { journal: new LeaseJournal(join(options.stateDir, "leases.jsonl")) }),
    ...(backend.cudaOrdinal !== undefined && { deviceOf: (id: string) => backend.cudaOrdinal!(id) }),
  });
  // Publishing keeps the VM's node files true both ways (src/vm): the bridge's new lines go as
  // appends, the VM's own lines are read back, kept and acted on. The mirror of who wrote what
  // is kept in the state directory, so a restart neither repeats nor forgets a VM line.
  const mirrorPath = join(options.stateDir, "vm-mirror.json");
  const stored = options.publish && !tuning.noJournal ? loadMirror(mirrorPath) : null;
  const vm: VmSync | null = !options.publish ? null : new VmSync({
    ...(stored !== null && { mirror: stored }),
    log: log.child("vm"),
    readbackMs: options.readbackMs,
    onVmLines: (gpuId, file, lines) => applyVmLines(host, log.child("vm"), gpuId, file, lines),
    onVmHistory: (gpuId, file, lines) => applyVmHistory(host, log.child("vm"), gpuId, file, lines),
    pinned: (gpuId, file, text) => file === "lease" && host.isLiveActiveLine(gpuId, text),
    requestPublish: () => publisher?.notifyChange(),
    ...(!tuning.noJournal && { onMirrorChange: () => saveMirror(mirrorPath, vm!.mirror) }),
  });
  const sink = (gpuId: string, file: "ctl" | "lease" | "status", text: string) => {
    vm!.mirror.own(gpuId, file, text);
    publisher?.notifyWork(); // an append needs no debounce: it goes at once
  };
  // Restored leases' lines are in a stored mirror already; without one they must reach the VM.
  if (vm !== null && stored === null) host.onLogLine = sink;
  host.restore();
  if (vm !== null) host.onLogLine = sink;
  const namespace = async () => {
    gpus = await backend.list();
    return buildNamespace(gpus, catalog(), (id) => vm?.nodeLogs(id) ?? host.nodeLogs(id));
  };
  const snapshot = async () => makeSnapshot(await namespace());
  /** The publisher's snapshot: compacted where due, and recorded so its landing can be committed. */
  const publishSnapshot = async () => {
    gpus = await backend.list();
    vm?.prepare(gpus.map((g) => g.id));
    const ns = buildNamespace(gpus, catalog(), (id) => vm?.nodeLogs(id) ?? host.nodeLogs(id));
    const snap = makeSnapshot(ns);
    vm?.built(ns, snap);
    return snap;
  };
  const deviceId = options.deviceId ?? (hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64) || "host");
  const spool = Spool.open({ dir: join(options.stateDir, "telemetry"), log: log.child("telemetry"), capBytes: options.spoolMaxBytes });
  const forwarder = options.publish
    ? new TelemetryForwarder({ spool, deviceId, log: log.child("telemetry"), queenSegmentBytes: options.queenSegmentBytes })
    : null;
  if (options.publish) {
    publisher = new Publisher({
      connect: runtime.connect,
      target: { host: options.tcpHost, port: options.tcpPort, token: options.authToken, ticket: options.ticket },
      snapshot: publishSnapshot,
      log: log.child("publish"),
      intervalMs: options.intervalMs ?? 30_000,
      ackTimeoutMs: options.ackTimeoutMs,
      window: options.window,
      ...(tuning.refreshMs !== undefined && { refreshMs: tuning.refreshMs }),
      ...(tuning.pingIdleMs !== undefined && { pingIdleMs: tuning.pingIdleMs }),
      ...(tuning.backoff !== undefined && { backoff: tuning.backoff }),
      sidecar: bothSidecars(vm!, forwarder),
      vm: vm!,
    });
    void publisher.start();
  }
  log.info(`serving ${gpus.length} GPUs from the ${backend.name} backend; jobs run on the ${runnerKind} runner`);
  const models: ApiModels = {
    catalog,
    ...(registry !== null && {
      setActive: (modelId: string) => {
        // Atomic for every reader: a complete file replaces the old one in one rename.
        const tmp = join(options.registry!, `.active.tmp-${process.pid}`);
        writeFileSync(tmp, modelId + "\n");
        renameSync(tmp, join(options.registry!, "active"));
        registry.reload();
        log.info(`active model set to ${modelId} through the API`);
      },
    }),
  };
  return {
    publisher,
    host,
    backend,
    models,
    telemetry: { spool, forwarder, deviceId, spooled: () => publisher?.notifyWork() },
    vm,
    gpus: () => gpus,
    namespace,
    snapshot,
    async stop() {
      registry?.close();
      await publisher?.stop();
      host.close();
      spool.close();
    },
  };
}

/** Runs the daemon (and its API, unless --no-api) until SIGINT or SIGTERM; resolves with exit status 0. */
export async function runDaemon(
  options: BridgeOptions,
  deps: { readonly runtime: Runtime; readonly log: Logger; readonly backend: InventoryBackend },
  mode: "serve" | "compat",
  // Handlers first (the caller installs them before loading this module): a signal that lands
  // while the daemon is still starting must still end in a clean exit 0, not death by signal.
  signal: Promise<string> = stopSignal(),
): Promise<number> {
  const daemon = await startDaemon(options, deps);
  let api: { close(): Promise<void> } | null = null;
  if (options.listen !== null) {
    try {
      api = await startApi(options, daemon, deps);
    } catch (error) {
      const why = `Cannot serve the API on ${options.listen.host}:${options.listen.port}: ${(error as Error).message}`;
      if (mode === "serve") {
        await daemon.stop();
        throw new Error(`${why}; pick another with --listen HOST:PORT, or --no-api`);
      }
      deps.log.warn(`${why}; publishing carries on without it`);
    }
  }
  deps.log.info(`${await signal}: stopping`);
  // Belt and braces: the stop below abandons in-flight work at once, but never outlive 2 s.
  const force = setTimeout(() => process.exit(0), 1900);
  await api?.close();
  await daemon.stop();
  clearTimeout(force);
  deps.log.info("stopped");
  return 0;
}

/** Serves the API for `daemon`; logs where, and where the token is (never the token). */
export async function startApi(
  options: BridgeOptions,
  daemon: Daemon,
  deps: { readonly runtime: Runtime; readonly log: Logger },
): Promise<{ port: number; token: string; close(): Promise<void> }> {
  const [{ createApp }, { resolveApiToken }, { telemetryRoutes }] = await Promise.all([
    import("../api/app.ts"),
    import("../api/auth.ts"),
    import("../telemetry/api.ts"),
  ]);
  const { token, source } = resolveApiToken(options.apiToken, process.env, options.stateDir);
  const log = deps.log.child("api");
  const app = createApp({
    version: VERSION,
    hostname: hostname(),
    token,
    log,
    gpus: daemon.gpus,
    stats: cachedStats(() => daemon.backend.stats()),
    host: daemon.host,
    namespace: daemon.namespace,
    snapshot: daemon.snapshot,
    publisher: daemon.publisher,
    ...(options.publish && { console: { host: options.tcpHost, port: options.tcpPort } }),
    models: daemon.models,
    extensions: [telemetryRoutes({ ...daemon.telemetry, catalog: daemon.models.catalog })],
    telemetryMetrics: () => {
      const s = daemon.telemetry.spool.stats();
      return { spooledRecords: s.records, spooledBytes: s.bytes, forwarded: daemon.telemetry.forwarder?.forwarded ?? 0, dropped: daemon.telemetry.spool.dropped };
    },
  });
  const listen = options.listen!;
  const server = await deps.runtime.serve(listen.host, listen.port, app.fetch);
  const where = source.kind === "file" ? `token in ${source.path}${source.created ? " (new)" : ""}` : `token from ${source.kind === "flag" ? "--api-token" : "GPU_BRIDGE_API_TOKEN"}`;
  const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  log.info(`listening on http://${host}:${server.port} (${where})`);
  return { port: server.port, token, close: () => server.close() };
}
