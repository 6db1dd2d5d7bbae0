/**
 * Idle memory: the compiled daemon in mock mode (API on, publishing to the compiled mock
 * console every second), left to settle, then its resident set read from /proc. Also the
 * compiled hello-world floor of the same Bun, so the bridge's own share is visible.
 * Run with `make bench-rss`; SETTLE_MS=N overrides the settle time. Goal: 40 MB.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LISTENING, spawnBridge } from "../test/spawn.ts";

const repo = join(import.meta.dir, "..");
const bin = process.env.BIN ?? join(repo, "dist", "gpu-bridge-host");
const settleMs = Number(process.env.SETTLE_MS ?? 5000);

/** VmRSS, RssAnon and RssFile of `pid`, in MB. */
function rss(pid: number): { rss: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) / 1024;
  return { rss: kb("VmRSS"), anon: kb("RssAnon"), file: kb("RssFile") };
}
const fmt = (m: { rss: number; anon: number; file: number }) =>
  `${m.rss.toFixed(1)} MB (anon ${m.anon.toFixed(1)}, file ${m.file.toFixed(1)})`;

const state = mkdtempSync("/tmp/gbh-rss-");
const children: { kill(): void }[] = [];
process.on("exit", () => {
  for (const c of children) c.kill();
  rmSync(state, { recursive: true, force: true });
});

// The floor: a compiled program that only waits.
const benchDir = join(repo, "dist", "bench");
mkdirSync(benchDir, { recursive: true });
writeFileSync(join(benchDir, "idle.ts"), "setInterval(() => {}, 1000);\n");
const flags = (process.env.COMPILE_FLAGS ?? "--compile --minify --bytecode").split(/\s+/).filter(Boolean);
const built = Bun.spawnSync([process.execPath, "build", ...flags, join(benchDir, "idle.ts"), "--outfile", join(benchDir, "idle")]);
if (built.exitCode !== 0) throw new Error(`Cannot build the idle floor: ${built.stderr.toString()}`);
const floor = Bun.spawn([join(benchDir, "idle")]);
children.push(floor);

const mock = spawnBridge(["mock-console", "--port", "0", "--auth-token", "bench"], [bin]);
children.push(mock.proc);
const mockPort = Number((await mock.waitFor(/listening on (?:http:\/\/)?127\.0\.0\.1:(\d+)/))[1]);
const bridge = spawnBridge(
  [
    "serve",
    "--mock",
    "--publish",
    "--interval-ms",
    "1000",
    "--tcp-port",
    String(mockPort),
    "--auth-token",
    "bench",
    "--listen",
    "127.0.0.1:0",
    "--state-dir",
    state,
  ],
  [bin],
);
children.push(bridge.proc);
const port = Number((await bridge.waitFor(LISTENING, 15_000))[1]);
await bridge.waitFor(/published \d+ bytes/, 15_000);
// One of each request an operator or Prometheus makes, then quiet.
for (const path of ["/healthz", "/v1/gpus", "/metrics", "/v1/telemetry"]) await (await fetch(`http://127.0.0.1:${port}${path}`)).text();
await Bun.sleep(settleMs);
const first = rss(bridge.proc.pid);
await Bun.sleep(2000);
const idle = rss(bridge.proc.pid);
console.log(`idle RSS, compiled daemon (mock, API, publishing every 1 s), after ${settleMs / 1000 + 2} s: ${fmt(idle)}`);
console.log(`  two seconds earlier: ${fmt(first)}`);
console.log(`  floor, a compiled Bun program that only waits: ${fmt(rss(floor.pid))}`);
console.log(`  goal: 40 MB`);
if (process.env.SMAPS) {
  // Where the resident pages are: the biggest mappings by Rss.
  const maps = readFileSync(`/proc/${bridge.proc.pid}/smaps`, "utf8").split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  const rows = maps.map((m) => ({ head: m.split("\n")[0]!, rss: Number(/^Rss:\s+(\d+)/m.exec(m)?.[1] ?? 0) })).sort((a, b) =>
    b.rss - a.rss
  );
  for (const r of rows.slice(0, 12)) console.log(`  ${String(r.rss).padStart(7)} kB  ${r.head}`);
}
process.exit(0);
