/** Reading a bridge's audit trail in tests. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

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
