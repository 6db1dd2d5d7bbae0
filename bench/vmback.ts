/**
 * The VM talking back (issue #14), measured against the faithful mock VM, the bridge's daemon
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
 *
 * Run with `make bench-vmback`; RUNS=N sets the samples per case (default 20).
 */
import { type MockConsole, startMockConsole } from "../mock/console/server.ts";
import { mockBackend } from "../src/inventory/mock.ts";
import { parseCommand } from "../src/cli/options.ts";
import { type Bridge, createBridge } from "../src/app/bridge.ts";
import { createLogger } from "../src/util/log.ts";
import { bunRuntime } from "../src/runtime/bun.ts";
import { sha256Hex } from "../src/util/sha256.ts";
import { DEFAULTS } from "../src/cli/defaults.ts";
import { quantile } from "./quantile.ts";

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

async function setup(latencyMs: number, readbackMs: number): Promise<{ mock: MockConsole; daemon: Bridge }> {
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
  ], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const daemon = await createBridge(c.options, { runtime, log, backend: mockBackend() }, { noJournal: true });
  await until(() => mock.state.publishes === 1, 10_000, "the first publish");
  return { mock, daemon };
}

async function teardown(s: { mock: MockConsole; daemon: Bridge }): Promise<void> {
  await s.daemon.stop();
  await s.mock.close();
}

const ms = (x: number) => `${x.toFixed(1)} ms`;

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

/** 2. The window of a full snapshot: read-back start/end to the snapshot landing. */
async function snapshotWindow(latencyMs: number): Promise<{ first: number[]; last: number[]; bytes: number[] }> {
  const s = await setup(latencyMs, 60_000);
  const { mock, daemon } = s;
  const vm = daemon.vm!;
  let readStart = 0;
  let readEnd = 0;
  const original = vm.beforePublish.bind(vm);
  vm.beforePublish = async (session, signal) => {
    readStart = performance.now();
    await original(session, signal);
    readEnd = performance.now();
  };
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
    `full snapshot's window, ${name}: read-back start -> snapshot landed median ${ms(quantile(w.first, 0.5))}, ` +
      `last read -> landed median ${ms(quantile(w.last, 0.5))}, snapshots of ${Math.min(...w.bytes)}-${Math.max(...w.bytes)} bytes ` +
      `(a VM write in it is lost; appends have none)`,
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
