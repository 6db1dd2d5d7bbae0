/**
 * API benchmark: throughput and p99 latency of GET /v1/gpus and GET /metrics over loopback,
 * against the compiled binary (`serve --mock`), with wrk as the load generator.
 * Targets on the 2-core machine: >= 20,000 requests/s and p99 <= 5 ms.
 * Run with `make bench-api` (installs wrk from Debian's packages if missing); SECONDS=N per route.
 */
import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { LISTENING, spawnBridge } from "../test/spawn.ts";

const repo = join(import.meta.dir, "..");
const bin = process.env.BIN ?? join(repo, "dist", "gpu-bridge-host");
const seconds = Number(process.env.SECONDS ?? 10);
const wrk = Bun.which("wrk");
if (wrk === null) throw new Error("wrk is not installed: run 'make bench-api', or apt-get install wrk");

const state = mkdtempSync(join(tmpdir(), "gbh-bench-api-"));
const bridge = spawnBridge(["serve", "--mock", "--listen", "127.0.0.1:0", "--state-dir", state], [bin]);
const server = bridge.proc;
const port = (await bridge.waitFor(LISTENING))[1];

/** Converts wrk's "1.23ms" / "456.00us" / "1.2s" to milliseconds. */
const ms = (t: string) => {
  const m = /^([\d.]+)(us|ms|s)$/.exec(t.trim());
  if (m === null) return NaN;
  return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
};

console.log(`API over loopback, compiled binary, wrk -t1 -c32 -d${seconds}s --latency (2-core machine: load and server share it)`);
try {
  for (const path of ["/v1/gpus", "/metrics"]) {
    const url = `http://127.0.0.1:${port}${path}`;
    Bun.spawnSync([wrk, "-t1", "-c32", "-d2s", url]); // warm-up
    const out = Bun.spawnSync([wrk, "-t1", "-c32", `-d${seconds}s`, "--latency", url]).stdout.toString();
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
    const p99 = ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? "");
    const p50 = ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? "");
    const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? "0";
    console.log(
      `  GET ${path.padEnd(9)} ${Math.round(rps).toLocaleString("en")} req/s, p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, ` +
        `non-2xx ${errors}   targets >= 20,000 req/s: ${rps >= 20_000 ? "met" : "MISSED"}, p99 <= 5 ms: ${p99 <= 5 ? "met" : "MISSED"}`,
    );
  }
} finally {
  server.kill("SIGTERM");
  await server.exited;
  rmSync(state, { recursive: true, force: true });
}
