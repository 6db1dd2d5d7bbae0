/**
 * `cdi generate` for discrete GPUs, after nvidia-ctk's conventions: devices by index, by UUID
 * and `all`; MIG devices as `<gpu>:<mig>` and `MIG-<uuid>` (a GPU in MIG mode gets no whole-GPU
 * device); global edits with the control nodes, the driver's libraries, firmware, tools and
 * sockets, `NVIDIA_VISIBLE_DEVICES=void`, and the hooks whose binary exists; the minimum
 * `cdiVersion` the result needs.
 */
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import {
  controlNodes,
  deviceNode,
  driverLibraries,
  driverSockets,
  driverTools,
  drmNodes,
  fileMount,
  gspFirmware,
  migMinors,
  type Roots,
  SOCKET_OPTIONS,
} from "./discover.ts";
import type { CdiContainerEdits, CdiDevice, CdiDeviceNode, CdiHook, CdiSpec } from "./schema.ts";
import { minimumVersion } from "./version.ts";

/** One MIG device of a GPU. */
export interface HostMig {
  readonly uuid: string;
  readonly gi: number;
  readonly ci: number;
}

/** One GPU as the backend reports it. */
export interface HostGpu {
  readonly index: number;
  readonly uuid: string;
  /** NVML's minor number: `/dev/nvidia<minor>`. */
  readonly minor: number;
  /** `0000:17:00.0` (sysfs form), or null when unknown. */
  readonly pciBusId: string | null;
  /** The MIG devices of a GPU in MIG mode; null when MIG is off or unsupported. */
  readonly mig: readonly HostMig[] | null;
}

export interface GenerateOptions extends Roots {
  readonly kind: string;
  readonly driverVersion: string;
  /** The host path of nvidia-cdi-hook; hooks are emitted only when it exists. */
  readonly hookPath: string;
}

export interface Generated {
  readonly spec: CdiSpec;
  /** What was left out and why (a missing device node, a missing MIG capability). */
  readonly warnings: string[];
  /** The MIG devices the spec holds, each with its GPU's index (leases may name them). */
  readonly migs?: readonly { readonly uuid: string; readonly gpu: number }[];
}

/** Edits of one whole GPU: its `/dev/nvidia<minor>` and DRM nodes; null when its node is absent. */
export function gpuEdits(o: Roots, gpu: HostGpu, warnings: string[]): CdiContainerEdits | null {
  const node = deviceNode(o, `/dev/nvidia${gpu.minor}`);
  if (node === null) {
    warnings.push(`GPU ${gpu.index} (${gpu.uuid}) left out: no device node /dev/nvidia${gpu.minor} under ${o.devRoot}`);
    return null;
  }
  return { deviceNodes: [node, ...drmNodes(o, gpu.pciBusId)] };
}

function migEdits(o: Roots, gpu: HostGpu, mig: HostMig, minors: Map<string, number>, warnings: string[]): CdiContainerEdits | null {
  const parent = deviceNode(o, `/dev/nvidia${gpu.minor}`);
  const caps: CdiDeviceNode[] = [];
  for (const key of [`gpu${gpu.minor}/gi${mig.gi}/access`, `gpu${gpu.minor}/gi${mig.gi}/ci${mig.ci}/access`]) {
    const minor = minors.get(key);
    const node = minor === undefined ? null : deviceNode(o, `/dev/nvidia-caps/nvidia-cap${minor}`);
    if (node === null) {
      warnings.push(
        `MIG device ${mig.uuid} left out: ${
          minor === undefined ? `no ${key} in /proc/driver/nvidia-caps/mig-minors` : `no /dev/nvidia-caps/nvidia-cap${minor}`
        }`,
      );
      return null;
    }
    caps.push(node);
  }
  if (parent === null) return null;
  return { deviceNodes: [parent, ...caps] };
}

/** Every device's nodes, deduplicated by path, in first-seen order. */
export function unionEdits(list: readonly CdiContainerEdits[]): CdiContainerEdits {
  const byPath = new Map<string, CdiDeviceNode>();
  for (const e of list) for (const n of e.deviceNodes ?? []) if (!byPath.has(n.path)) byPath.set(n.path, n);
  return { deviceNodes: [...byPath.values()] };
}

/** A `nvidia-cdi-hook` call. */
export const cdiHook = (hookPath: string, ...args: string[]): CdiHook => ({
  hookName: "createContainer",
  path: hookPath,
  args: ["nvidia-cdi-hook", ...args],
});

/** The hooks, in nvidia-ctk's order, or none when the hook binary is absent. */
export function driverHooks(
  o: { hookPath: string; driverVersion: string | null },
  links: readonly string[],
  libFolders: readonly string[],
): CdiHook[] {
  if (!existsSync(o.hookPath)) return [];
  const hooks: CdiHook[] = [];
  if (links.length > 0) hooks.push(cdiHook(o.hookPath, "create-symlinks", ...links.flatMap((l) => ["--link", l])));
  if (o.driverVersion !== null) hooks.push(cdiHook(o.hookPath, "enable-cuda-compat", `--host-driver-version=${o.driverVersion}`));
  if (libFolders.length > 0) hooks.push(cdiHook(o.hookPath, "update-ldcache", ...libFolders.flatMap((d) => ["--folder", d])));
  hooks.push(cdiHook(o.hookPath, "disable-device-node-modification"));
  return hooks;
}

/** The edits every device of the spec shares. */
export function globalEdits(o: GenerateOptions): CdiContainerEdits {
  const libs = driverLibraries(o, o.driverVersion);
  const files = [...libs, ...gspFirmware(o, o.driverVersion), ...driverTools(o)];
  const mounts = [...files.map((p) => fileMount(o, p)), ...driverSockets(o).map((p) => fileMount(o, p, SOCKET_OPTIONS))];
  const folders = [...new Set(libs.map((p) => dirname(p)))];
  const libcuda = libs.find((p) => p.endsWith(`/libcuda.so.${o.driverVersion}`));
  const links = libcuda === undefined ? [] : [`libcuda.so.1::${dirname(libcuda)}/libcuda.so`];
  const hooks = driverHooks(o, links, folders);
  const nodes = controlNodes(o);
  return {
    env: ["NVIDIA_VISIBLE_DEVICES=void"],
    ...(nodes.length > 0 && { deviceNodes: nodes }),
    ...(hooks.length > 0 && { hooks }),
    ...(mounts.length > 0 && { mounts }),
  };
}

/** The spec for discrete GPUs; throws when not one GPU has a device node. */
export function generateDiscrete(gpus: readonly HostGpu[], o: GenerateOptions): Generated {
  const warnings: string[] = [];
  const devices: CdiDevice[] = [];
  const minors = migMinors(o);
  const migs: { uuid: string; gpu: number }[] = [];
  for (const gpu of gpus) {
    if (gpu.mig !== null) {
      gpu.mig.forEach((mig, m) => {
        const edits = migEdits(o, gpu, mig, minors, warnings);
        if (edits === null) return;
        migs.push({ uuid: mig.uuid, gpu: gpu.index });
        devices.push({ name: `${gpu.index}:${m}`, containerEdits: edits }, { name: mig.uuid, containerEdits: edits });
      });
      continue;
    }
    const edits = gpuEdits(o, gpu, warnings);
    if (edits !== null) devices.push({ name: String(gpu.index), containerEdits: edits }, { name: gpu.uuid, containerEdits: edits });
  }
  if (devices.length === 0) {
    throw new Error(
      `Cannot generate a CDI spec: no GPU has a device node under ${o.devRoot}${warnings.length ? ` (${warnings.join("; ")})` : ""}`,
    );
  }
  // Each device once in `all`: the index and UUID entries share one edits object.
  const distinct = [...new Set(devices.map((d) => d.containerEdits))];
  devices.push({ name: "all", containerEdits: unionEdits(distinct) });
  return { spec: finish(o.kind, devices, globalEdits(o)), warnings, migs };
}

/** Orders a spec's fields as nvidia-ctk writes them and sets the minimum version it needs. */
export function finish(kind: string, devices: CdiDevice[], containerEdits: CdiContainerEdits): CdiSpec {
  const draft: CdiSpec = { cdiVersion: "0.3.0", kind, devices, containerEdits };
  // A fresh copy per device (structuredClone would keep the sharing): YAML would otherwise
  // write anchors and aliases for the shared edits, which some consumers refuse.
  return JSON.parse(JSON.stringify({ ...draft, cdiVersion: minimumVersion(draft) })) as CdiSpec;
}
