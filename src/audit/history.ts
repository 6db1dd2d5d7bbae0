/**
 * Lease history from the audit trail: the leases that ended (released or expired) at or after a
 * time, with who ended them and, where the trail still holds it, the grant's terms. The lease
 * journal forgets a lease once it ends; the trail keeps it for as long as its files are kept
 * (`--audit-files`), so that is how far back history reaches.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseTrailLine } from "./chain.ts";
import { trailFiles } from "./verify.ts";

/** One ended lease. */
export interface EndedLease {
  readonly id: string;
  readonly gpu_id: string | null;
  readonly worker_id: string | null;
  /** `released` or `expired`. */
  readonly ended: string;
  /** RFC 3339. */
  readonly ended_at: string;
  /** The release's reason (`released`, `expired`, `gpu_gone`, …). */
  readonly reason: string | null;
  /** Who ended it (the change's source and actor). */
  readonly source: string;
  readonly actor: Readonly<Record<string, unknown>> | null;
  /** The grant's terms and time, when the trail read still holds the grant; else null. */
  readonly granted: { readonly at: string; readonly mem_mb: unknown; readonly streams: unknown; readonly ttl_s: unknown } | null;
}

/** At most this many leases in one answer (the oldest first): ask again with a later `since`. */
export const HISTORY_LIMIT = 10_000;

/**
 * The leases in the trail at `dir` that ended at or after `sinceMs`, oldest first, at most
 * `limit`. Files last written before `sinceMs` hold no such end and are not read.
 */
export function endedLeases(dir: string, sinceMs: number, limit = HISTORY_LIMIT): { leases: EndedLease[]; truncated: boolean } {
  const grants = new Map<string, EndedLease["granted"]>();
  const out: EndedLease[] = [];
  let files: { name: string }[];
  try {
    files = trailFiles(dir);
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return { leases: [], truncated: false };
    throw error;
  }
  for (const { name } of files) {
    const path = join(dir, name);
    let text: string;
    try {
      if (statSync(path).mtimeMs < sinceMs) continue;
      text = readFileSync(path, "utf8");
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") continue; // dropped by retention meanwhile
      throw error;
    }
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const l = parseTrailLine(line);
      if (typeof l === "string" || l.kind !== "change") continue;
      const c = l.value;
      const id = c.lease_id;
      if (typeof id !== "string") continue;
      const data = (c.data ?? {}) as Record<string, unknown>;
      if (c.type === "lease.granted") {
        grants.set(id, { at: c.time as string, mem_mb: data.mem_mb, streams: data.streams, ttl_s: data.ttl_s });
      } else if (c.type === "lease.released" || c.type === "lease.expired") {
        const granted = grants.get(id) ?? null;
        grants.delete(id);
        if (Date.parse(c.time as string) < sinceMs) continue;
        if (out.length >= limit) return { leases: out, truncated: true };
        out.push({
          id,
          gpu_id: typeof c.gpu_id === "string" ? c.gpu_id : null,
          worker_id: typeof data.worker_id === "string" ? data.worker_id : null,
          ended: c.type === "lease.expired" ? "expired" : "released",
          ended_at: c.time as string,
          reason: typeof data.reason === "string" ? data.reason : null,
          source: String(c.source),
          actor: (c.actor as Record<string, unknown> | undefined) ?? null,
          granted,
        });
      }
    }
  }
  return { leases: out, truncated: false };
}
