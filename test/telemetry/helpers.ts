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
