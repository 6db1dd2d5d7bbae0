/**
 * The audit trail's cost on lease grants: grants per second through the lease manager and the
 * record of changes, without a trail, with fsync per record, with fsync per batch as the bridge
 * runs it (written on the trail's worker thread; target: keeps >= 50% of the figure without) and,
 * for comparison, per batch on the grants' own thread. Grants come in bursts of BURST with a turn of
 * the event loop between them, as API requests do, so per-batch syncs can group what arrives
 * while one runs. Each variant runs for SECONDS, in ROUNDS interleaved rounds; medians are
 * printed. The trail is written to AUDIT_DIR (default: a folder under the system's temp folder:
 * point it at the state folder's disk to measure that disk).
 * Run with `make bench-audit`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { leaseChange } from "../src/app/changes.ts";
import { ThreadedTrail } from "../src/audit/threaded.ts";
import { AuditTrail, type Trail } from "../src/audit/trail.ts";
import { verifyTrail } from "../src/audit/verify.ts";
import { ChangeRecord } from "../src/changes/record.ts";
import { LeaseManager } from "../src/lease/manager.ts";
import { systemClock } from "../src/util/clock.ts";
import { memoryLogger } from "../test/helpers.ts";

const SECONDS = Number(process.env.SECONDS_EACH ?? 2);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const BURST = Number(process.env.BURST ?? 50);
const GPUS = 100;
const gpus = Array.from({ length: GPUS }, (_, i) => ({ id: `GPU-${i}`, memory_mb: 1 << 30 }));
const base = process.env.AUDIT_DIR ?? tmpdir();

type Variant = "none" | "record" | "batch" | "batch-here";
const VARIANTS: readonly Variant[] = ["none", "record", "batch", "batch-here"];
const LABELS: Record<Variant, string> = {
  none: "no trail                    ",
  record: "fsync per record            ",
  batch: "fsync per batch (worker)    ",
  "batch-here": "fsync per batch, one thread ",
};

async function run(variant: Variant): Promise<{ rate: number; syncs: number }> {
  const { log, lines } = memoryLogger("warn");
  const dir = mkdtempSync(join(base, "bench-audit-"));
  const o = { dir, log, fileBytes: 8 << 20, maxFiles: 64, fsync: variant === "record" ? "record" as const : "batch" as const };
  const trail: Trail | null = variant === "none" ? null : variant === "batch" ? await ThreadedTrail.start(o) : AuditTrail.open(o);
  if (variant === "batch" && !(trail instanceof ThreadedTrail)) throw new Error(`the trail's worker did not start: ${lines.join("; ")}`);
  const record = new ChangeRecord({ clock: systemClock, log, keep: 4096 });
  if (trail !== null) record.on((c) => trail.append(c));
  const m = new LeaseManager({ gpus: () => gpus, maxStreamsPerGpu: 1 << 20, keepReleased: 16 });
  m.on((e) => record.append(leaseChange(e)));
  let n = 0;
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < BURST; i++, n++) {
      m.grant({ gpu_id: `GPU-${n % GPUS}`, worker_id: `w${n}`, mem_mb: 1, streams: 1, ttl_s: 3600, priority: 0 });
    }
    await new Promise((r) => setImmediate(r));
  }
  await trail?.close(); // every grant durable before the clock stops
  const ms = performance.now() - t0;
  // A fast trail that lost lines would prove nothing: every grant must be there, chained.
  const v = trail === null ? null : verifyTrail(dir);
  if (v !== null && (!v.ok || v.changes !== n)) throw new Error(`the ${variant} trail does not hold the ${n} grants: ${JSON.stringify(v)}`);
  m.close();
  rmSync(dir, { recursive: true, force: true });
  return { rate: n / (ms / 1000), syncs: trail?.syncs ?? 0 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results: Record<Variant, number[]> = { none: [], record: [], batch: [], "batch-here": [] };
const syncs: Record<Variant, number[]> = { none: [], record: [], batch: [], "batch-here": [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const v of VARIANTS) {
    const { rate, syncs: s } = await run(v);
    results[v].push(rate);
    syncs[v].push(s);
  }
}
const fmt = (x: number) => Math.round(x).toLocaleString("en");
const none = median(results.none);
console.log(`lease grants per second, ${ROUNDS} interleaved rounds of ${SECONDS} s each, bursts of ${BURST}, trail in ${base}`);
for (const v of VARIANTS) {
  const rate = median(results[v]);
  const label = LABELS[v];
  const extra = v === "none" ? "" : `  ${(100 * rate / none).toFixed(0)}% of no trail, ${fmt(median(syncs[v]))} fsyncs`;
  console.log(`  ${label} ${fmt(rate)}/s  (rounds: ${results[v].map(fmt).join(", ")})${extra}`);
}
const kept = median(results.batch) / none;
console.log(`  target: per batch (worker) >= 50% of no trail: ${kept >= 0.5 ? "met" : "MISSED"} (${(100 * kept).toFixed(0)}%)`);
