/**
 * Job cancellation under load: jobs with operands from 0 bytes to the 16 MiB maximum, until N
 * (default 1,000) were ended by their cancellation (within 3N tries), each ended early by a random one of the ways a job can end (its `timeout_ms` of a
 * few ms, a DELETE of its lease, RESET in ctl, its lease's 1 s TTL) after a random delay, so
 * the end lands while it is queued, while its operands are written to the child, while it runs
 * or while its result comes back; every 250 jobs the daemon is stopped (SIGTERM) with jobs in
 * flight and started again. Around it, a steady load of API reads and lease churn. The daemon
 * is the compiled binary (BIN=..., default dist/gpu-bridge-host) or, with CANCEL_APP=1, Bun
 * running src/main.ts; loopback only.
 *
 * Prints the cancellations by way and outcome, the daemon's crashes (must be 0), and each
 * stop's time from SIGTERM to exit with children running. `make bench-cancel`; N=... sets
 * the count, WORKERS=... the concurrency (default 4).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../src/util/sha256.ts";
import { alive, kernelChildren } from "../test/spawn.ts";

const repo = join(import.meta.dir, "..");
const total = Number(process.env.N ?? 1000);
const workers = Number(process.env.WORKERS ?? 4);
const useApp = (process.env.CANCEL_APP ?? "") !== "" && process.env.CANCEL_APP !== "0";
const cmd = useApp ? [process.execPath, join(repo, "src", "main.ts")] : [process.env.BIN ?? join(repo, "dist", "gpu-bridge-host")];
const STOP_EVERY = 250;

const state = mkdtempSync("/tmp/gbh-cancel-");
let bridge: ReturnType<typeof Bun.spawn> | null = null;
process.on("exit", () => {
  bridge?.kill("SIGKILL");
  rmSync(state, { recursive: true, force: true });
});

let base = "";
let headers: Record<string, string> = {};
let crashes = 0;
let stopping = false;

async function start(): Promise<void> {
  const p = Bun.spawn([...cmd, "serve", "--mock", "--listen", "127.0.0.1:0", "--state-dir", state], {
    stdout: "ignore",
    stderr: "pipe",
    cwd: "/",
    // A compiled binary run as Bun (BUN_BE_BUN=1) must not pass that on to the daemon it starts.
    env: { ...process.env, BUN_BE_BUN: undefined },
  });
  bridge = p;
  let log = "";
  void (async () => {
    for await (const c of p.stderr as ReadableStream<Uint8Array>) log = (log + new TextDecoder().decode(c)).slice(-65536);
  })();
  void p.exited.then((code) => {
    if (!stopping) {
      crashes++;
      console.log(`the daemon died (status ${code}): ${log.slice(-1500)}`);
    }
  });
  const deadline = Date.now() + 20_000;
  let m: RegExpExecArray | null = null;
  while ((m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log)) === null) {
    if (Date.now() > deadline || p.exitCode !== null) throw new Error(`the daemon did not start: ${log}`);
    await Bun.sleep(20);
  }
  base = `http://127.0.0.1:${m[1]}`;
  headers = { authorization: `Bearer ${readFileSync(join(state, "api-token"), "utf8").trim()}`, "content-type": "application/json" };
}

/** SIGTERM with jobs in flight: the time to exit, and children left alive. */
async function stop(): Promise<{ ms: number; running: number; left: number }> {
  const p = bridge!;
  const running = kernelChildren(p.pid);
  stopping = true;
  const t0 = performance.now();
  p.kill("SIGTERM");
  const code = await p.exited;
  const ms = performance.now() - t0;
  stopping = false;
  if (code !== 0) crashes++;
  return { ms, running: running.length, left: running.filter(alive).length };
}

const SIZES = [0, 8, 65536, 1 << 20, 4 << 20, 16 << 20];
const WAYS = ["timeout", "release", "reset", "ttl"] as const;
type Way = (typeof WAYS)[number] | "shutdown";
const tally = new Map<string, number>();
const count = (way: Way, outcome: string): void => void tally.set(`${way} ${outcome}`, (tally.get(`${way} ${outcome}`) ?? 0) + 1);
let done = 0;
let accepted = 0;
let stuck = 0;
let seq = 0;
let gate: Promise<void> = Promise.resolve();

function descriptor(id: string, bytes: number, timeoutMs: number): string {
  const ops = new Uint8Array(bytes);
  return JSON.stringify({
    job: id,
    kernel: "vadd",
    grid: [1, 1, 1],
    block: [1, 1, 1],
    bytes_hash: `sha256:${sha256Hex(ops)}`,
    inputs: [],
    outputs: [],
    timeout_ms: timeoutMs,
    payload_b64: Buffer.from(ops).toString("base64"),
  });
}

async function lease(gpu: string, worker: string, ttl: number): Promise<string | null> {
  for (let i = 0; i < 50; i++) {
    const res = await fetch(`${base}/v1/leases`, {
      method: "POST",
      headers,
      body: JSON.stringify({ gpu_id: gpu, worker_id: worker, mem_mb: 1024, streams: 2, ttl_s: ttl, priority: 1 }),
    }).catch(() => null);
    if (res?.status === 201) return ((await res.json()) as { id: string }).id;
    await res?.text();
    await Bun.sleep(20);
  }
  return null;
}

/** One job ended early by `way`; resolves with its outcome. */
async function one(w: number): Promise<void> {
  await gate;
  // RESET ends every lease on its GPU: only the GPU-1 worker uses it, the others stay on GPU-0.
  const gpu = w === 0 ? "GPU-1" : "GPU-0";
  const ways = w === 0 ? WAYS : WAYS.filter((x) => x !== "reset");
  const way = ways[Math.floor(Math.random() * ways.length)]!;
  const size = SIZES[Math.floor(Math.random() * SIZES.length)]!;
  const delay = Math.floor(Math.random() * 40);
  const id = `c${++seq}-${size}`;
  const l = await lease(gpu, `cancel-${w}`, way === "ttl" ? 1 : 600);
  if (l === null) return count(way, "no lease");
  // The 1 s TTL runs out at a random point of the job's life, not always before it starts.
  if (way === "ttl") await Bun.sleep(Math.floor(Math.random() * 400));
  const res = await fetch(`${base}/v1/leases/${l}/jobs`, {
    method: "POST",
    headers,
    body: descriptor(id, size, way === "timeout" ? 1 + delay : 120_000),
  })
    .catch(() => null);
  const status = res?.status ?? 0;
  await res?.text();
  if (status !== 202) {
    // 0 bytes of operands is refused up front (422); a lease whose TTL ran out first, 403.
    count(way, status === 422 ? "refused (invalid operands)" : status === 403 ? "lease ended before submission" : `refused (${status})`);
    await fetch(`${base}/v1/leases/${l}`, { method: "DELETE", headers }).then((r) => r.text()).catch(() => {});
    return;
  }
  await Bun.sleep(delay);
  if (way === "release") await fetch(`${base}/v1/leases/${l}`, { method: "DELETE", headers }).then((r) => r.text()).catch(() => {});
  if (way === "reset") {
    await fetch(`${base}/v1/gpus/${gpu}/ctl`, { method: "POST", headers: { ...headers, "content-type": "text/plain" }, body: "RESET" })
      .then((r) => r.text()).catch(() => {});
  }
  const until = Date.now() + 60_000;
  let j = { state: "", detail: "" };
  while (!["OK", "ERR"].includes(j.state) && Date.now() < until) {
    await Bun.sleep(10);
    const r = await fetch(`${base}/v1/jobs/${id}`).catch(() => null);
    if (r?.status === 200) j = (await r.json()) as typeof j;
    else await r?.text();
  }
  count(way, j.state === "OK" ? "finished first" : j.state === "ERR" ? j.detail : "did not end");
  if (j.state !== "OK" && j.state !== "ERR") stuck++;
  accepted++;
  if (j.state === "ERR") done++;
  await fetch(`${base}/v1/leases/${l}`, { method: "DELETE", headers }).then((r) => r.text()).catch(() => {});
}

await start();
const t0 = performance.now();
const stops: { ms: number; running: number; left: number }[] = [];
let loadOn = true;
// The load: API reads and lease churn on GPU-0, paced, for as long as the run lasts.
const load = (async () => {
  const paths = ["/healthz", "/v1/gpus", "/v1/leases", "/metrics", "/v1/gpus/GPU-0/status"];
  for (let i = 0; loadOn; i++) {
    await Bun.sleep(20);
    if (stopping) continue;
    await fetch(`${base}${paths[i % paths.length]}`).then((r) => r.arrayBuffer()).catch(() => {});
    if (i % 5 === 0) {
      const l = await fetch(`${base}/v1/leases`, {
        method: "POST",
        headers,
        body: JSON.stringify({ gpu_id: "GPU-0", worker_id: `churn-${i % 3}`, mem_mb: 64, streams: 1, ttl_s: 60, priority: 1 }),
      }).then((r) => r.json() as Promise<{ id?: string }>).catch(() => ({ id: undefined }));
      if (l.id !== undefined) await fetch(`${base}/v1/leases/${l.id}`, { method: "DELETE", headers }).then((r) => r.text()).catch(() => {});
    }
  }
})();

// Until N jobs were ended by their cancellation (a job that finished first, or was refused, does
// not count), within 3N tries.
let next = 0;
await Promise.all(Array.from({ length: workers }, async (_, w) => {
  while (done < total && next < 3 * total) {
    const n = next++;
    if (n > 0 && n % STOP_EVERY === 0) {
      // A stop with jobs in flight: this worker starts three slow ones, then SIGTERMs.
      let release!: () => void;
      gate = new Promise((r) => (release = r));
      const l = await lease("GPU-1", "cancel-stop", 600);
      for (let k = 0; k < 3 && l !== null; k++) {
        const id = `stop-${n}-${k}`;
        await fetch(`${base}/v1/leases/${l}/jobs`, { method: "POST", headers, body: descriptor(id, 16 << 20, 120_000) }).then((r) =>
          r.text()
        );
      }
      const until = Date.now() + 10_000;
      while (bridge !== null && kernelChildren(bridge.pid).length === 0 && Date.now() < until) await Bun.sleep(5);
      const s = await stop();
      stops.push(s);
      count("shutdown", s.left === 0 ? "SHUTDOWN, no child left" : `${s.left} children left alive`);
      await start();
      release();
    }
    await one(w);
    if (n % 50 === 49) {
      console.log(`${n + 1} tried, ${done} / ${total} ended by their cancellation (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
  }
}));
loadOn = false;
await load;
stops.push(await stop());
const elapsed = (performance.now() - t0) / 1000;

console.log("");
console.log(
  `${next} jobs tried in ${
    elapsed.toFixed(0)
  } s, ${workers} at a time, under API and lease load: ${accepted} accepted, ${done} of them ended early by their cancellation`,
);
for (const [k, v] of [...tally].sort()) console.log(`  ${k.padEnd(40)} ${v}`);
console.log(
  `stops (SIGTERM to exit, with job children running): ${
    stops.map((s) => `${s.ms.toFixed(0)} ms (${s.running} running, ${s.left} left)`).join(", ")
  }`,
);
console.log(`daemon crashes: ${crashes}`);
if (stuck > 0) console.log(`jobs that never ended: ${stuck}`);
process.exit(crashes === 0 && stuck === 0 && stops.every((s) => s.left === 0) ? 0 : 1);
