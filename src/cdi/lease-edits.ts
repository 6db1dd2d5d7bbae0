/**
 * Adding edits to a lease's CDI device: what other parts of the bridge give a lease's container
 * beyond its GPU's nodes (the MPS client's env and pipe folder, a socket, ...). The device's own
 * edits come first; an added env key or mount path replaces the device's own, so one device
 * never names a key or a container path twice.
 */
import type { CdiContainerEdits } from "./schema.ts";

const envKey = (e: string) => {
  const i = e.indexOf("=");
  return i < 0 ? e : e.slice(0, i);
};

/** `base` with `extra` merged in: env by key, mounts by container path, device nodes by path, hooks appended. */
export function mergeEdits(base: CdiContainerEdits, extra: CdiContainerEdits): CdiContainerEdits {
  const out: CdiContainerEdits = { ...base };
  if (extra.env !== undefined) {
    const keys = new Set(extra.env.map(envKey));
    out.env = [...(base.env ?? []).filter((e) => !keys.has(envKey(e))), ...extra.env];
  }
  if (extra.deviceNodes !== undefined) {
    const paths = new Set(extra.deviceNodes.map((n) => n.path));
    out.deviceNodes = [...(base.deviceNodes ?? []).filter((n) => !paths.has(n.path)), ...extra.deviceNodes];
  }
  if (extra.mounts !== undefined) {
    const paths = new Set(extra.mounts.map((m) => m.containerPath));
    out.mounts = [...(base.mounts ?? []).filter((m) => !paths.has(m.containerPath)), ...extra.mounts];
  }
  if (extra.hooks !== undefined) out.hooks = [...(base.hooks ?? []), ...extra.hooks];
  return out;
}
