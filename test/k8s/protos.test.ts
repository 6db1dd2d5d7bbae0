/** The embedded proto text is the vendored files' text, and both services load from it. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { kubeletApis } from "../../src/k8s/grpc.ts";
import { DEVICE_PLUGIN_PROTO, POD_RESOURCES_PROTO } from "../../src/k8s/proto/embedded.ts";
import { REPO } from "../helpers.ts";

const dir = join(REPO, "src", "k8s", "proto");

test("embedded.ts holds the .proto files verbatim (bun scripts/embed-protos.ts rewrites it)", () => {
  expect(DEVICE_PLUGIN_PROTO).toBe(readFileSync(join(dir, "deviceplugin-v1beta1.proto"), "utf8"));
  expect(POD_RESOURCES_PROTO).toBe(readFileSync(join(dir, "podresources-v1.proto"), "utf8"));
});

test("the services have the kubelet's methods, with ListAndWatch a server stream", () => {
  const { plugin, pods } = kubeletApis();
  expect(Object.keys(plugin.Registration.service)).toEqual(["Register"]);
  const dp = plugin.DevicePlugin.service;
  expect(Object.keys(dp)).toEqual(["GetDevicePluginOptions", "ListAndWatch", "GetPreferredAllocation", "Allocate", "PreStartContainer"]);
  expect(dp.ListAndWatch!.responseStream).toBe(true);
  expect(dp.ListAndWatch!.path).toBe("/v1beta1.DevicePlugin/ListAndWatch");
  expect(Object.keys(pods.PodResourcesLister.service)).toEqual(["List", "GetAllocatableResources", "Get"]);
});
