/**
 * Log volume at INFO under load: the daemon (mock inventory, publishing to the mock console)
 * with leases granted and released LEASES_PER_S times a second across both GPUs and a VM-side
 * write every 3 s, for SECONDS seconds on real timers. Prints the bytes and lines logged, the
 * rate extrapolated to an hour, and the commonest kinds of line (their text up to the first digit).
 *
 * Run with `make bench-logs`; DURATION_S=N and LEASES_PER_S=N change the load (defaults 30, 20).
 */
import { startMockConsole } from "../mock/console/server.ts";
import { ConsoleConnection } from "../mock/console/core.ts";
import { mockBackend } from "../src/inventory/mock.ts";
import { parseCommand } from "../src/cli/options.ts";
import { createBridge } from "../src/app/bridge.ts";
import { createLogger } from "../src/util/log.ts";
import { bunRuntime } from "../src/runtime/bun.ts";
import { tempDir } from "../test/helpers.ts";

const SECONDS = Number(process.env.DURATION_S ?? 30);
const RATE = Number(process.env.LEASES_PER_S ?? 20);
const runtime = bunRuntime();

let bytes = 0;
let count = 0;
const kinds = new Map<string, { lines: number; bytes: number }>();
const log = createLogger({
  level: "info",
  write: (line) => {
    bytes += line.length;
    count++;
    // `<time> <LEVEL> <scope>: <message>`: the kind is the level, scope and message up to a digit.
    const kind = line.slice(25).replace(/[0-9].*$/s, "").slice(0, 90).trim();
    const k = kinds.get(kind) ?? { lines: 0, bytes: 0 };
    k.lines++;
    k.bytes += line.length;
    kinds.set(kind, k);
  },
});

const mock = await startMockConsole(runtime, { token: "bench" });
const state = tempDir("gbh-logs-");
const c = parseCommand([
  "serve",
  "--mock",
  "--publish",
  "--tcp-port",
  String(mock.port),
  "--auth-token",
  "bench",
  "--runner",
  "cpu",
  "--state-dir",
  state.path,
], {});
if (c.kind !== "serve") throw new Error(`parsed as ${c.kind}`);
const daemon = await createBridge(c.options, { runtime, log, backend: mockBackend() });
const vm = new ConsoleConnection(mock.state);
vm.handle("AUTH bench");
vm.handle("ATTACH worker-gpu bench");

const started = performance.now();
let n = 0;
const live: string[] = [];
const tick = setInterval(() => {
  // Grant one, release the oldest once a few are live: a churn of about RATE changes a second.
  const gpu = `GPU-${n % 2}`;
  try {
    live.push(daemon.leases.grant({ gpu_id: gpu, worker_id: `w-${n}`, mem_mb: 64, streams: 1, ttl_s: 600, priority: 1 }).id);
  } catch {
    // refused (full): the release below makes room
  }
  n++;
  if (live.length > 4) daemon.leases.release(live.shift()!, "done");
}, 1000 / (RATE / 2));
const crumbs = setInterval(() => {
  vm.handle(`ECHO /gpu/GPU-${n % 2}/status {"schema":"gpu-breadcrumb/v1","event":"START","command":"c${n}","status":"RUNNING"}`);
}, 3000);
await Bun.sleep(SECONDS * 1000);
clearInterval(tick);
clearInterval(crumbs);
const elapsed = (performance.now() - started) / 1000;
const publishes = daemon.publisher?.stats.publishes ?? 0;
await daemon.stop();
await mock.close();
state.cleanup();

const perHour = (x: number) => (x * 3600) / elapsed;
console.log(`${elapsed.toFixed(1)} s at about ${RATE} lease changes/s, a VM write every 3 s; ${publishes} publishes`);
console.log(
  `  logged at INFO: ${count} lines, ${bytes} bytes = ${(perHour(bytes) / 1e6).toFixed(2)} MB/h, ${Math.round(perHour(count))} lines/h`,
);
for (const [kind, k] of [...kinds].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 8)) {
  console.log(`  ${String(k.lines).padStart(6)} lines ${String(k.bytes).padStart(8)} B  ${kind}`);
}
