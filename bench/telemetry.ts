/**
 * Telemetry benchmark: records per second through ingest -> spool (fsync before ack) ->
 * forward to the mock console's Queen (in its own process, over loopback), and what the
 * on-disk sync costs per record. Run with `make bench-telemetry`; RECORDS=N (default 2000).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MOCK_GPUS } from "../src/inventory/mock.ts";
import { LISTENING, spawnBridge } from "../test/spawn.ts";
import { Publisher } from "../src/console/publisher.ts";
import { createLogger } from "../src/util/log.ts";
import { builtinCatalog } from "../src/models/catalog.ts";
import { buildNamespace } from "../src/contract/namespace.ts";
import { bunRuntime } from "../src/runtime/bun.ts";
import { makeSnapshot } from "../src/contract/snapshot.ts";
import { chunkRecord } from "../src/telemetry/forward.ts";
import { TelemetryForwarder } from "../src/telemetry/forward.ts";
import { ingest } from "../src/telemetry/ingest.ts";
import { encodeRecord, type TelemetryRecord } from "../src/telemetry/record.ts";
import { Spool } from "../src/telemetry/spool.ts";

const N = Number(process.env.RECORDS ?? 2000);
const log = createLogger({ level: "error", write: (l) => void process.stderr.write(l) });
const record = (i: number) => ({
  schema_version: "gpu-telemetry/v1",
  device_id: "edge-bench",
  time_window: { start_ms: 1_700_000_000_000 + i, end_ms: 1_700_000_000_999 + i },
  token_count: 200 + (i % 300),
  latency_histogram: { le_ms: [5, 10, 25, 50, 100, 250], counts: [i % 9, 40, 22, 9, 3, 1] },
  confidence: 0.91,
  entropy: 1.25,
  feedback_flags: i % 10 === 0 ? ["thumbs-down"] : [],
});
const rate = (n: number, ms: number) => `${Math.round(n / (ms / 1000)).toLocaleString("en")} records/s`;
const dirs: string[] = [];
const fresh = () => (dirs.push(mkdtempSync(join(tmpdir(), "gbh-bench-tel-"))), dirs.at(-1)!);

console.log(`telemetry: ${N} records of ~${encodeRecord({ ...record(1), model_id: "m" } as TelemetryRecord).length} bytes`);

// 1. Ingest into the spool, one fsync per request: one record a request, then 100.
for (const batch of [1, 100]) {
  const spool = Spool.open({ dir: fresh(), log });
  const t0 = performance.now();
  for (let i = 0; i < N; i += batch) ingest(Array.from({ length: Math.min(batch, N - i) }, (_, k) => record(i + k)), builtinCatalog(), spool);
  const ms = performance.now() - t0;
  console.log(`  ingest+spool, ${String(batch).padStart(3)} per request: ${rate(N, ms)}; fsync ${(spool.syncMs / spool.syncs).toFixed(2)} ms each, ` +
    `${(spool.syncMs / N).toFixed(3)} ms per record (${((spool.syncMs / ms) * 100).toFixed(0)}% of the time)`);
  spool.close();
}
{
  const spool = Spool.open({ dir: fresh(), log, sync: false });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) ingest([record(i)], builtinCatalog(), spool);
  console.log(`  ingest+spool, without fsync (for comparison): ${rate(N, performance.now() - t0)}`);
  spool.close();
}

// 2. Forward everything spooled to the Queen of a mock console in its own process.
const mockConsole = spawnBridge(["mock-console", "--port", "0", "--auth-token", "bench"]);
const consoleProc = mockConsole.proc;
const port = Number((await mockConsole.waitFor(LISTENING))[1]);
try {
  const spool = Spool.open({ dir: fresh(), log });
  ingest(Array.from({ length: N }, (_, i) => record(i)), builtinCatalog(), spool);
  const chunks = chunkRecord(encodeRecord({ ...record(1), model_id: "vision-base-v1", lora_id: "vision-lora-edge" } as TelemetryRecord) + "\n", 1).length;
  const forwarder = new TelemetryForwarder({ spool, deviceId: "edge-bench", log });
  const runtime = bunRuntime();
  const t0 = performance.now();
  const publisher = new Publisher({
    connect: runtime.connect,
    target: { host: "127.0.0.1", port, token: "bench", ticket: "" },
    snapshot: () => Promise.resolve(makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()))),
    log,
    intervalMs: 60_000,
    sidecar: forwarder,
  });
  void publisher.start();
  while (forwarder.forwarded < N) await Bun.sleep(5);
  const ms = performance.now() - t0;
  await publisher.stop();
  console.log(`  forward to the Queen over loopback: ${rate(N, ms)} (${chunks} ECHO frames per record, ` +
    `${Math.round((N * chunks) / (ms / 1000)).toLocaleString("en")} acked frames/s, progress synced per record)`);
  spool.close();
} finally {
  consoleProc.kill("SIGINT");
  await consoleProc.exited;
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
