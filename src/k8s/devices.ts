/**
 * What the device plugin advertises, and the hints it gives: pure functions over the bridge's
 * GPUs. A device id is the GPU's UUID, or `<UUID>::<k>` for the k-th of N shares of it
 * (`--k8s-share N`); a lease's worker id names its first device in the safe-id charset.
 */

/** The kubelet's limit on a device id (deviceplugin/v1beta1 api.proto). */
export const MAX_DEVICE_ID = 63;
export const HEALTHY = "Healthy";
export const UNHEALTHY = "Unhealthy";

/** A bridge GPU as the plugin sees it. */
export interface PluginGpu {
  /** The bridge's id (`GPU-0`), what leases name. */
  readonly gpuId: string;
  /** The stable id the kubelet and DCGM know it by (NVML's UUID; the bridge id where none). */
  readonly uuid: string;
  readonly memoryMb: number;
  /** The NUMA node, or null where the host does not say. */
  readonly numa: number | null;
  readonly healthy: boolean;
}

/** One advertised device. */
export interface PluginDevice {
  readonly id: string;
  readonly gpuId: string;
  readonly health: typeof HEALTHY | typeof UNHEALTHY;
  readonly numa: number | null;
}

/** The device ids of one GPU: its UUID, or its N shares. */
export function deviceIdsOf(uuid: string, share: number): string[] {
  if (share <= 1) return [uuid];
  return Array.from({ length: share }, (_, k) => `${uuid}::${k}`);
}

/** Every GPU's devices, in the GPUs' order. */
export function advertised(gpus: readonly PluginGpu[], share: number): PluginDevice[] {
  return gpus.flatMap((g) =>
    deviceIdsOf(g.uuid, share).map((id) => ({ id, gpuId: g.gpuId, health: g.healthy ? HEALTHY : UNHEALTHY, numa: g.numa }))
  );
}

/** A device in the kubelet's wire shape. */
export function wireDevice(d: PluginDevice): { ID: string; health: string; topology?: { nodes: { ID: number }[] } } {
  return { ID: d.id, health: d.health, ...(d.numa !== null && { topology: { nodes: [{ ID: d.numa }] } }) };
}

/** A problem with a GPU's identity as a device id (too long, or a character the kubelet or a lease cannot carry); null if fine. */
export function uuidProblem(uuid: string, share: number): string | null {
  const longest = deviceIdsOf(uuid, share).at(-1)!;
  if (longest.length > MAX_DEVICE_ID) return `device id ${JSON.stringify(longest)} is longer than ${MAX_DEVICE_ID} characters`;
  if (!/^[A-Za-z0-9-]+$/.test(uuid)) return `GPU id ${JSON.stringify(uuid)} has characters other than A-Z a-z 0-9 -`;
  return null;
}

const WORKER_PREFIX = "k8s.";

/**
 * The lease's worker id for an allocation whose first device is `deviceId`: `k8s.<UUID>` or
 * `k8s.<UUID>.<k>`. (`k8s/<id>` and `::` are outside the worker-id charset, A-Z a-z 0-9 . _ -,
 * which the VM's control lines depend on.)
 */
export function workerIdOf(deviceId: string): string {
  return WORKER_PREFIX + deviceId.replace("::", ".");
}

/** The device a k8s worker id names, or null when `workerId` is not one of ours. */
export function deviceIdOfWorker(workerId: string): string | null {
  const m = /^k8s\.([A-Za-z0-9-]+)(?:\.(\d+))?$/.exec(workerId);
  if (m === null) return null;
  return m[2] === undefined ? m[1]! : `${m[1]}::${m[2]}`;
}

/** One container's request for a hint (GetPreferredAllocation). */
export interface PreferenceRequest {
  readonly available: readonly string[];
  readonly mustInclude: readonly string[];
  readonly size: number;
}

/**
 * The preferred devices for one container: every `mustInclude` first, then the rest of `size`
 * from `available`, keeping to the GPUs already chosen (shares of one GPU make one lease), then
 * to their NUMA node; with nothing chosen yet, the NUMA node and then the GPU with the most
 * available devices. Devices it does not know keep their place last.
 */
export function preferredAllocation(req: PreferenceRequest, devices: readonly PluginDevice[]): string[] {
  const byId = new Map(devices.map((d) => [d.id, d]));
  const chosen = [...new Set(req.mustInclude)];
  const taken = new Set(chosen);
  const pool = req.available.filter((id) => !taken.has(id));
  const countBy = (key: (d: PluginDevice) => string) => {
    const counts = new Map<string, number>();
    for (const id of pool) {
      const d = byId.get(id);
      if (d !== undefined) counts.set(key(d), (counts.get(key(d)) ?? 0) + 1);
    }
    return counts;
  };
  const perGpu = countBy((d) => d.gpuId);
  const perNuma = countBy((d) => String(d.numa));
  while (chosen.length < req.size && pool.length > 0) {
    const gpus = new Set(chosen.map((id) => byId.get(id)?.gpuId));
    const numas = new Set(chosen.map((id) => String(byId.get(id)?.numa)));
    let best = 0;
    let bestKey: number[] | null = null;
    for (const [i, id] of pool.entries()) {
      const d = byId.get(id);
      const key = d === undefined ? [2, 2, 0, 0, i] : [
        gpus.has(d.gpuId) ? 0 : 1,
        numas.has(String(d.numa)) ? 0 : 1,
        -(perNuma.get(String(d.numa)) ?? 0),
        -(perGpu.get(d.gpuId) ?? 0),
        i,
      ];
      if (bestKey === null || less(key, bestKey)) [best, bestKey] = [i, key];
    }
    chosen.push(pool.splice(best, 1)[0]!);
  }
  return chosen;
}

function less(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}
