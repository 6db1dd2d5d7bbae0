/** Reading a bridge's audit trail in tests, and feeding a trail lease grants. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Trail } from "../../src/audit/trail.ts";
import { ChangeRecord } from "../../src/changes/record.ts";
import type { Logger } from "../../src/util/log.ts";
import { FakeClock } from "../helpers.ts";

/** A record numbering on from `trail`, with it listening, and `grant(i, pad)` making lease `i`'s grant. */
export function grantsInto(trail: Trail, log: Logger) {
  const record = new ChangeRecord({ clock: new FakeClock(1_750_000_000_000), log, keep: 16, firstId: trail.lastId + 1 });
  record.on((c) => trail.append(c));
  /** `pad` bytes more in the line (a line longer than a page needs new space on a full disk). */
  const grant = (i: number, pad = 0) =>
    record.append({
      type: "lease.granted",
      lease_id: `lease-${i}`,
      gpu_id: "GPU-0",
      source: "api",
      data: { worker_id: "w1", mem_mb: i, ...(pad > 0 && { note: "x".repeat(pad) }) },
    });
  return { record, grant };
}

/** The lines of a trail file, without their newlines. */
export const linesOf = (path: string): string[] => readFileSync(path, "utf8").split("\n").slice(0, -1);

/** The trail under `<stateDir>/audit` as text, its files in order. */
export function trailText(stateDir: string): string {
  const dir = join(stateDir, "audit");
  return readdirSync(dir).filter((f) => f.endsWith(".jsonl")).sort().map((f) => readFileSync(join(dir, f), "utf8")).join("");
}

/** The trail's shard events in the shape vram-audit.jsonl had: the event's fields, its lease and time. */
// deno-lint-ignore no-explicit-any
export function shardEvents(stateDir: string): any[] {
  return trailText(stateDir).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l))
    .filter((c) => typeof c.data?.event === "string").map((c) => ({ ...c.data, lease_id: c.lease_id, ts: c.time }));
}
