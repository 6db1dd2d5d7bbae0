/**
 * Applying CDI edits to an OCI `config.json`, by the reference library's rules (CDI v1.1.0):
 * env merged by key, device nodes completed by `lstat` and given cgroup rules (b and c only),
 * mounts replaced by exact destination then stable-sorted by depth, hooks appended per phase,
 * additional gids appended once. The input is never modified: a failure changes nothing.
 */
import type { HostNode } from "./devnode.ts";
import { type HookName, isHookName } from "./hook-names.ts";
import type { CdiContainerEdits, CdiDeviceNode, CdiIntelRdt, OciLinuxDevice, OciSpec } from "./schema.ts";

/** Reads a host node; null when absent. May throw for something that is not a device node. */
export type StatNode = (path: string) => HostNode | null;

/** A device (or its edits) that cannot be applied; nothing was changed. */
export class CdiApplyError extends Error {
  override name = "CdiApplyError";
}

// Plain loops in this file: `cdi apply` runs it once per container start, and the first call of
// a builtin such as Array.prototype.filter, findIndex or sort costs its compilation.

/** `from` appended to `to` (a list of ours), or to a new list. */
function append<T>(to: T[] | undefined, from: readonly T[]): T[] {
  const out = to ?? [];
  for (let i = 0; i < from.length; i++) out.push(from[i]!);
  return out;
}

/** Concatenates edits in order (lists joined; intelRdt: the last one wins). */
export function mergeEdits(list: readonly CdiContainerEdits[]): CdiContainerEdits {
  const out: { -readonly [K in keyof CdiContainerEdits]: CdiContainerEdits[K] } = {};
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    if (e.env !== undefined) out.env = append(out.env, e.env);
    if (e.deviceNodes !== undefined) out.deviceNodes = append(out.deviceNodes, e.deviceNodes);
    if (e.mounts !== undefined) out.mounts = append(out.mounts, e.mounts);
    if (e.hooks !== undefined) out.hooks = append(out.hooks, e.hooks);
    if (e.additionalGids !== undefined) out.additionalGids = append(out.additionalGids, e.additionalGids);
    if (e.intelRdt !== undefined) out.intelRdt = e.intelRdt;
    if (e.netDevices !== undefined) out.netDevices = append(out.netDevices, e.netDevices);
  }
  return out;
}

/** Go's `filepath.Clean` for slash paths: the depth sort counts `/` in the cleaned path. */
export function cleanPath(p: string): string {
  if (p === "") return ".";
  const rooted = p.startsWith("/");
  const out: string[] = [];
  const parts = p.split("/");
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(part);
  }
  const joined = out.join("/");
  return rooted ? `/${joined}` : joined || ".";
}

/**
 * The depth of each path: the number of `/` in its cleanPath(), counted in one loop (a helper
 * called per mount would be compiled on a cold start, see shape.ts). cleanPath keeps `k` leading
 * `..` (relative paths only) and `m` names: rooted, `/` and the names joined, so max(m, 1)
 * slashes; relative, the k + m parts joined, or `.`; "" is `.`. A test holds it to cleanPath.
 */
export function depths(paths: readonly string[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < paths.length; i++) {
    const p = paths[i]!;
    const rooted = p.startsWith("/");
    const parts = p.split("/");
    let k = 0;
    let m = 0;
    for (let j = 0; j < parts.length; j++) {
      const part = parts[j]!;
      if (part === "" || part === ".") continue;
      if (part !== "..") m++;
      else if (m > 0) m--;
      else if (!rooted) k++;
    }
    // Comparisons, not Math.max: naming `Math` in a function costs its lazy creation (~0.1 M
    // instructions) when the function is first called, whichever branch runs.
    out.push(p === "" ? 0 : rooted ? (m > 1 ? m : 1) : (k + m > 1 ? k + m - 1 : 0));
  }
  return out;
}

/** Stable sort by depth, ascending (equal depths keep their order): one bucket per depth. */
function sortByDepth<T extends { destination: string }>(mounts: readonly T[]): T[] {
  const destinations: string[] = [];
  for (let i = 0; i < mounts.length; i++) destinations.push(mounts[i]!.destination);
  const depth = depths(destinations);
  const buckets: T[][] = [];
  for (let i = 0; i < mounts.length; i++) (buckets[depth[i]!] ??= []).push(mounts[i]!);
  const out: T[] = [];
  for (let d = 0; d < buckets.length; d++) if (buckets[d] !== undefined) append(out, buckets[d]!);
  return out;
}

/** Whether a node must be completed from the host: a type and a non-zero major (or type p) are trusted as given. */
export const needsHostStat = (d: CdiDeviceNode) => d.type === undefined || d.type === "" || ((d.major ?? 0) === 0 && d.type !== "p");

/** Whether any of `nodes` needs a host stat (then devnode.ts, and node:fs with it, is loaded). */
export function needsAnyHostStat(nodes: readonly CdiDeviceNode[]): boolean {
  for (let i = 0; i < nodes.length; i++) if (needsHostStat(nodes[i]!)) return true;
  return false;
}

/** Fills `type`, `major`/`minor` and `fileMode` from the host node where the edit leaves them out. */
function completeNode(d: CdiDeviceNode, stat: StatNode): CdiDeviceNode {
  if (!needsHostStat(d)) return d;
  const hostPath = d.hostPath ?? d.path;
  let host: HostNode | null;
  try {
    host = stat(hostPath);
  } catch (error) {
    throw new CdiApplyError(`Cannot stat CDI host device ${JSON.stringify(hostPath)}: ${(error as Error).message}`, { cause: error });
  }
  if (host === null) throw new CdiApplyError(`Cannot stat CDI host device ${JSON.stringify(hostPath)}: no such file`);
  if (d.type !== undefined && d.type !== "" && d.type !== host.type) {
    throw new CdiApplyError(
      `CDI device (${JSON.stringify(d.path)}, ${JSON.stringify(hostPath)}): host type mismatch (${d.type}, ${host.type})`,
    );
  }
  const out: CdiDeviceNode = { ...d, type: host.type, fileMode: d.fileMode ?? host.fileMode };
  if (host.type === "p") return out;
  return (d.major ?? 0) === 0 ? { ...out, major: host.major, minor: host.minor } : out;
}

/**
 * `intelRdt`'s fields in the schema's order, whatever the spec file's order: the output is the
 * same whether the schema's copy of a spec was applied or the parsed spec itself (shape.ts).
 */
function copyIntelRdt(r: CdiIntelRdt): CdiIntelRdt {
  const out: { -readonly [K in keyof CdiIntelRdt]: CdiIntelRdt[K] } = {};
  if (r.closID !== undefined) out.closID = r.closID;
  if (r.l3CacheSchema !== undefined) out.l3CacheSchema = r.l3CacheSchema;
  if (r.memBwSchema !== undefined) out.memBwSchema = r.memBwSchema;
  if (r.schemata !== undefined) out.schemata = r.schemata;
  if (r.enableCMT !== undefined) out.enableCMT = r.enableCMT;
  if (r.enableMBM !== undefined) out.enableMBM = r.enableMBM;
  if (r.enableMonitoring !== undefined) out.enableMonitoring = r.enableMonitoring;
  return out;
}

type MutableSpec = OciSpec & Record<string, unknown>;

/** Applies `edits` to a copy of `oci` and returns it; throws CdiApplyError, leaving `oci` as it was. */
export function applyEdits(oci: OciSpec, edits: CdiContainerEdits, stat: StatNode): OciSpec {
  // A JSON copy: config.json is JSON, and this is cheaper than structuredClone on a cold start.
  const spec = JSON.parse(JSON.stringify(oci)) as MutableSpec;
  if (edits.env?.length) applyEnv(spec, edits.env);
  const nodes = edits.deviceNodes ?? [];
  for (let i = 0; i < nodes.length; i++) applyDeviceNode(spec, completeNode(nodes[i]!, stat));
  if (edits.mounts?.length) applyMounts(spec, edits.mounts);
  const hookEdits = edits.hooks ?? [];
  for (let i = 0; i < hookEdits.length; i++) applyHook(spec, hookEdits[i]!);
  if (edits.intelRdt !== undefined) (spec.linux ??= {}).intelRdt = copyIntelRdt(edits.intelRdt);
  const addGids = edits.additionalGids ?? [];
  for (let i = 0; i < addGids.length; i++) applyGid(spec, addGids[i]!);
  const net = edits.netDevices ?? [];
  for (let i = 0; i < net.length; i++) ((spec.linux ??= {}).netDevices ??= {})[net[i]!.hostInterfaceName] = { name: net[i]!.name };
  return spec;
}

/** Env merged by key: an edit replaces the entry with its key (the last of duplicates), else is appended. */
function applyEnv(spec: MutableSpec, edits: readonly string[]): void {
  const process = (spec.process ??= {});
  const env = (process.env ??= []);
  const keyOf = (e: string) => (e.includes("=") ? e.slice(0, e.indexOf("=")) : e);
  for (let i = 0; i < edits.length; i++) {
    const kv = edits[i]!;
    const key = keyOf(kv);
    // The generator indexes existing entries by key, the last of duplicates winning.
    let at = env.length - 1;
    while (at >= 0 && keyOf(env[at]!) !== key) at--;
    if (at >= 0) env[at] = kv;
    else env.push(kv);
  }
}

/**
 * A completed device node: it replaces the device with its path, takes the process's user
 * where it names none, and a block or character device gets its cgroup rule ("rwm" by default).
 */
function applyDeviceNode(spec: MutableSpec, n: CdiDeviceNode): void {
  const dev: OciLinuxDevice = { path: n.path, type: n.type!, major: n.major ?? 0, minor: n.minor ?? 0 };
  if (n.fileMode !== undefined) dev.fileMode = n.fileMode;
  const user = spec.process?.user;
  const uid = n.uid ?? ((user?.uid ?? 0) > 0 ? user!.uid : undefined);
  const gid = n.gid ?? ((user?.gid ?? 0) > 0 ? user!.gid : undefined);
  if (uid !== undefined) dev.uid = uid;
  if (gid !== undefined) dev.gid = gid;
  const linux = (spec.linux ??= {});
  const devices: OciLinuxDevice[] = [];
  const old = linux.devices ?? [];
  for (let j = 0; j < old.length; j++) if (old[j]!.path !== dev.path) devices.push(old[j]!);
  devices.push(dev);
  linux.devices = devices;
  if (dev.type === "b" || dev.type === "c") {
    const resources = (linux.resources ??= {});
    (resources.devices ??= []).push({ allow: true, type: dev.type, major: dev.major!, minor: dev.minor!, access: n.permissions || "rwm" });
  }
}

/** Mounts replaced by exact destination, then stable-sorted by depth. */
function applyMounts(spec: MutableSpec, edits: NonNullable<CdiContainerEdits["mounts"]>): void {
  const mounts = (spec.mounts ??= []);
  for (let i = 0; i < edits.length; i++) {
    const m = edits[i]!;
    let at = 0;
    while (at < mounts.length && mounts[at]!.destination !== m.containerPath) at++;
    if (at < mounts.length) mounts.splice(at, 1);
    // Fields set one by one, not spread: an object spread calls a builtin (compiled on first use).
    const mount: { destination: string; source: string; type?: string; options?: string[] } = {
      destination: m.containerPath,
      source: m.hostPath,
    };
    if (m.type !== undefined) mount.type = m.type;
    if (m.options !== undefined) mount.options = m.options.slice();
    mounts.push(mount);
  }
  spec.mounts = sortByDepth(mounts);
}

type OciHook = NonNullable<NonNullable<OciSpec["hooks"]>["prestart"]>[number];

/** A hook appended to its phase; an unknown phase is refused. */
function applyHook(spec: MutableSpec, h: NonNullable<CdiContainerEdits["hooks"]>[number]): void {
  if (!isHookName(h.hookName)) throw new CdiApplyError(`Cannot apply hook: unknown hook name ${JSON.stringify(h.hookName)}`);
  const hooks = (spec.hooks ??= {}) as Record<HookName, OciHook[]>;
  const list = (hooks[h.hookName as HookName] ??= []);
  const hook: { path: string; args?: string[]; env?: string[]; timeout?: number } = { path: h.path };
  if (h.args !== undefined) hook.args = h.args.slice();
  if (h.env !== undefined) hook.env = h.env.slice();
  if (h.timeout !== undefined) hook.timeout = h.timeout;
  list.push(hook);
}

/** An additional gid, once; gid 0 is never added. */
function applyGid(spec: MutableSpec, gid: number): void {
  if (gid === 0) return;
  const user = ((spec.process ??= {}).user ??= {});
  const gids = (user.additionalGids ??= []);
  let at = 0;
  while (at < gids.length && gids[at] !== gid) at++;
  if (at === gids.length) gids.push(gid);
}
