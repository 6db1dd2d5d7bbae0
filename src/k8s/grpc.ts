/**
 * The kubelet's gRPC services, loaded from the vendored .proto text (src/k8s/proto, embedded so
 * the compiled binary needs no loose files). The only module that names @grpc/grpc-js's loaders:
 * the plugin, the PodResources client and the test's stub kubelet all take their service
 * definitions from here.
 */
import * as grpc from "@grpc/grpc-js";
import { fromJSON, type Options } from "@grpc/proto-loader";
import protobuf from "protobufjs";
import { DEVICE_PLUGIN_PROTO, POD_RESOURCES_PROTO } from "./proto/embedded.ts";

export { grpc };

/** Field names as the .proto spells them (`devices_ids`, `cdi_devices`), every field present. */
const LOAD: Options = { keepCase: true, defaults: true, arrays: true, objects: true, longs: Number, enums: String, oneofs: true };

type Ctor = grpc.ServiceClientConstructor;

/** The `v1beta1` services: Registration (the kubelet's) and DevicePlugin (ours). */
export interface DevicePluginApi {
  readonly Registration: Ctor;
  readonly DevicePlugin: Ctor;
}

/** The `v1` PodResourcesLister service (the kubelet's). */
export interface PodResourcesApi {
  readonly PodResourcesLister: Ctor;
}

function load(text: string, pkg: string): Record<string, Ctor> {
  const root = protobuf.parse(text, { keepCase: true }).root;
  const loaded = grpc.loadPackageDefinition(fromJSON(root.toJSON(), LOAD));
  return loaded[pkg] as unknown as Record<string, Ctor>;
}

let cache: { plugin: DevicePluginApi; pods: PodResourcesApi } | null = null;

/** Both APIs, parsed once. */
export function kubeletApis(): { plugin: DevicePluginApi; pods: PodResourcesApi } {
  if (cache === null) {
    const v1beta1 = load(DEVICE_PLUGIN_PROTO, "v1beta1");
    const v1 = load(POD_RESOURCES_PROTO, "v1");
    cache = {
      plugin: { Registration: v1beta1.Registration!, DevicePlugin: v1beta1.DevicePlugin! },
      pods: { PodResourcesLister: v1.PodResourcesLister! },
    };
  }
  return cache;
}

/** A gRPC address for a Unix socket path. */
export const unixAddress = (path: string): string => `unix://${path}`;

/** Calls a unary method of a grpc-js client as a promise, with a deadline. */
export function unary<T>(client: grpc.Client, method: string, request: unknown, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (...a: unknown[]) => void>)[method]!;
    fn.call(client, request, { deadline: Date.now() + timeoutMs }, (error: grpc.ServiceError | null, reply: T) => {
      if (error) reject(error);
      else resolve(reply);
    });
  });
}
