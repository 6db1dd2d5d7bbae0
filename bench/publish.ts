/**
 * Publish benchmark: wire time from connect to the last ack of the mock snapshot (AUTH, ATTACH
 * and 18 ECHO frames) against the mock console running in its own process on loopback.
 * Target: median <= 5 ms. Then the same against a console that delays every ack by 100 ms and
 * by 1 s: the reference bridge fails both (its 200 ms read timeout is fatal).
 * Run with `make bench-publish`; RUNS=N sets the loopback sample count (default 50).
 */
import { MOCK_GPUS } from "../src/inventory/mock.ts";
import { LISTENING, spawnBridge } from "../test/spawn.ts";
import { publishOnce } from "../src/console/publish.ts";
import { builtinCatalog } from "../src/models/catalog.ts";
import { buildNamespace } from "../src/contract/namespace.ts";
import { bunRuntime } from "../src/runtime/bun.ts";
import { makeSnapshot, publishLines } from "../src/contract/snapshot.ts";
import { quantile } from "./quantile.ts";

const runtime = bunRuntime();
const snap = makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()));
const lines = publishLines(snap);

/** Starts `gpu-bridge-host mock-console` in a child process and reads its port from the log. */
async function consoleProcess(ackDelayMs: number): Promise<{ port: number; stop: () => Promise<void> }> {
  const c = spawnBridge(["mock-console", "--port", "0", "--auth-token", "bench", "--ack-delay-ms", String(ackDelayMs)]);
  const port = Number((await c.waitFor(LISTENING))[1]);
  return { port, stop: async () => void (c.proc.kill("SIGINT"), await c.proc.exited) };
}

async function measure(ackDelayMs: number, runs: number, ackTimeoutMs: number): Promise<number[]> {
  const c = await consoleProcess(ackDelayMs);
  const target = { host: "127.0.0.1", port: c.port, token: "bench", ticket: "" };
  const times: number[] = [];
  try {
    if (ackDelayMs === 0) for (let i = 0; i < 5; i++) await publishOnce(runtime.connect, target, snap, lines); // warm-up
    for (let i = 0; i < runs; i++) {
      const r = await publishOnce(runtime.connect, target, snap, lines, { ackTimeoutMs });
      if (r.frames !== 20) throw new Error(`expected 20 frames, sent ${r.frames}`);
      times.push(r.durationMs);
    }
  } finally {
    await c.stop();
  }
  return times;
}

const median = (xs: number[]) => quantile(xs, 0.5);
const fmt = (xs: number[]) =>
  `median ${median(xs).toFixed(2)} ms, min ${Math.min(...xs).toFixed(2)}, max ${Math.max(...xs).toFixed(2)} (${xs.length} runs)`;

const runs = Number(process.env.RUNS ?? 50);
console.log(`publish of the mock snapshot (${snap.bytes.length} bytes, 20 frames), connect to last ack:`);
const loop = await measure(0, runs, 5000);
console.log(`  loopback             ${fmt(loop)}  target <= 5 ms: ${median(loop) <= 5 ? "met" : "MISSED"}`);
const slow = await measure(100, 5, 5000);
console.log(`  acks delayed 100 ms  ${fmt(slow)}  (floor 20 x 100 ms = 2000 ms)`);
if (process.env.SKIP_1S === undefined) {
  const slower = await measure(1000, 2, 5000);
  console.log(`  acks delayed 1 s     ${fmt(slower)}  (floor 20 x 1 s = 20000 ms)`);
}
