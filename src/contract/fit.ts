/**
 * Keeps a namespace within the one size the VM enforces on a whole snapshot (131,072 bytes,
 * docs/protocol.md#8-the-console), however long the bridge runs and however large the registry grows.
 * Job status lines are the only history that may go (oldest first, largest log first); after
 * them, models are left out from the end of the catalog (never the active one), and the caller
 * is told which, so it can say so. Sizes are computed from byte counts, not by rendering, so a
 * 5,000-model registry costs one pass over cached lengths.
 */
import type { Namespace, NodePayloads } from "./namespace.ts";
import { LIMITS } from "./limits.ts";
import type { ModelEntry } from "./models.ts";
import { byteLength } from "../util/bytes.ts";
import { SNAPSHOT_SCHEMA } from "./snapshot.ts";

/** What fitting had to leave out. */
export interface Fitted {
  readonly ns: Namespace;
  /** Status bytes left out of the snapshot (oldest job status lines). */
  readonly statusBytesCut: number;
  /** Models left out, in catalog order. */
  readonly droppedModels: readonly string[];
}

const b64 = (bytes: number) => 4 * Math.ceil(bytes / 3);
const modelBytes = new WeakMap<ModelEntry, number>();

/** Bytes of `model id=<id> manifest=<b64>\n`, cached per entry (catalogs are immutable). */
function modelLine(m: ModelEntry): number {
  let n = modelBytes.get(m);
  if (n === undefined) modelBytes.set(m, n = 20 + byteLength(m.model_id) + b64(byteLength(m.manifest_toml)));
  return n;
}

/** Bytes of `node id=<id> info=<b64> ctl=<b64> lease=<b64> status=<b64>\n`. */
function nodeLine(n: NodePayloads): number {
  return 35 + byteLength(n.id) + b64(byteLength(n.info)) + b64(byteLength(n.ctl)) + b64(byteLength(n.lease)) + b64(byteLength(n.status));
}

/** The exact byte length `renderSnapshot(ns)` would have. */
export function snapshotBytes(ns: Namespace): number {
  let total = byteLength(`schema ${SNAPSHOT_SCHEMA}\n`) + 11 + byteLength(ns.active) + 18 + b64(byteLength(ns.telemetrySchema)) + 4;
  for (const n of ns.nodes) total += nodeLine(n);
  for (const m of ns.models) total += modelLine(m);
  return total;
}

/** `ns` cut down to at most `limit` snapshot bytes (unchanged when it fits). */
export function fitNamespace(ns: Namespace, limit: number = LIMITS.snapshotBytes): Fitted {
  let size = snapshotBytes(ns);
  if (size <= limit) return { ns, statusBytesCut: 0, droppedModels: [] };
  const nodes = ns.nodes.map((n) => ({ ...n }));
  let statusBytesCut = 0;
  while (size > limit) {
    let largest: { -readonly [K in keyof NodePayloads]: NodePayloads[K] } | undefined;
    let second = 0;
    for (const n of nodes) {
      if (n.status === "") continue;
      if (largest === undefined || n.status.length > largest.status.length) {
        second = largest?.status.length ?? 0;
        largest = n;
      } else second = Math.max(second, n.status.length);
    }
    if (largest === undefined) break;
    // Enough raw bytes to cover the excess in base64, whole lines only, but no more than brings
    // this log down to the next largest: the GPUs share the cut.
    const before = byteLength(largest.status);
    const need = Math.min(Math.ceil(((size - limit) * 3) / 4), Math.max(1, before - second));
    let cut = 0;
    let at = 0;
    while (at < largest.status.length && cut < need) {
      const nl = largest.status.indexOf("\n", at);
      const end = nl < 0 ? largest.status.length : nl + 1;
      cut += byteLength(largest.status.slice(at, end));
      at = end;
    }
    largest.status = largest.status.slice(at);
    statusBytesCut += before - byteLength(largest.status);
    size = snapshotBytes({ ...ns, nodes });
  }
  const models = [...ns.models];
  const dropped: string[] = [];
  for (let i = models.length - 1; i >= 0 && size > limit; i--) {
    const m = models[i]!;
    if (m.model_id === ns.active) continue;
    size -= modelLine(m);
    dropped.unshift(m.model_id);
    models.splice(i, 1);
  }
  return { ns: { ...ns, nodes, models }, statusBytesCut, droppedModels: dropped };
}
