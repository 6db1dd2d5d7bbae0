/**
 * The VM talking back (docs/protocol.md section 12), measured against the faithful mock VM, the bridge's daemon
 * and the console in one process (one clock for both ends):
 *
 * 1. From a job's completion in the bridge (its OK status line logged) to that line being
 *    readable in the VM's /gpu/<id>/status: it goes as one ECHO append. Loopback, and with the
 *    link at 100 ms round trip (faults.latencyMs = 50 each way).
 * 2. The window a full snapshot still leaves (what only a snapshot can change, or a line over
 *    the 128-byte echo payload): from the read-back of the VM's files to the snapshot replacing
 *    them. A VM write landing in it is lost; appends have no such window.
 * 3. The idle read-back's link cost (CATs of every GPU's ctl, lease, status and job), in frames
 *    and bytes per minute at the default period, with the mock's two GPUs.
 * 4. Lease churn: at 1, 10 and 20 lease changes a second (each record is over one echo payload,
 *    so only a snapshot carries it), the VM's own clients write all the while (every 50 ms a
 *    breadcrumb, every fifth time a Queen grant of a 1 s lease instead); VM writes acknowledged vs kept (read by the bridge, or still in
 *    the VM at the end), snapshots a second, and the delay of a lease line reaching the VM.
 *
 * Run with `make bench-vmback`; RUNS=N sets the samples per case (default 20), CHURN_S the
 * seconds of each churn case (default 10), RATES the lease changes a second (default 1,10,20),
 * WINDOW the console window (default --window's), ONLY=churn runs the churn cases alone. Each churn case says where its lost writes went
 * (bench/vmback-losses.ts).
 */
import { type MockConsole, startMockConsole } from "../mock/console/server.ts";
import { ConsoleConnection } from "../mock/console/core.ts";
import { mockBackend } from "../src/inventory/mock.ts";
import { parseCommand } from "../src/cli/options.ts";
import { type Bridge, createBridge } from "../src/app/bridge.ts";
import { createLogger } from "../src/util/log.ts";
import { bunRuntime } from "../src/runtime/bun.ts";
import { sha256Hex } from "../src/util/sha256.ts";
import { DEFAULTS } from "../src/config/defaults.ts";
import { quantile } from "./quantile.ts";
import { describeLosses, LossLedger } from "./vmback-losses.ts";

const runtime = bunRuntime();
const RUNS = Number(process.env.RUNS ?? 20);
const log = createLogger({ level: "error", write: () => {} });

async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await Bun.sleep(1);
  }
}

async function setup(
  latencyMs: number,
  readbackMs: number,
  logger = log,
): Promise<{ mock: MockConsole; daemon: Bridge }> {
  const mock = await startMockConsole(runtime, { token: "bench" });
  mock.state.faults.latencyMs = latencyMs;
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
    "--readback-ms",
    String(readbackMs),
    "--ack-timeout-ms",
    "10000",
    ...(process.env.WINDOW !== undefined ? ["--window", process.env.WINDOW] : []),
  ], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const daemon = await createBridge(c.options, { runtime, log: logger, backend: mockBackend() }, { noJournal: true });
  await until(() => mock.state.publishes === 1, 10_000, "the first publish");
  return { mock, daemon };
}

async function teardown(s: { mock: MockConsole; daemon: Bridge }): Promise<void> {
  await s.daemon.stop();
  await s.mock.close();
}

const ms = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "n/a" : `${x.toFixed(1)} ms`);

/** 1. Job completion -> OK line in the VM. */
async function okLatency(latencyMs: number): Promise<number[]> {
  const s = await setup(latencyMs, 60_000); // no idle poll in the way
  const { mock, daemon } = s;
  const lease = daemon.host.grant({ gpu_id: "GPU-0", worker_id: "bench", mem_mb: 1024, streams: 1, ttl_s: 3600, priority: 0 });
  await until(() => mock.state.read("/gpu/GPU-0/lease")?.includes("bench") === true, 10_000, "the lease in the VM");
  const logged = new Map<string, number>();
  const landed = new Map<string, number>();
  const sink = daemon.host.onLogLine!;
  daemon.host.onLogLine = (gpu, file, text) => {
    if (text.includes('"state":"OK"')) logged.set(text, performance.now());
    sink(gpu, file, text);
  };
  mock.state.on((e) => {
    if (e.type === "vm" && e.event.type === "appended" && e.event.line.includes('"state":"OK"')) {
      landed.set(e.event.line, performance.now());
    }
  });
  const operands = Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]).buffer);
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const id = `job-${i.toString(16).padStart(16, "0")}`;
    daemon.host.submitJob(lease.id, {
      job: id,
      kernel: "vadd",
      grid: [1, 1, 1],
      block: [1, 1, 1],
      bytes_hash: `sha256:${sha256Hex(operands)}`,
      inputs: [],
      outputs: ["/worker/bench/result"],
      timeout_ms: 10_000,
      payload_b64: operands.toString("base64"),
    });
    const line = `{"job":"${id}","state":"OK","detail":"completed"}`;
    await until(() => landed.has(line), 20_000, `the OK line of ${id}`);
    times.push(landed.get(line)! - logged.get(line)!);
  }
  await teardown(s);
  return times;
}

/**
 * 2. The window of a full snapshot: from the read sent with its `end` (start: the first file's
 * CAT as the VM answered it; end: the last one's) to the snapshot landing. A VM write in a file
 * after its CAT there and before the landing is erased unseen.
 */
async function snapshotWindow(latencyMs: number): Promise<{ first: number[]; last: number[]; bytes: number[] }> {
  const s = await setup(latencyMs, 60_000);
  const { mock, daemon } = s;
  const vm = daemon.vm!;
  let readStart = 0;
  let readEnd = 0;
  let withEndCalled = false;
  const original = vm.withEnd.bind(vm);
  vm.withEnd = (session, end, signal) => {
    withEndCalled = true;
    readStart = 0;
    return original(session, end, signal);
  };
  mock.state.on((e) => {
    if (e.type !== "read" || !withEndCalled) return;
    readEnd = performance.now();
    if (readStart === 0) readStart = readEnd;
  });
  const first: number[] = [];
  const last: number[] = [];
  const bytes: number[] = [];
  for (let i = 0; i < Math.min(RUNS, 10); i++) {
    const before = mock.state.publishes;
    let landedAt = 0;
    const off = mock.state.on((e) => {
      if (e.type !== "published") return;
      landedAt = performance.now();
      bytes.push(e.bytes);
    });
    // A lease record over the 128-byte echo payload: only a snapshot can carry it.
    const l = daemon.host.grant({
      gpu_id: "GPU-1",
      worker_id: `worker-with-a-long-name-${i}`,
      mem_mb: 1,
      streams: 1,
      ttl_s: 3600,
      priority: 0,
    });
    await until(() => mock.state.publishes > before, 20_000, "the snapshot");
    off();
    first.push(landedAt - readStart);
    last.push(landedAt - readEnd);
    daemon.host.leases.release(l.id, "bench");
    await until(() => daemon.host.nodeLogs("GPU-1") !== undefined && !daemon.vm!.hasWork(), 20_000, "quiet");
    await Bun.sleep(latencyMs * 4 + 100);
  }
  await teardown(s);
  return { first, last, bytes };
}

/** 3. Idle read-back cost at the default period. */
async function idleCost(): Promise<
  { perReadback: { frames: number; bytes: number }; perMinute: { frames: number; bytes: number }; lines: number }
> {
  const s = await setup(0, DEFAULTS.readbackMs);
  const { daemon } = s;
  // Typical contents: a lease and a few job lines on GPU-0.
  const lease = daemon.host.grant({ gpu_id: "GPU-0", worker_id: "w1", mem_mb: 1024, streams: 1, ttl_s: 3600, priority: 0 });
  for (let i = 0; i < 5; i++) daemon.host.logsOf("GPU-0").appendStatus(`{"job":"job-${i}","state":"OK","detail":"completed"}`);
  await Bun.sleep(DEFAULTS.readbackMs + 500);
  const st = daemon.vm!.stats;
  const r0 = { n: st.readbacks, frames: st.catFrames, bytes: st.catBytes };
  await Bun.sleep(DEFAULTS.readbackMs * 3 + 200);
  const n = st.readbacks - r0.n;
  const perReadback = { frames: (st.catFrames - r0.frames) / n, bytes: (st.catBytes - r0.bytes) / n };
  const perMin = 60_000 / DEFAULTS.readbackMs;
  const lines = ["ctl", "lease", "status"].reduce((k, f) => k + (s.mock.state.read(`/gpu/GPU-0/${f}`) ?? "").split("\n").length - 1, 0);
  void lease;
  await teardown(s);
  return { perReadback, perMinute: { frames: perReadback.frames * perMin, bytes: perReadback.bytes * perMin }, lines };
}

/** 4. VM writes acknowledged vs kept while the bridge's leases churn at `rate` changes a second. */
async function churn(rate: number, latencyMs: number, seconds: number) {
  const handed = new Set<string>();
  const churnLog = createLogger({
    level: "info",
    write: (line) => {
      const m = /VM wrote \/gpu\/[^/]+\/(?:lease|status): (.*)$/.exec(line.trimEnd());
      if (m !== null) handed.add(m[1]!);
    },
  });
  const s = await setup(latencyMs, DEFAULTS.readbackMs, churnLog);
  const { mock, daemon } = s;
  const queen = new ConsoleConnection(mock.state);
  queen.handle("AUTH bench");
  queen.handle("ATTACH queen ");
  const acked: string[] = [];
  const ledger = new LossLedger(mock.state, daemon.vm!);
  const off = mock.state.on((e) => {
    if (e.type === "vm" && e.event.type === "spawned") {
      acked.push(e.event.lease);
      ledger.wrote(`/gpu/${e.event.worker.gpuId}/lease`, e.event.lease);
    }
  });
  // The bridge's lease churn: a grant or a release every 1/rate s, alternating GPUs.
  const granted = new Map<string, number>();
  const delays: number[] = [];
  const offLanded = mock.state.on((e) => {
    if (e.type !== "published") return;
    for (const [worker, at] of granted) {
      if (e.tree.nodes.some((n) => n.lease.includes(`"${worker}"`))) {
        delays.push(performance.now() - at);
        granted.delete(worker);
      }
    }
  });
  const live: string[] = [];
  const snaps0 = mock.state.publishes;
  const t0 = performance.now();
  let nextChange = t0;
  let nextWrite = t0;
  let i = 0;
  let w = 0;
  let refused = 0;
  let running = true;
  /** The VM's own clients: a write every 50 ms, landing as soon as it is due. */
  const vmWrite = () => {
    if (!running || performance.now() < nextWrite) return;
    nextWrite += 50;
    const gpu = `GPU-${w % 2}`;
    if (w % 5 !== 4) {
      const line = `{"schema":"gpu-breadcrumb/v1","event":"START","command":"step ${w}","status":"RUNNING"}`;
      if (queen.handle(`ECHO /gpu/${gpu}/status ${line}`).lines[0]!.startsWith("OK")) {
        acked.push(line);
        ledger.wrote(`/gpu/${gpu}/status`, line);
      }
    } else {
      // A Queen grant: the VM appends the ACTIVE record itself (counted on its "spawned" event).
      queen.handle(`ECHO /queen/ctl {"spawn":"gpu","lease":{"gpu_id":"${gpu}","mem_mb":1,"streams":1,"ttl_s":1,"priority":0}}`);
    }
    w++;
  };
  // A VM serving several sessions may take another client's write between any two lines of
  // the bridge's: a write that is due lands there too, not only when this loop next runs.
  mock.state.faults.beforeLine = () => vmWrite();
  while (performance.now() - t0 < seconds * 1000) {
    const now = performance.now();
    if (now >= nextChange) {
      nextChange += 1000 / rate;
      if (live.length >= 2) daemon.host.leases.release(live.shift()!, "churn");
      else {
        const worker = `churn-${i++}`;
        try {
          const l = daemon.host.grant({ gpu_id: `GPU-${i % 2}`, worker_id: worker, mem_mb: 1, streams: 1, ttl_s: 3600, priority: 0 });
          live.push(l.id);
          granted.set(worker, now);
        } catch {
          refused++; // the VM's lease log is full of the Queen's leases for now
        }
      }
    }
    vmWrite();
    await Bun.sleep(2);
  }
  running = false;
  const elapsed = (performance.now() - t0) / 1000;
  const snapshots = mock.state.publishes - snaps0;
  // Writes still in the VM are kept too: the next read-back takes them.
  await Bun.sleep(DEFAULTS.readbackMs + latencyMs * 40 + 500);
  const inVm = [...mock.state.files.values()].join("\n");
  const isKept = (l: string) => handed.has(l) || inVm.includes(l);
  const kept = acked.filter(isKept).length;
  const mirror = daemon.vm!.mirror.toJSON().files;
  const inMirror = (path: string, line: string) => mirror[path.slice("/gpu/".length)]?.lines.some((l) => l.text === line) === true;
  const losses = describeLosses(ledger.classify(isKept, inMirror)) +
    (ledger.unseenMs.length > 0 ? ` (their file's last CAT -> landing: ${ledger.unseenMs.map((x) => x.toFixed(1)).join(", ")} ms)` : "");
  ledger.close();
  off();
  offLanded();
  const st = daemon.vm!.stats;
  const out = {
    refused,
    acked: acked.length,
    kept,
    snapshotsPerS: snapshots / elapsed,
    delays,
    retries: st.snapshotRetries,
    counted: st.linesLost,
    losses,
  };
  await teardown(s);
  return out;
}

const only = process.env.ONLY;
const CHURN_S = Number(process.env.CHURN_S ?? 10);
const RATES = (process.env.RATES ?? "1,10,20").split(",").map(Number);
for (const [name, latency] of only === "window" ? [] : [["loopback", 0], ["100 ms round trip", 50]] as const) {
  for (const rate of RATES) {
    const r = await churn(rate, latency, CHURN_S);
    console.log(
      `lease churn ${rate}/s, ${name}: VM writes acknowledged ${r.acked}, kept ${r.kept}, lost ${r.acked - r.kept}` +
        ` (bridge counted ${r.counted} erased and put back); ${r.snapshotsPerS.toFixed(1)} snapshots/s, ${r.retries} rebuilt;` +
        ` lease line -> VM median ${ms(quantile(r.delays, 0.5))}, p95 ${ms(quantile(r.delays, 0.95))}` +
        (r.refused > 0 ? ` (${r.refused} grants refused: lease log full)` : "") +
        `\n  lost writes by where they went: ${r.losses}`,
    );
  }
}
if (only === "churn") process.exit(0);
if (only === "window") {
  for (const [name, latency] of [["loopback", 0], ["100 ms round trip", 50]] as const) {
    const w = await snapshotWindow(latency);
    console.log(`window ${name}: first CAT -> landed ${ms(quantile(w.first, 0.5))}, last CAT -> landed ${ms(quantile(w.last, 0.5))}`);
  }
  process.exit(0);
}

for (const [name, latency] of [["loopback", 0], ["100 ms round trip", 50]] as const) {
  const t = await okLatency(latency);
  console.log(
    `job completed -> OK line readable in the VM, ${name}: median ${ms(quantile(t, 0.5))}, p95 ${
      ms(quantile(t, 0.95))
    } (${t.length} jobs, one ECHO append each)`,
  );
}
for (const [name, latency] of [["loopback", 0], ["100 ms round trip", 50]] as const) {
  const w = await snapshotWindow(latency);
  console.log(
    `full snapshot's window, ${name}: read-back before end, first CAT -> landed median ${ms(quantile(w.first, 0.5))}, ` +
      `last CAT -> landed median ${ms(quantile(w.last, 0.5))}, snapshots of ${Math.min(...w.bytes)}-${Math.max(...w.bytes)} bytes ` +
      `(a VM write in a file after its CAT and before the landing is erased unseen; appends have no such window)`,
  );
}
const c = await idleCost();
console.log(
  `idle read-back every ${DEFAULTS.readbackMs} ms, 2 GPUs (${c.lines} lines in GPU-0's logs): ${c.perReadback.frames.toFixed(0)} frames, ` +
    `${c.perReadback.bytes.toFixed(0)} bytes per read-back = ${c.perMinute.frames.toFixed(0)} frames/min, ${
      (c.perMinute.bytes / 1024).toFixed(1)
    } KiB/min`,
);
process.exit(0);
