/**
 * Telemetry benchmark: records per second through ingest -> spool (fsync before ack) ->
 * forward to the mock console's Queen (in its own process, over loopback), and what the
 * on-disk sync costs per record, then the forwarding rate at round trips of 0, 25, 100 and 300 ms
 * with the console window at 1 (stop-and-wait) and at its default (target at 100 ms: >= 3.5x).
 * Run with `make bench-telemetry`; RECORDS=N (default 2000), RUNS=N samples per case (default 10).
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
import { DEFAULTS } from "../src/config/defaults.ts";
import { quantile } from "./quantile.ts";

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
  for (let i = 0; i < N; i += batch) {
    ingest(Array.from({ length: Math.min(batch, N - i) }, (_, k) => record(i + k)), builtinCatalog(), spool);
  }
  const ms = performance.now() - t0;
  console.log(
    `  ingest+spool, ${String(batch).padStart(3)} per request: ${rate(N, ms)}; fsync ${(spool.syncMs / spool.syncs).toFixed(2)} ms each, ` +
      `${(spool.syncMs / N).toFixed(3)} ms per record (${((spool.syncMs / ms) * 100).toFixed(0)}% of the time)`,
  );
  spool.close();
}
{
  const spool = Spool.open({ dir: fresh(), log, sync: false });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) ingest([record(i)], builtinCatalog(), spool);
  console.log(`  ingest+spool, without fsync (for comparison): ${rate(N, performance.now() - t0)}`);
  spool.close();
}

// 2. Forward everything spooled to the Queen of a mock console in its own process, over loopback.
const frames =
  chunkRecord(encodeRecord({ ...record(1), model_id: "vision-base-v1", lora_id: "vision-lora-edge" } as TelemetryRecord) + "\n", 1).length;

/** A publisher with a forwarder sidecar against a mock console whose link has `rttMs`. */
async function forwarding(rttMs: number, window: number) {
  const mockConsole = spawnBridge(["mock-console", "--port", "0", "--auth-token", "bench", "--rtt-ms", String(rttMs)]);
  const port = Number((await mockConsole.waitFor(LISTENING))[1]);
  const spool = Spool.open({ dir: fresh(), log });
  const forwarder = new TelemetryForwarder({ spool, deviceId: "edge-bench", log });
  const publisher = new Publisher({
    connect: bunRuntime().connect,
    target: { host: "127.0.0.1", port, token: "bench", ticket: "" },
    snapshot: () => Promise.resolve(makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()))),
    log,
    intervalMs: 600_000,
    window,
    sidecar: forwarder,
  });
  void publisher.start();
  let pushed = 0;
  /** Spools `n` records and resolves with the milliseconds until the Queen acknowledged them all. */
  const run = async (n: number) => {
    const t0 = performance.now();
    ingest(Array.from({ length: n }, (_, i) => record(pushed + i)), builtinCatalog(), spool);
    pushed += n;
    publisher.notifyWork();
    while (forwarder.forwarded < pushed) await Bun.sleep(1);
    return performance.now() - t0;
  };
  const stop = async () => {
    await publisher.stop();
    spool.close();
    mockConsole.proc.kill("SIGINT");
    await mockConsole.proc.exited;
  };
  return { run, stop };
}

try {
  const f = await forwarding(0, DEFAULTS.window);
  try {
    await f.run(10); // connect, publish the snapshot, open a Queen segment
    const ms = await f.run(N);
    console.log(
      `  forward to the Queen over loopback, window ${DEFAULTS.window}: ${rate(N, ms)} (${frames} ECHO frames per record, ` +
        `${Math.round((N * frames) / (ms / 1000)).toLocaleString("en")} acked frames/s, progress synced per batch)`,
    );
  } finally {
    await f.stop();
  }

  // 3. The same by round trip, window 1 against the default: RUNS samples of K records each,
  // K sized so a stop-and-wait sample takes about 2 s.
  const runs = Number(process.env.RUNS ?? 10);
  console.log(`  forwarding rate by round trip, median of ${runs} samples, window 1 against ${DEFAULTS.window} (default):`);
  for (const rtt of [0, 25, 100, 300]) {
    const k = rtt === 0 ? 200 : Math.max(1, Math.round(2000 / (frames * rtt)));
    const medians: number[] = [];
    for (const window of [1, DEFAULTS.window]) {
      const f = await forwarding(rtt, window);
      try {
        await f.run(1);
        const rates: number[] = [];
        for (let i = 0; i < runs; i++) rates.push(k / ((await f.run(k)) / 1000));
        medians.push(quantile(rates, 0.5));
      } finally {
        await f.stop();
      }
    }
    const [one, many] = medians as [number, number];
    const target = rtt === 100 ? `  target >= 3.5x: ${many / one >= 3.5 ? "met" : "MISSED"}` : "";
    console.log(
      `    RTT ${String(rtt).padStart(3)} ms (${String(k).padStart(3)} records a sample): window 1 ${
        one.toFixed(1).padStart(8)
      } records/s, ` +
        `window ${DEFAULTS.window} ${many.toFixed(1).padStart(8)} records/s (${(many / one).toFixed(2)}x)${target}`,
    );
  }
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
