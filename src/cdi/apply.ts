/**
 * Applying CDI edits to an OCI `config.json`, by the reference library's rules (CDI v1.1.0):
 * env merged by key, device nodes completed by `lstat` and given cgroup rules (b and c only),
 * mounts replaced by exact destination then stable-sorted by depth, hooks appended per phase,
 * additional gids appended once. The input is never modified: a failure changes nothing.
 */
import type { HostNode } from "./devnode.ts";
import { type CdiContainerEdits, type CdiDeviceNode, HOOK_NAMES, type HookName, type OciLinuxDevice, type OciSpec } from "./schema.ts";

/** Reads a host node; null when absent. May throw for something that is not a device node. */
export type StatNode = (path: string) => HostNode | null;

/** A device (or its edits) that cannot be applied; nothing was changed. */
export class CdiApplyError extends Error {
  override name = "CdiApplyError";
}

/** Concatenates edits in order (lists joined; intelRdt: the last one wins). */
export function mergeEdits(list: readonly CdiContainerEdits[]): CdiContainerEdits {
  const out: { -readonly [K in keyof CdiContainerEdits]: CdiContainerEdits[K] } = {};
  for (const e of list) {
    if (e.env !== undefined) out.env = [...(out.env ?? []), ...e.env];
    if (e.deviceNodes !== undefined) out.deviceNodes = [...(out.deviceNodes ?? []), ...e.deviceNodes];
    if (e.mounts !== undefined) out.mounts = [...(out.mounts ?? []), ...e.mounts];
    if (e.hooks !== undefined) out.hooks = [...(out.hooks ?? []), ...e.hooks];
    if (e.additionalGids !== undefined) out.additionalGids = [...(out.additionalGids ?? []), ...e.additionalGids];
    if (e.intelRdt !== undefined) out.intelRdt = e.intelRdt;
    if (e.netDevices !== undefined) out.netDevices = [...(out.netDevices ?? []), ...e.netDevices];
  }
  return out;
}

/** Go's `filepath.Clean` for slash paths: the depth sort counts `/` in the cleaned path. */
export function cleanPath(p: string): string {
  if (p === "") return ".";
  const rooted = p.startsWith("/");
  const out: string[] = [];
  for (const part of p.split("/")) {
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

const depth = (dest: string) => cleanPath(dest).split("/").length - 1;

/** Whether a node must be completed from the host: a type and a non-zero major (or type p) are trusted as given. */
export const needsHostStat = (d: CdiDeviceNode) => d.type === undefined || d.type === "" || ((d.major ?? 0) === 0 && d.type !== "p");

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
    throw new CdiApplyError(`CDI device (${JSON.stringify(d.path)}, ${JSON.stringify(hostPath)}): host type mismatch (${d.type}, ${host.type})`);
  }
  const out: CdiDeviceNode = { ...d, type: host.type, fileMode: d.fileMode ?? host.fileMode };
  if (host.type === "p") return out;
  return (d.major ?? 0) === 0 ? { ...out, major: host.major, minor: host.minor } : out;
}

/** Applies `edits` to a copy of `oci` and returns it; throws CdiApplyError, leaving `oci` as it was. */
export function applyEdits(oci: OciSpec, edits: CdiContainerEdits, stat: StatNode): OciSpec {
  // A JSON copy: config.json is JSON, and this is cheaper than structuredClone on a cold start.
  const spec = JSON.parse(JSON.stringify(oci)) as OciSpec & Record<string, unknown>;
  if (edits.env?.length) {
    const process = (spec.process ??= {});
    const env = (process.env ??= []);
    const keyOf = (e: string) => (e.includes("=") ? e.slice(0, e.indexOf("=")) : e);
    for (const kv of edits.env) {
      const key = keyOf(kv);
      // The generator indexes existing entries by key, the last of duplicates winning.
      const at = env.findLastIndex((e) => keyOf(e) === key);
      if (at >= 0) env[at] = kv;
      else env.push(kv);
    }
  }
  for (const d of edits.deviceNodes ?? []) {
    const n = completeNode(d, stat);
    const dev: OciLinuxDevice = { path: n.path, type: n.type!, major: n.major ?? 0, minor: n.minor ?? 0 };
    if (n.fileMode !== undefined) dev.fileMode = n.fileMode;
    const user = spec.process?.user;
    const uid = n.uid ?? ((user?.uid ?? 0) > 0 ? user!.uid : undefined);
    const gid = n.gid ?? ((user?.gid ?? 0) > 0 ? user!.gid : undefined);
    if (uid !== undefined) dev.uid = uid;
    if (gid !== undefined) dev.gid = gid;
    const linux = (spec.linux ??= {});
    linux.devices = (linux.devices ?? []).filter((x) => x.path !== dev.path);
    linux.devices.push(dev);
    if (dev.type === "b" || dev.type === "c") {
      const resources = (linux.resources ??= {});
      (resources.devices ??= []).push({ allow: true, type: dev.type, major: dev.major!, minor: dev.minor!, access: n.permissions || "rwm" });
    }
  }
  if (edits.mounts?.length) {
    const mounts = (spec.mounts ??= []);
    for (const m of edits.mounts) {
      const at = mounts.findIndex((x) => x.destination === m.containerPath);
      if (at >= 0) mounts.splice(at, 1);
      mounts.push({
        destination: m.containerPath,
        source: m.hostPath,
        ...(m.type !== undefined && { type: m.type }),
        ...(m.options !== undefined && { options: [...m.options] }),
      });
    }
    // Array.prototype.sort is stable: equal depths keep their order.
    spec.mounts = mounts.map((m, i) => ({ m, i, d: depth(m.destination) })).sort((a, b) => a.d - b.d || a.i - b.i).map((x) => x.m);
  }
  for (const h of edits.hooks ?? []) {
    if (!(HOOK_NAMES as readonly string[]).includes(h.hookName)) throw new CdiApplyError(`Cannot apply hook: unknown hook name ${JSON.stringify(h.hookName)}`);
    const hooks = (spec.hooks ??= {}) as Record<HookName, OciSpec["hooks"] extends infer H ? H extends Record<string, infer A> ? A : never : never>;
    const list = (hooks[h.hookName as HookName] ??= []) as NonNullable<NonNullable<OciSpec["hooks"]>["prestart"]>;
    list.push({
      path: h.path,
      ...(h.args !== undefined && { args: [...h.args] }),
      ...(h.env !== undefined && { env: [...h.env] }),
      ...(h.timeout !== undefined && { timeout: h.timeout }),
    });
  }
  if (edits.intelRdt !== undefined) (spec.linux ??= {}).intelRdt = { ...edits.intelRdt };
  for (const gid of edits.additionalGids ?? []) {
    if (gid === 0) continue;
    const user = ((spec.process ??= {}).user ??= {});
    const gids = (user.additionalGids ??= []);
    if (!gids.includes(gid)) gids.push(gid);
  }
  for (const n of edits.netDevices ?? []) {
    ((spec.linux ??= {}).netDevices ??= {})[n.hostInterfaceName] = { name: n.name };
  }
  return spec;
}
