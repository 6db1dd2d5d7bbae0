/**
 * The audit trail in the bridge: opened under `<state-dir>/audit` before anything can change,
 * the record of changes numbered on from the trail's last id, and the trail its first listener,
 * so it sees every change in order. Lease history reads it back.
 */
import { join } from "node:path";
import { endedLeases } from "../audit/history.ts";
import { ThreadedTrail } from "../audit/threaded.ts";
import { AuditTrail, type Trail } from "../audit/trail.ts";
import { ChangeRecord } from "../changes/record.ts";
import type { BridgeOptions } from "../cli/options.ts";
import { DEFAULTS } from "../config/defaults.ts";
import type { Clock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";

/** Where a state folder keeps its trail. */
export const auditDir = (stateDir: string): string => join(stateDir, "audit");

/**
 * The trail for `options` (null: `ephemeral`, tests that keep no state): fsync per record on this
 * thread, since each change waits for its line; per batch on a worker thread.
 */
export async function openAuditTrail(options: BridgeOptions, ephemeral: boolean, log: Logger): Promise<Trail | null> {
  if (ephemeral) return null;
  const o = {
    dir: auditDir(options.stateDir),
    log,
    fileBytes: options.auditFileBytes ?? DEFAULTS.auditFileMb * 1048576,
    maxFiles: options.auditFiles ?? DEFAULTS.auditFiles,
    fsync: options.auditFsync ?? DEFAULTS.auditFsync,
  };
  return o.fsync === "record" ? AuditTrail.open(o) : await ThreadedTrail.start(o);
}

/** The record of changes, numbered on from `trail`'s last change, with the trail listening first. */
export function auditedRecord(trail: Trail | null, clock: Clock, log: Logger): ChangeRecord {
  const record = new ChangeRecord({ clock, log, keep: DEFAULTS.changesKept, firstId: (trail?.lastId ?? 0) + 1 });
  if (trail !== null) {
    record.on((change) => trail.append(change));
    record.barrier(() => trail.written());
  }
  return record;
}

/** Lease history for the API (`GET /v1/leases?state=ended`): written lines first, then read. */
export function leaseHistory(options: BridgeOptions, trail: Trail) {
  return (sinceMs: number) => {
    trail.writePending();
    return endedLeases(auditDir(options.stateDir), sinceMs);
  };
}
