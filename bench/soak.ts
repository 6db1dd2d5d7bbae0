/**
 * The soak: the daemon (the compiled binary, or Bun running src/main.ts with SOAK_APP=1) in mock
 * mode, publishing to the mock console, under a steady mixed load for SOAK_S seconds:
 *
 *   - leases granted and released ~20/s across both mock GPUs;
 *   - 2 jobs/s (vadd on 0.5-2 MiB operands), every result fetched and checked element by element;
 *   - 50 telemetry records/s (NDJSON batches of 10);
 *   - a VM-side write every 3 s (a worker breadcrumb through the mock console, as the VM would);
 *   - every 30 s a 5-16 MiB shard sealed, verified and deleted under its own lease;
 *   - 100 API reads/s (health, GPUs, leases, jobs, telemetry, bridge, metrics).
 *
 * Every SAMPLE_S seconds (default 5) it reads the daemon's VmRSS and RssAnon from
 * /proc/<pid>/status; every ROW_S seconds (60, or 5 in the short mode) it prints a row with the
 * lowest, median and highest RSS of the samples since the last row. Under this load the heap
 * swings by 50-100 MB between collections (every job parses megabytes of JSON), so a single
 * sample says more about when the collector last ran than about what is held: a least-squares
 * slope through raw samples an hour long has a standard error of tens of MB/h. What a leak moves
 * is the floor, the RSS just after a collection, so the verdict takes the slope of the rows'
 * floors (their lowest sample) over the second half; the slopes of the medians and of the raw
 * samples are printed beside it. Even the floors scatter by 10-20 MB from row to row, so a
 * half-hour slope has a standard error near 9 MB/h here: the verdict asks that growth be ruled
 * out, the slope plus twice its standard error at most the limit, rather than trusting the slope
 * alone (one hour on the same load gave -18.5 and, with a bug since fixed, +20.7 MB/h).
 *
 *   make soak                  one hour (SOAK_S=3600), a sample a minute
 *   make soak SHORT=1          ~60 s, a sample every 5 s: the CI check (correctness only)
 *   SOAK_S=300 make soak       five minutes
 *
 * Exit 1 when a job result is wrong or missing, the daemon dies, it logs an ERROR, or a request
 * gets an answer it should not; in the long mode also when the second half cannot rule out the
 * RSS floor growing faster than SOAK_MAX_SLOPE_MBH (default 10): slope + 2 standard errors.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../src/util/sha256.ts";

const repo = join(import.meta.dir, "..");
const short = (process.env.SHORT ?? "") !== "" && process.env.SHORT !== "0";
const soakS = Number(process.env.SOAK_S ?? (short ? 60 : 3600));
const sampleS = Number(process.env.SAMPLE_S ?? 5);
const rowS = Number(process.env.ROW_S ?? (short ? 5 : 60));
const maxSlope = Number(process.env.SOAK_MAX_SLOPE_MBH ?? 10);
const useApp = (process.env.SOAK_APP ?? "") !== "" && process.env.SOAK_APP !== "0";
const bin = process.env.BIN ?? join(repo, "dist", "gpu-bridge-host");
const cmd = useApp ? [process.execPath, join(repo, "src", "main.ts")] : [bin];
if (!Number.isFinite(soakS) || soakS <= 0) throw new Error(`SOAK_S must be a positive number of seconds, got ${process.env.SOAK_S}`);

const state = mkdtempSync("/tmp/gbh-soak-");
const logPath = join(state, "bridge.log");
const children: { kill(signal?: number | string): void }[] = [];
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
  if (!process.env.SOAK_KEEP) rmSync(state, { recursive: true, force: true });
});

/** Waits until `re` matches the text `read` returns, or throws after `ms`. */
async function waitText(read: () => string, re: RegExp, ms: number, what: string): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = re.exec(read());
    if (m !== null) return m;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}: ${read().slice(-2000)}`);
    await Bun.sleep(20);
  }
}
const LISTENING = /listening on (?:http:\/\/)?127\.0\.0\.1:(\d+)/;

// The mock console, its log in memory (it logs little), and the daemon, its log to a file (it
// logs a line per publish: an hour of it is tens of MB, no business in this process's heap).
const mock = Bun.spawn([...cmd, "mock-console", "--port", "0", "--auth-token", "soak"], { stdout: "ignore", stderr: "pipe", cwd: "/" });
children.push(mock);
let mockLog = "";
void (async () => {
  for await (const chunk of mock.stderr as ReadableStream<Uint8Array>) mockLog = (mockLog + new TextDecoder().decode(chunk)).slice(-65536);
})();
const mockPort = Number((await waitText(() => mockLog, LISTENING, 20_000, "the mock console"))[1]);
const bridge = Bun.spawn([
  ...cmd,
  "serve",
  "--mock",
  "--publish",
  "--interval-ms",
  "5000",
  "--tcp-port",
  String(mockPort),
  "--auth-token",
  "soak",
  "--listen",
  "127.0.0.1:0",
  "--state-dir",
  state,
  // More flags for a diagnosis run, e.g. SOAK_BRIDGE_ARGS="--log-level debug" with SOAK_KEEP=1.
  ...(process.env.SOAK_BRIDGE_ARGS ?? "").split(" ").filter((a) => a !== ""),
], { stdout: "ignore", stderr: Bun.file(logPath), cwd: "/" });
children.push(bridge);
const readLog = () => {
  try {
    return readFileSync(logPath, "utf8").slice(0, 65536);
  } catch {
    return "";
  }
};
const base = `http://127.0.0.1:${(await waitText(readLog, LISTENING, 20_000, "the bridge's API"))[1]}`;
const token = readFileSync(join(state, "api-token"), "utf8").trim();
const auth = { Authorization: `Bearer ${token}` };
const json = { ...auth, "content-type": "application/json" };

// Counters.
const c = { leases: 0, jobsOk: 0, jobsBad: 0, records: 0, vmWrites: 0, vmFailed: 0, shards: 0, reads: 0, unexpected: 0, busy: 0 };
const problems: string[] = [];
const problem = (what: string) => {
  c.unexpected++;
  if (problems.length < 20) problems.push(what);
};
let died = false;
void bridge.exited.then((code) => {
  if (!stopping) {
    died = true;
    problem(`the daemon exited (status ${code}) during the soak`);
  }
});
let stopping = false;

const started = Date.now();
const deadline = started + soakS * 1000;

/** Runs `task` `perSecond` times a second (awaited one at a time) until the deadline. */
async function paced(perSecond: number, task: (i: number) => Promise<void>): Promise<void> {
  const period = 1000 / perSecond;
  let at = Date.now();
  for (let i = 0; Date.now() < deadline && !died; i++, at += period) {
    // A loop that fell behind (a slow or loaded machine) skips what it missed rather than
    // bursting to catch up: the table shows the rates reached.
    at = Math.max(at, Date.now() - period);
    // Never past the deadline: a loop that runs every 30 s must not hold the end back.
    const wait = Math.min(at, deadline) - Date.now();
    if (wait > 0) await Bun.sleep(wait);
    if (Date.now() >= deadline) break;
    try {
      await task(i);
    } catch (error) {
      problem(`${(error as Error).message}`);
    }
  }
}

/** A request whose status must be one of `ok`; returns the response. */
async function call(method: string, path: string, ok: number[], init: RequestInit = {}): Promise<Response> {
  const res = await fetch(`${base}${path}`, { method, ...init, headers: { ...auth, ...(init.headers as Record<string, string>) } });
  if (!ok.includes(res.status)) {
    // A clone, so the caller can still read the answer it gets back.
    const body = await res.clone().text();
    problem(`${method} ${path}: ${res.status} ${body.slice(0, 200)}`);
  }
  return res;
}

const lease = async (gpu: string, worker: string, mem: number, ttl: number): Promise<string | null> => {
  const res = await call("POST", "/v1/leases", [201], {
    headers: json,
    body: JSON.stringify({ gpu_id: gpu, worker_id: worker, mem_mb: mem, streams: 1, ttl_s: ttl, priority: 1 }),
  });
  if (res.status !== 201) return null;
  c.leases++;
  return ((await res.json()) as { id: string }).id;
};
const release = async (id: string) => void (await (await call("DELETE", `/v1/leases/${id}`, [200])).text());

// Leases: ~20/s, half on each GPU.
const churn = (gpu: string) =>
  paced(10, async (i) => {
    const id = await lease(gpu, `soak-churn-${gpu}-${i % 4}`, 256, 60);
    if (id !== null) await release(id);
  });

// Jobs: 2/s, one lease per GPU held for the whole run (renewed), results checked.
const jobLeases = new Map<string, string>();
const recentJobs: string[] = [];
let jobSeq = 0;
async function job(): Promise<void> {
  const gpu = jobSeq % 2 === 0 ? "GPU-0" : "GPU-1";
  const leaseId = jobLeases.get(gpu);
  if (leaseId === undefined) return;
  const n = 65536 + Math.floor(Math.random() * (262144 - 65536));
  const ab = new Float32Array(2 * n);
  for (let i = 0; i < ab.length; i++) ab[i] = Math.random() * 1000 - 500;
  const bytes = new Uint8Array(ab.buffer);
  const name = `soak-${process.pid}-${++jobSeq}`;
  const descriptor = {
    job: name,
    kernel: "vadd",
    grid: [Math.ceil(n / 256), 1, 1],
    block: [256, 1, 1],
    bytes_hash: `sha256:${sha256Hex(bytes)}`,
    inputs: [],
    outputs: [`/worker/soak/result`],
    timeout_ms: 60_000,
    payload_b64: Buffer.from(bytes).toString("base64"),
  };
  const res = await call("POST", `/v1/leases/${leaseId}/jobs`, [202, 503, 429], { headers: json, body: JSON.stringify(descriptor) });
  if (res.status !== 202) {
    c.busy++;
    return void (await res.text());
  }
  await res.text();
  const until = Date.now() + 60_000;
  for (;;) {
    const j = (await (await call("GET", `/v1/jobs/${name}`, [200])).json()) as { state: string; detail: string; message?: string };
    if (j.state === "OK") break;
    if (j.state === "ERR" || Date.now() > until) {
      c.jobsBad++;
      return problem(`job ${name}: ${j.state} ${j.detail} ${j.message ?? ""}`);
    }
    await Bun.sleep(20);
  }
  const out = await call("GET", `/v1/jobs/${name}/result`, [200]);
  const got = new Float32Array(await out.arrayBuffer());
  let wrong = got.length === n ? -1 : 0;
  for (let i = 0; wrong < 0 && i < n; i++) if (got[i] !== Math.fround(ab[i]! + ab[n + i]!)) wrong = i;
  if (wrong >= 0) {
    c.jobsBad++;
    return problem(`job ${name}: result wrong at element ${wrong} (${got.length} of ${n} elements)`);
  }
  c.jobsOk++;
  recentJobs.push(name);
  if (recentJobs.length > 32) recentJobs.shift();
}

// Telemetry: 50 records/s in batches of 10.
const record = (i: number) =>
  JSON.stringify({
    schema_version: "gpu-telemetry/v1",
    device_id: i % 2 === 0 ? "GPU-0" : "GPU-1",
    time_window: { start_ms: Date.now() - 1000, end_ms: Date.now() },
    token_count: 100 + (i % 900),
    latency_histogram: { le_ms: [5, 10, 50, 100], counts: [i % 7, 3, 2, 1] },
  });
const telemetry = () =>
  paced(5, async (i) => {
    const body = Array.from({ length: 10 }, (_, k) => record(i * 10 + k)).join("\n") + "\n";
    const res = await call("POST", "/v1/telemetry", [202], { headers: { "content-type": "application/x-ndjson" }, body });
    await res.text();
    if (res.status === 202) c.records += 10;
  });

// The VM side: a worker breadcrumb every 3 s, written through the mock console as the VM would.
const vmWrites = () =>
  paced(1 / 3, async (i) => {
    const line = JSON.stringify({ schema: "gpu-breadcrumb/v1", event: "START", command: `soak-${i}`, status: "RUNNING" });
    const p = Bun.spawn(
      [
        ...cmd,
        "console",
        "--tcp-port",
        String(mockPort),
        "--auth-token",
        "soak",
        "echo",
        "/gpu/GPU-0/status",
        line,
        "--role",
        "worker-gpu",
        "--ticket",
        "t1",
      ],
      { stdout: "ignore", stderr: "ignore", cwd: "/" },
    );
    const killer = setTimeout(() => p.kill("SIGKILL"), 10_000);
    const code = await p.exited;
    clearTimeout(killer);
    if (code === 0) c.vmWrites++;
    else c.vmFailed++;
  });

// A 5-16 MiB shard every 30 s: sealed under its own lease, verified, deleted, the lease released.
const shards = () =>
  paced(1 / 30, async (i) => {
    const size = (5 + Math.floor(Math.random() * 12)) * 1048576;
    const data = new Uint8Array(size);
    for (let k = 0; k < size; k += 4096) data[k] = (k / 4096 + i) & 0xff;
    const id = await lease("GPU-1", "soak-shard", 32, 120);
    if (id === null) return;
    try {
      const shard = `soak-${i}`;
      const sealed = await call("POST", `/v1/leases/${id}/shards?shard_id=${shard}`, [201], {
        headers: { "content-type": "application/octet-stream" },
        body: data,
      });
      const handle = (await sealed.json()) as { digest?: string };
      if (sealed.status !== 201) return;
      if (handle.digest !== sha256Hex(data)) problem(`shard ${shard}: digest ${handle.digest}`);
      const verified = (await (await call("POST", `/v1/shards/${shard}/verify`, [200])).json()) as { ok?: boolean };
      if (verified.ok !== true) problem(`shard ${shard}: verify said ${JSON.stringify(verified)}`);
      await (await call("DELETE", `/v1/shards/${shard}`, [200, 204])).text();
      c.shards++;
    } finally {
      await release(id);
    }
  });

// Reads: 100/s over four paced loops.
const READS = ["/healthz", "/v1/gpus", "/v1/leases", "/v1/telemetry", "/v1/bridge", "/metrics", "/v1/gpus/GPU-0/status"];
const reads = (k: number) =>
  paced(25, async (i) => {
    const recent = recentJobs.at(-1 - (i % 8));
    const path = (i + k) % 8 === 7 && recent !== undefined ? `/v1/jobs/${recent}` : READS[(i + k) % READS.length]!;
    const res = await call("GET", path, [200]);
    await res.arrayBuffer();
    c.reads++;
  });

/** VmRSS and RssAnon of the daemon, in MB. */
function rss(): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${bridge.pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) / 1024;
  return { rss: kb("VmRSS"), anon: kb("RssAnon") };
}
/** The job-result gauges, where the daemon exports them. */
async function resultGauges(): Promise<string> {
  try {
    const text = await (await fetch(`${base}/metrics`)).text();
    const get = (name: string) => new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1];
    const bytes = get("gpu_bridge_job_results_bytes");
    const count = get("gpu_bridge_job_results");
    return bytes === undefined ? "" : `${(Number(bytes) / 1048576).toFixed(1)} MiB/${count ?? "?"}`;
  } catch {
    return "";
  }
}

interface Sample {
  readonly t: number;
  readonly rss: number;
  readonly anon: number;
}
/** A printed row: the samples since the previous row, summarised. */
interface Row {
  readonly t: number;
  readonly floor: number;
  readonly median: number;
  readonly high: number;
}
const samples: Sample[] = [];
const rows: Row[] = [];
let rowFrom = 0;
const header = "     t s  RSS low  RSS med RSS high  anon MB   leases  jobs ok  records  vm wr  shards    reads  errors  results";
function sample(): void {
  if (died) return;
  samples.push({ t: (Date.now() - started) / 1000, ...rss() });
}
async function row(): Promise<void> {
  sample();
  const since = samples.slice(rowFrom);
  rowFrom = samples.length;
  const sorted = since.map((x) => x.rss).sort((a, b) => a - b);
  if (sorted.length === 0) return;
  const r = { t: since.at(-1)!.t, floor: sorted[0]!, median: sorted[Math.floor(sorted.length / 2)]!, high: sorted.at(-1)! };
  rows.push(r);
  const cells = [
    r.t.toFixed(0).padStart(8),
    r.floor.toFixed(1).padStart(8),
    r.median.toFixed(1).padStart(8),
    r.high.toFixed(1).padStart(8),
    since.at(-1)!.anon.toFixed(1).padStart(8),
    String(c.leases).padStart(8),
    String(c.jobsOk).padStart(8),
    String(c.records).padStart(8),
    String(c.vmWrites).padStart(6),
    String(c.shards).padStart(7),
    String(c.reads).padStart(8),
    String(c.unexpected).padStart(7),
    (await resultGauges()).padStart(9),
  ];
  console.log(cells.join(" "));
}

console.log(`soak: ${soakS} s${short ? " (short)" : ""} against ${useApp ? "the app (bun src/main.ts)" : bin}, state in ${state}`);
console.log(header);
await row();

// Job leases, renewed every 60 s.
for (const gpu of ["GPU-0", "GPU-1"]) {
  const id = await lease(gpu, `soak-jobs-${gpu}`, 64, 300);
  if (id !== null) jobLeases.set(gpu, id);
}
const renew = () =>
  paced(1 / 60, async (i) => {
    if (i === 0) return;
    for (const id of jobLeases.values()) await (await call("POST", `/v1/leases/${id}/renew`, [200])).text();
  });
const sampler = paced(1 / sampleS, async (i) => {
  if (i === 0) return;
  if (Math.floor((i * sampleS) / rowS) > Math.floor(((i - 1) * sampleS) / rowS)) await row();
  else sample();
});
await Promise.all([
  churn("GPU-0"),
  churn("GPU-1"),
  paced(2, job),
  telemetry(),
  vmWrites(),
  shards(),
  reads(0),
  reads(2),
  reads(4),
  reads(6),
  renew(),
  sampler,
]);
await row();

// Stop the daemon cleanly: it must exit 0.
stopping = true;
bridge.kill("SIGTERM");
const code = await Promise.race([bridge.exited, Bun.sleep(10_000).then(() => "hung")]);
if (code !== 0 && !died) problem(`the daemon's clean stop ended with ${code}`);

// Log lines at ERROR (read line by line: the file can be large).
let errors = 0;
const firstErrors: string[] = [];
const log = readFileSync(logPath, "utf8");
for (const line of log.split("\n")) {
  if (/^\S+ ERROR /.test(line)) {
    errors++;
    if (firstErrors.length < 5) firstErrors.push(line.slice(0, 300));
  }
}

// Verdict.
/** Least-squares slope of `y` against time and its standard error, in MB/h. */
const fit = <T extends { t: number }>(xs: readonly T[], y: (x: T) => number): { slope: number; se: number } => {
  if (xs.length < 3) return { slope: 0, se: Infinity };
  const mx = xs.reduce((s, x) => s + x.t, 0) / xs.length;
  const my = xs.reduce((s, x) => s + y(x), 0) / xs.length;
  const num = xs.reduce((s, x) => s + (x.t - mx) * (y(x) - my), 0);
  const den = xs.reduce((s, x) => s + (x.t - mx) ** 2, 0);
  if (den === 0) return { slope: 0, se: Infinity };
  const b = num / den;
  const residuals = xs.reduce((s, x) => s + (y(x) - my - b * (x.t - mx)) ** 2, 0);
  return { slope: b * 3600, se: Math.sqrt(residuals / (xs.length - 2) / den) * 3600 };
};
const mbh = <T extends { t: number }>(xs: readonly T[], y: (x: T) => number) => fit(xs, y).slope;
const half = rows.at(-1)!.t / 2;
const secondRows = rows.filter((r) => r.t >= half);
const secondSamples = samples.filter((x) => x.t >= half);
const { slope, se } = fit(secondRows, (r) => r.floor);
const medianSlope = mbh(secondRows, (r) => r.median);
const rawSlope = mbh(secondSamples, (x) => x.rss);
const first = samples[0]!;
const last = samples.at(-1)!;
const peak = Math.max(...samples.map((s) => s.rss));
const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(1)}`;
const elapsed = (Date.now() - started) / 1000;
console.log("");
console.log(
  `load: ${(c.leases / elapsed).toFixed(1)} leases/s, ${
    (c.jobsOk / elapsed).toFixed(2)
  } jobs/s OK (${c.jobsBad} wrong or failed, ${c.busy} refused busy), ` +
    `${(c.records / elapsed).toFixed(1)} records/s, ${c.vmWrites} VM writes (${c.vmFailed} failed), ${c.shards} shards, ${
      (c.reads / elapsed).toFixed(1)
    } reads/s`,
);
console.log(
  `RSS: first ${first.rss.toFixed(1)} MB, last ${last.rss.toFixed(1)} MB, peak ${peak.toFixed(1)} MB; floor ${
    Math.min(...secondRows.map((r) => r.floor)).toFixed(1)
  }-${Math.max(...secondRows.map((r) => r.floor)).toFixed(1)} MB over the second half; ` +
    `second-half slopes: floor ${signed(slope)} MB/h (standard error ${se.toFixed(1)}) over ${secondRows.length} rows, median ${
      signed(medianSlope)
    } MB/h, ` +
    `raw ${signed(rawSlope)} MB/h over ${secondSamples.length} samples`,
);
console.log(
  `daemon log: ${(statSync(logPath).size / 1048576).toFixed(1)} MB, ${errors} ERROR lines${
    errors > 0 ? `: ${firstErrors.join(" | ")}` : ""
  }`,
);
const failures: string[] = [];
if (died) failures.push("the daemon died");
if (c.jobsBad > 0) failures.push(`${c.jobsBad} jobs wrong or failed`);
if (c.jobsOk === 0) failures.push("no job completed");
if (c.unexpected > 0) failures.push(`${c.unexpected} unexpected answers: ${problems.join("; ")}`);
if (errors > 0) failures.push(`${errors} ERROR lines in the daemon's log`);
if (c.vmFailed > 0) failures.push(`${c.vmFailed} VM-side writes failed`);
const upper = slope + 2 * se;
const flat = upper <= maxSlope;
if (!short && !flat) {
  failures.push(
    `growth of the RSS floor above ${maxSlope} MB/h is not ruled out: ${signed(slope)} MB/h, standard error ${se.toFixed(1)}`,
  );
}
console.log(
  `verdict: ${failures.length === 0 ? "PASS" : "FAIL"}; RSS floor ${flat ? "not growing" : "may be growing"} (slope + 2 SE = ${
    signed(upper)
  } MB/h, limit ${maxSlope}${short ? ", informational in the short mode" : ""})`,
);
for (const f of failures) console.log(`  - ${f}`);
process.exit(failures.length === 0 ? 0 : 1);
