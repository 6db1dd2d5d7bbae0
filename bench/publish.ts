/**
 * Publish benchmark: wire time from connect to the last ack of the mock snapshot (AUTH, ATTACH
 * and 18 ECHO frames) against the mock console running in its own process.
 *
 * 1. Loopback, default window. Target: median <= 5 ms.
 * 2. Round trips of 0, 25, 100 and 300 ms (the mock console's `--rtt-ms`, half the round trip
 *    each way, frames travelling side by side), window 1 (stop-and-wait) against the
 *    default window and the largest. Target: <= 0.6 s at 100 ms with the default window (floor:
 *    20 frames / 4 in flight x 100 ms = 0.5 s; stop-and-wait's is 2.0 s).
 * 3. A console that delays every ack (a slow server, answering one line at a time): the window
 *    cannot help there, and the reference fails both (its 200 ms read timeout is fatal).
 *
 * Run with `make bench-publish`; RUNS=N sets the sample count of each round-trip case (default
 * 10), SKIP_1S=1 skips the 1 s ack delay.
 */
import { MOCK_GPUS } from "../src/inventory/mock.ts";
import { LISTENING, spawnBridge } from "../test/spawn.ts";
import { publishOnce } from "../src/console/publish.ts";
import { MAX_WINDOW } from "../src/contract/window.ts";
import { DEFAULTS } from "../src/config/defaults.ts";
import { builtinCatalog } from "../src/models/catalog.ts";
import { buildNamespace } from "../src/contract/namespace.ts";
import { bunRuntime } from "../src/runtime/bun.ts";
import { makeSnapshot, publishLines } from "../src/contract/snapshot.ts";
import { quantile } from "./quantile.ts";

const runtime = bunRuntime();
const snap = makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()));
const lines = publishLines(snap);

/** Starts `gpu-bridge-host mock-console` in a child process and reads its port from the log. */
async function consoleProcess(flags: string[]): Promise<{ port: number; stop: () => Promise<void> }> {
  const c = spawnBridge(["mock-console", "--port", "0", "--auth-token", "bench", ...flags]);
  const port = Number((await c.waitFor(LISTENING))[1]);
  return { port, stop: async () => void (c.proc.kill("SIGINT"), await c.proc.exited) };
}

async function measure(port: number, runs: number, window: number, warmup = 0): Promise<number[]> {
  const target = { host: "127.0.0.1", port, token: "bench", ticket: "" };
  const times: number[] = [];
  for (let i = 0; i < warmup + runs; i++) {
    const r = await publishOnce(runtime.connect, target, snap, lines, { ackTimeoutMs: 5000, window });
    if (r.frames !== 20) throw new Error(`expected 20 frames, sent ${r.frames}`);
    if (i >= warmup) times.push(r.durationMs);
  }
  return times;
}

const median = (xs: number[]) => quantile(xs, 0.5);
const fmt = (xs: number[]) =>
  `median ${median(xs).toFixed(1).padStart(7)} ms, min ${Math.min(...xs).toFixed(1)}, max ${
    Math.max(...xs).toFixed(1)
  } (${xs.length} runs)`;

const runs = Number(process.env.RUNS ?? 10);
console.log(`publish of the mock snapshot (${snap.bytes.length} bytes, 20 frames), connect to last ack:`);

{
  const c = await consoleProcess([]);
  try {
    const loop = await measure(c.port, Math.max(runs, 50), DEFAULTS.window, 5);
    console.log(`  loopback, window ${DEFAULTS.window}: ${fmt(loop)}  target <= 5 ms: ${median(loop) <= 5 ? "met" : "MISSED"}`);
  } finally {
    await c.stop();
  }
}

console.log(
  `by round trip (one-way latency on the wire, both directions), window 1 against ${DEFAULTS.window} (default) and ${MAX_WINDOW}:`,
);
for (const rtt of [0, 25, 100, 300]) {
  const c = await consoleProcess(["--rtt-ms", String(rtt)]);
  try {
    const row: string[] = [];
    let stopAndWait = 0;
    for (const window of [1, DEFAULTS.window, MAX_WINDOW]) {
      const xs = await measure(c.port, runs, window, rtt === 0 ? 5 : 1);
      if (window === 1) stopAndWait = median(xs);
      row.push(`window ${window}: ${fmt(xs)}${window > 1 ? ` (${(stopAndWait / median(xs)).toFixed(2)}x)` : ""}`);
      if (rtt === 100 && window === DEFAULTS.window) row.push(`  target <= 600 ms: ${median(xs) <= 600 ? "met" : "MISSED"}`);
    }
    console.log(`  RTT ${String(rtt).padStart(3)} ms  ${row.join("\n               ")}`);
  } finally {
    await c.stop();
  }
}

console.log("a slow server (every ack delayed, lines answered one at a time), default window:");
for (const [delay, n] of process.env.SKIP_1S === undefined ? [[100, 5], [1000, 2]] : [[100, 5]]) {
  const c = await consoleProcess(["--ack-delay-ms", String(delay)]);
  try {
    const xs = await measure(c.port, n!, DEFAULTS.window);
    console.log(`  acks delayed ${String(delay).padStart(4)} ms  ${fmt(xs)}  (floor 20 x ${delay} ms = ${20 * delay!} ms)`);
  } finally {
    await c.stop();
  }
}
