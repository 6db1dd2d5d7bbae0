/**
 * A stub kubelet for tests, over the vendored .proto files: the Registration server on
 * DIR/device-plugins/kubelet.sock (checks the version and the resource name as the kubelet does,
 * and dials the plugin's endpoint back), the PodResources server on DIR/pod-resources/kubelet.sock
 * (serving whatever pods the test sets), and a DevicePlugin client. `restart()` does what a
 * kubelet restart does to the folder: every socket in it removed, kubelet.sock made anew.
 */
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { grpc, kubeletApis, unary, unixAddress } from "../../src/k8s/grpc.ts";

/** One pod as PodResources lists it: container name -> the resource's device ids. */
export interface StubPod {
  readonly name: string;
  readonly namespace?: string;
  readonly containers: Record<string, Record<string, readonly string[]>>;
}

export interface Registration {
  readonly version: string;
  readonly endpoint: string;
  readonly resource_name: string;
  readonly options: { pre_start_required: boolean; get_preferred_allocation_available: boolean };
}

/** A device list as ListAndWatch sends it. */
export type DeviceList = { ID: string; health: string; topology: { nodes: { ID: number }[] } | null }[];

export class StubKubelet {
  readonly dir: string;
  readonly registrations: Registration[] = [];
  pods: StubPod[] = [];
  /** Set to make PodResources fail (the kubelet down) with this status. */
  podResourcesDown = false;
  #reg: grpc.Server | null = null;
  #podsServer: grpc.Server | null = null;

  constructor(dir: string) {
    this.dir = dir;
  }

  get pluginDir(): string {
    return join(this.dir, "device-plugins");
  }

  async start(): Promise<void> {
    mkdirSync(this.pluginDir, { recursive: true });
    mkdirSync(join(this.dir, "pod-resources"), { recursive: true });
    const { plugin, pods } = kubeletApis();
    const reg = new grpc.Server();
    reg.addService(plugin.Registration.service, {
      Register: (call: grpc.ServerUnaryCall<Registration, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const r = call.request;
        // The kubelet's checks (pkg/kubelet/cm/devicemanager): the version, an extended resource name, one plugin per name.
        if (r.version !== "v1beta1") return cb({ code: grpc.status.UNKNOWN, details: `Unsupported version ${r.version}` });
        if (!/^[a-z0-9.-]+\/[A-Za-z0-9._-]+$/.test(r.resource_name)) {
          return cb({ code: grpc.status.UNKNOWN, details: `invalid resource name ${r.resource_name}` });
        }
        this.registrations.push(r);
        cb(null, {});
      },
    });
    await bind(reg, join(this.pluginDir, "kubelet.sock"));
    this.#reg = reg;
    const podsServer = new grpc.Server();
    podsServer.addService(pods.PodResourcesLister.service, {
      List: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        if (this.podResourcesDown) return cb({ code: grpc.status.UNAVAILABLE, details: "kubelet is restarting" });
        cb(null, {
          pod_resources: this.pods.map((p) => ({
            name: p.name,
            namespace: p.namespace ?? "default",
            containers: Object.entries(p.containers).map(([name, res]) => ({
              name,
              devices: Object.entries(res).map(([resource_name, device_ids]) => ({ resource_name, device_ids })),
            })),
          })),
        });
      },
      GetAllocatableResources: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
      Get: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED, details: "not in the stub" }),
    });
    await bind(podsServer, join(this.dir, "pod-resources", "kubelet.sock"));
    this.#podsServer = podsServer;
  }

  /** What a kubelet restart does: its servers go, every socket in device-plugins/ is removed, kubelet.sock comes back. */
  async restart(): Promise<void> {
    this.#reg?.forceShutdown();
    this.#podsServer?.forceShutdown();
    for (const f of readdirSync(this.pluginDir)) rmSync(join(this.pluginDir, f), { force: true });
    rmSync(join(this.dir, "pod-resources", "kubelet.sock"), { force: true });
    await this.start();
  }

  stop(): Promise<void> {
    this.#reg?.forceShutdown();
    this.#podsServer?.forceShutdown();
    return Promise.resolve();
  }

  /** A DevicePlugin client on the endpoint of the last registration. */
  plugin(endpoint = this.registrations.at(-1)?.endpoint): PluginClient {
    if (endpoint === undefined) throw new Error("Cannot dial the plugin: nothing registered");
    return new PluginClient(join(this.pluginDir, endpoint));
  }
}

/** The kubelet's side of a DevicePlugin socket. */
export class PluginClient {
  readonly #client: grpc.Client;

  constructor(socket: string) {
    this.#client = new (kubeletApis().plugin.DevicePlugin)(unixAddress(socket), grpc.credentials.createInsecure());
  }

  options(): Promise<{ pre_start_required: boolean; get_preferred_allocation_available: boolean }> {
    return unary(this.#client, "GetDevicePluginOptions", {}, 5000);
  }

  allocate(requests: readonly (readonly string[])[]): Promise<{ container_responses: AllocateReply[] }> {
    return unary(this.#client, "Allocate", { container_requests: requests.map((devices_ids) => ({ devices_ids })) }, 5000);
  }

  preferred(
    requests: { available: string[]; mustInclude?: string[]; size: number }[],
  ): Promise<{ container_responses: { deviceIDs: string[] }[] }> {
    return unary(this.#client, "GetPreferredAllocation", {
      container_requests: requests.map((r) => ({
        available_deviceIDs: r.available,
        must_include_deviceIDs: r.mustInclude ?? [],
        allocation_size: r.size,
      })),
    }, 5000);
  }

  /** Opens ListAndWatch; each list received is pushed to `lists`, and `next()` waits for the next one. */
  watch(): DeviceWatch {
    const call = (this.#client as unknown as { ListAndWatch(req: unknown): grpc.ClientReadableStream<{ devices: DeviceList }> })
      .ListAndWatch({});
    return new DeviceWatch(call);
  }

  close(): void {
    this.#client.close();
  }
}

export interface AllocateReply {
  envs: Record<string, string>;
  annotations: Record<string, string>;
  mounts: unknown[];
  devices: unknown[];
  cdi_devices: { name: string }[];
}

/** The lists a ListAndWatch stream sent, in order. */
export class DeviceWatch {
  readonly lists: DeviceList[] = [];
  ended = false;
  readonly #waiters: (() => void)[] = [];
  readonly #call: grpc.ClientReadableStream<{ devices: DeviceList }>;

  constructor(call: grpc.ClientReadableStream<{ devices: DeviceList }>) {
    this.#call = call;
    call.on("data", (m) => {
      this.lists.push(m.devices);
      for (const w of this.#waiters.splice(0)) w();
    });
    const end = () => {
      this.ended = true;
      for (const w of this.#waiters.splice(0)) w();
    };
    call.on("error", end);
    call.on("end", end);
  }

  /** Waits (up to `timeoutMs`) until a list matching `pred` has arrived; returns it. */
  async until(pred: (list: DeviceList) => boolean, timeoutMs = 5000): Promise<DeviceList> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lists.find(pred);
      if (hit !== undefined) return hit;
      if (this.ended) throw new Error(`ListAndWatch ended before a matching list; got ${JSON.stringify(this.lists)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`No matching device list in ${timeoutMs} ms; got ${JSON.stringify(this.lists)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  cancel(): void {
    this.#call.cancel();
  }
}

function bind(server: grpc.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) =>
    server.bindAsync(unixAddress(path), grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve()))
  );
}
