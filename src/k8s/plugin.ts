/**
 * The kubelet's device plugin, inside the daemon (`serve --kubelet-dir`): serves DevicePlugin on
 * a socket of its own under DIR/device-plugins/, registers with the kubelet there, and serves
 * and registers again when the kubelet restarts (our socket removed, or kubelet.sock made
 * anew). Allocate makes leases (allocations.ts) and answers with their CDI devices; PodResources
 * is polled to release the leases of containers that are gone.
 */
import { mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { LeaseEvent } from "../lease/types.ts";
import type { Clock } from "../util/clock.ts";
import { errorText } from "../util/error-text.ts";
import type { Logger } from "../util/log.ts";
import { AllocateError, type Allocations } from "./allocations.ts";
import { advertised, type PluginDevice, type PluginGpu, preferredAllocation, wireDevice } from "./devices.ts";
import { grpc, kubeletApis, unary, unixAddress } from "./grpc.ts";

/** The device plugin API version this plugin speaks. */
export const API_VERSION = "v1beta1";

export interface DevicePluginOptions {
  readonly kubeletDir: string;
  readonly resource: string;
  readonly share: number;
  readonly clock: Clock;
  readonly log: Logger;
  readonly allocations: Allocations;
  readonly leases: { on(listener: (e: LeaseEvent) => void): () => void; release(id: string, reason: string): unknown };
  /** The GPUs now, their health applied. */
  readonly gpus: () => readonly PluginGpu[];
  /** The qualified CDI device of a live lease, once its spec is on disk; null if none. */
  readonly cdiDevice: (leaseId: string) => string | null;
  /** Runs one Allocate's grants so that the CDI spec is written once for all of them (CdiKeeper.batch). */
  readonly batch?: <T>(fn: () => T) => T;
  /** PodResources polling period (`--k8s-poll-ms`). */
  readonly pollMs: number;
  /** How often the sockets and the device list are checked (default 500 ms). */
  readonly watchMs?: number;
  /** The most a call to the kubelet may take (default 5000 ms). */
  readonly callTimeoutMs?: number;
}

const GRPC_CODE = {
  unknown: grpc.status.NOT_FOUND,
  unhealthy: grpc.status.FAILED_PRECONDITION,
  taken: grpc.status.FAILED_PRECONDITION,
  invalid: grpc.status.INVALID_ARGUMENT,
  refused: grpc.status.RESOURCE_EXHAUSTED,
} as const;

/** The plugin's socket file name for a resource (`cohesix.io/gpu` -> `gpu-bridge-host-cohesix.io-gpu.sock`). */
export function socketName(resource: string): string {
  return `gpu-bridge-host-${resource.replace(/[^A-Za-z0-9._-]/g, "-")}.sock`;
}

/** A file's identity (inode and change time), or null when it is not there. */
function identity(path: string): string | null {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.ctimeMs}`;
  } catch {
    return null;
  }
}

type Writable = grpc.ServerWritableStream<unknown, unknown>;

export class DevicePluginServer {
  readonly #o: DevicePluginOptions;
  readonly #dir: string;
  readonly socketPath: string;
  #server: grpc.Server | null = null;
  #socketId: string | null = null;
  /** kubelet.sock's identity when we last registered (or were refused). */
  #registeredWith: string | null = null;
  #refused = false;
  readonly #streams = new Set<Writable>();
  #sent = "";
  #watchTimer: unknown = null;
  #pollTimer: unknown = null;
  #stopped = false;
  #busy: Promise<void> | null = null;
  #pods: grpc.Client | null = null;
  #podsFailing = false;
  #lastProblem: string | null = null;
  #unsubscribe: (() => void) | null = null;
  /** Counts for tests and metrics. */
  readonly stats = { registrations: 0, allocations: 0, allocateErrors: 0, released: 0, rebuilt: 0 };

  constructor(o: DevicePluginOptions) {
    this.#o = o;
    this.#dir = join(o.kubeletDir, "device-plugins");
    this.socketPath = join(this.#dir, socketName(o.resource));
  }

  /** Whether the kubelet took our last registration. */
  get registered(): boolean {
    return this.#registeredWith !== null && !this.#refused;
  }

  /** The devices as advertised now. */
  devices(): PluginDevice[] {
    return advertised(this.#o.gpus(), this.#o.share);
  }

  /** Serves, registers (or keeps trying), and starts the watch and the PodResources poll. */
  async start(): Promise<void> {
    this.#unsubscribe = this.#o.leases.on((e) => e.type === "released" && this.#o.allocations.forget(e.lease.id));
    const adopted = this.#o.allocations.adoptLive();
    if (adopted > 0) this.#o.log.info(`${adopted} k8s leases from before the restart kept until PodResources says who holds them`);
    await this.#tick();
    await this.#poll();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#o.clock.clearTimer(this.#watchTimer);
    this.#o.clock.clearTimer(this.#pollTimer);
    await this.#busy;
    this.#closeServer();
    this.#pods?.close();
  }

  /** Sends the device list to every ListAndWatch stream if it changed (or `force`). */
  notify(force = false): void {
    const list = { devices: this.devices().map(wireDevice) };
    const text = JSON.stringify(list);
    if (!force && text === this.#sent) return;
    this.#sent = text;
    for (const s of this.#streams) s.write(list);
  }

  /** One round of the watch: the socket, kubelet.sock, the device list; then the next round. */
  #tick(): Promise<void> {
    const run = async () => {
      try {
        await this.#check();
        this.#lastProblem = null;
      } catch (error) {
        // Said once while it lasts, not every round (a folder the bridge may not write, say).
        const text = `device plugin: ${errorText(error)}`;
        if (text !== this.#lastProblem) this.#o.log.warn(text);
        this.#lastProblem = text;
      }
      this.notify();
      if (!this.#stopped) this.#watchTimer = this.#o.clock.setTimer(this.#o.watchMs ?? 500, () => void this.#tick());
    };
    return this.#busy = run();
  }

  async #check(): Promise<void> {
    if (this.#stopped) return;
    if (this.#server === null || identity(this.socketPath) !== this.#socketId) {
      if (this.#server !== null) this.#o.log.warn(`device plugin: ${this.socketPath} was removed (the kubelet restarted?); serving again`);
      await this.#serve();
      this.#registeredWith = null;
      this.#refused = false;
    }
    const kubelet = identity(join(this.#dir, "kubelet.sock"));
    if (kubelet === null || kubelet === this.#registeredWith) return;
    await this.#register(kubelet);
  }

  async #serve(): Promise<void> {
    this.#closeServer();
    mkdirSync(this.#dir, { recursive: true });
    rmSync(this.socketPath, { force: true });
    const server = new grpc.Server();
    server.addService(kubeletApis().plugin.DevicePlugin.service, this.#handlers());
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(unixAddress(this.socketPath), grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve()))
    );
    this.#server = server;
    this.#socketId = identity(this.socketPath);
  }

  #closeServer(): void {
    for (const s of this.#streams) s.end();
    this.#streams.clear();
    this.#server?.forceShutdown();
    this.#server = null;
  }

  async #register(kubelet: string): Promise<void> {
    const { Registration } = kubeletApis().plugin;
    const client = new Registration(unixAddress(join(this.#dir, "kubelet.sock")), grpc.credentials.createInsecure());
    try {
      await unary(client, "Register", {
        version: API_VERSION,
        endpoint: socketName(this.#o.resource),
        resource_name: this.#o.resource,
        options: { pre_start_required: false, get_preferred_allocation_available: true },
      }, this.#o.callTimeoutMs ?? 5000);
      this.#registeredWith = kubelet;
      this.#refused = false;
      this.stats.registrations++;
      this.#o.log.info(`device plugin: registered ${this.#o.resource} (${this.devices().length} devices) with the kubelet`);
    } catch (error) {
      const e = error as grpc.ServiceError;
      if (e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED) {
        this.#o.log.debug(`device plugin: the kubelet does not answer yet: ${e.details ?? e.message}`);
        return; // tried again at the next round
      }
      // A refusal (version, a resource name taken) stands until the kubelet is started anew.
      this.#registeredWith = kubelet;
      this.#refused = true;
      this.#o.log.error(`device plugin: the kubelet refused to register ${this.#o.resource}: ${e.details ?? e.message}`);
    } finally {
      client.close();
    }
  }

  // deno-lint-ignore no-explicit-any
  #handlers(): Record<string, (call: any, callback?: any) => void> {
    return {
      GetDevicePluginOptions: (_call: unknown, cb: grpc.sendUnaryData<unknown>) =>
        cb(null, { pre_start_required: false, get_preferred_allocation_available: true }),
      ListAndWatch: (call: Writable) => {
        this.#streams.add(call);
        const drop = () => this.#streams.delete(call);
        call.on("cancelled", drop);
        call.on("close", drop);
        call.on("error", drop);
        call.write({ devices: this.devices().map(wireDevice) });
      },
      GetPreferredAllocation: (
        call: grpc.ServerUnaryCall<{ container_requests: PreferenceWire[] }, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => {
        const devices = this.devices();
        cb(null, {
          container_responses: call.request.container_requests.map((r) => ({
            deviceIDs: preferredAllocation(
              { available: r.available_deviceIDs, mustInclude: r.must_include_deviceIDs, size: r.allocation_size },
              devices,
            ),
          })),
        });
      },
      Allocate: (
        call: grpc.ServerUnaryCall<{ container_requests: { devices_ids: string[] }[] }, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) =>
        void this.#allocate(call.request.container_requests.map((r) => r.devices_ids)).then(
          (reply) => cb(null, reply),
          (error) => {
            this.stats.allocateErrors++;
            const code = error instanceof AllocateError ? GRPC_CODE[error.code] : grpc.status.INTERNAL;
            this.#o.log.warn(`device plugin: Allocate refused: ${errorText(error)}`);
            cb({ code, details: (error as Error).message });
            this.notify(true); // a failed Allocate is followed by a fresh list
          },
        ),
      PreStartContainer: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
    };
  }

  async #allocate(requests: string[][]): Promise<unknown> {
    const a = this.#o.allocations;
    const wanted = requests.flat();
    if (wanted.some((id) => a.holder(id) !== undefined)) {
      // The kubelet gives a device out again as soon as its pod is gone: ask it who holds what now.
      const held = await this.#held();
      if (held !== null) this.stats.released += a.releaseUnheld(held, wanted).length;
    }
    if (this.#stopped) throw new AllocateError("refused", "Cannot allocate: the bridge is stopping");
    const devices = this.devices();
    const grants = this.#o.batch?.(() => a.allocate(requests, devices)) ?? a.allocate(requests, devices);
    const made = grants.flatMap((g) => g.leases);
    const names = made.map((l) => this.#o.cdiDevice(l.id));
    const missing = made.filter((_, i) => names[i] === null);
    if (missing.length > 0) {
      for (const l of made) {
        a.forget(l.id);
        this.#o.leases.release(l.id, "k8s-allocate-failed");
      }
      throw new AllocateError(
        "refused",
        `Cannot allocate ${wanted.join(", ")}: no CDI device for lease ${missing[0]!.id} (is the CDI spec written?)`,
      );
    }
    this.stats.allocations++;
    this.#o.log.info(`device plugin: allocated ${wanted.join(", ")} as ${made.map((l) => `${l.id} on ${l.gpu_id}`).join(", ")}`);
    let next = 0;
    return {
      container_responses: grants.map((g) => ({
        envs: {},
        annotations: {},
        mounts: [],
        devices: [],
        cdi_devices: g.leases.map(() => ({ name: names[next++]! })),
      })),
    };
  }

  /** Our devices that pods hold now, one list per container; null when PodResources does not answer. */
  async #held(): Promise<string[][] | null> {
    const { PodResourcesLister } = kubeletApis().pods;
    this.#pods ??= new PodResourcesLister(
      unixAddress(join(this.#o.kubeletDir, "pod-resources", "kubelet.sock")),
      grpc.credentials.createInsecure(),
    );
    try {
      const reply = await unary<PodList>(this.#pods, "List", {}, this.#o.callTimeoutMs ?? 5000);
      if (this.#podsFailing) this.#o.log.info("device plugin: PodResources answers again");
      this.#podsFailing = false;
      return reply.pod_resources.flatMap((p) =>
        p.containers.map((c) => c.devices.filter((d) => d.resource_name === this.#o.resource).flatMap((d) => d.device_ids))
      ).filter((ids) => ids.length > 0);
    } catch (error) {
      // Nothing is released on a silence: only a list that lacks a device releases it.
      if (!this.#podsFailing) {
        this.#o.log.warn(`device plugin: Cannot list PodResources (no lease is released meanwhile): ${errorText(error)}`);
      }
      this.#podsFailing = true;
      return null;
    }
  }

  async #poll(): Promise<void> {
    if (this.#stopped) return;
    try {
      const held = await this.#held();
      if (held !== null && !this.#stopped) {
        const { released, rebuilt } = this.#o.allocations.reconcile(held, this.devices());
        this.stats.released += released.length;
        this.stats.rebuilt += rebuilt.length;
        if (released.length > 0) this.#o.log.info(`device plugin: released ${released.join(", ")}: no pod holds their devices`);
        if (rebuilt.length > 0) this.#o.log.info(`device plugin: leases ${rebuilt.join(", ")} rebuilt for devices pods still hold`);
      }
    } catch (error) {
      this.#o.log.warn(`device plugin: PodResources poll: ${errorText(error)}`);
    }
    if (!this.#stopped) this.#pollTimer = this.#o.clock.setTimer(this.#o.pollMs, () => void this.#poll());
  }
}

interface PreferenceWire {
  available_deviceIDs: string[];
  must_include_deviceIDs: string[];
  allocation_size: number;
}

interface PodList {
  pod_resources: { containers: { devices: { resource_name: string; device_ids: string[] }[] }[] }[];
}
