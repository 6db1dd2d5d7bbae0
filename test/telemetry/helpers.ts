import { afterEach, beforeEach } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { acceptRecord, type TelemetryRecord } from "../../src/telemetry/record.ts";
import { Spool } from "../../src/telemetry/spool.ts";
import { memoryLogger, tempDir } from "../helpers.ts";

/** Telemetry records for tests. */
export const record = (i: number, extra: Record<string, unknown> = {}) => ({
  schema_version: "gpu-telemetry/v1",
  device_id: "edge-7",
  time_window: { start_ms: 1_700_000_000_000 + i * 1000, end_ms: 1_700_000_000_000 + i * 1000 + 999 },
  token_count: 100 + i,
  latency_histogram: { le_ms: [5, 10, 50, 100], counts: [i % 7, 3, 2, 1] },
  confidence: 0.5 + (i % 50) / 100,
  feedback_flags: i % 3 === 0 ? ["thumbs-up", "ünïcode ✓"] : [],
  ...extra,
});

/** The token counts of the complete NDJSON records the Queen reassembled, in order (a record
 *  still in flight, without its newline yet, is not counted). */
export const tokenCounts = (ndjson: string) =>
  ndjson.split("\n").slice(0, -1).map((l) => (JSON.parse(l) as { token_count: number }).token_count);

/**
 * A spool folder made before each test and removed after it (`path`), with the calls the spool
 * tests share: `open` a spool on it (logged to memory, unsynced), `segment(n)`'s file path, the
 * `segments()` on disk in order, and `reset()` to start over in a new, empty folder.
 */
export function spoolFolder(prefix: string) {
  let dir: { path: string; cleanup: () => void };
  beforeEach(() => (dir = tempDir(prefix)));
  afterEach(() => dir.cleanup());
  return {
    get path(): string {
      return dir.path;
    },
    open(o: Partial<Parameters<typeof Spool.open>[0]> = {}) {
      const m = memoryLogger();
      return { spool: Spool.open({ dir: dir.path, log: m.log, sync: false, ...o }), lines: m.lines };
    },
    segment: (n: number) => join(dir.path, `seg-${String(n).padStart(8, "0")}.spool`),
    segments: () => readdirSync(dir.path).filter((f) => f.endsWith(".spool")).sort(),
    /** A new, empty folder in place of this test's. */
    reset(): void {
      dir.cleanup();
      dir = tempDir(prefix);
    },
  };
}

/** `record(i)` as the spool stores it once accepted. */
export function accepted(i: number): TelemetryRecord {
  const r = acceptRecord(record(i), { model_id: "m" });
  if (!r.ok) throw new Error(r.message);
  return r.record;
}

/** A stored record's token count. */
export const tokenOf = (r: unknown) => (r as TelemetryRecord).token_count;
