/**
 * What the VM writes is kept while leases churn: full snapshots go at most once per period,
 * the VM is read back again just before a snapshot's `end` (starting over when it changed),
 * and what a snapshot still erased is put back and counted. And a VM line that is not UTF-8
 * is republished as its bytes.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { ConsoleConnection } from "../../mock/console/core.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, until } from "../helpers.ts";
import { publishingServe, ticking } from "./helpers.ts";

const runtime = bunRuntime();
let mock: MockConsole;
let daemon: Bridge | null = null;

beforeEach(async () => (mock = await startMockConsole(runtime, { token: "tok" })));
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  await mock.close();
});

async function bridge(clock?: FakeClock, minSnapshotMs?: number) {
  const options = publishingServe(mock.port, "--readback-ms", "60000", "--ack-timeout-ms", "600000");
  const { log, lines } = memoryLogger();
  daemon = await createBridge(options, { runtime, log, backend: mockBackend() }, {
    noJournal: true,
    ...(clock !== undefined && { clock }),
    ...(minSnapshotMs !== undefined && { minSnapshotMs }),
  });
  await until(() => mock.state.publishes === 1, 5000, "the first publish");
  return { daemon, lines };
}

function vmWorker() {
  const c = new ConsoleConnection(mock.state);
  c.handle("AUTH tok");
  c.handle("ATTACH worker-gpu ticket");
  return (path: string, line: string) => c.handle(`ECHO ${path} ${line}`).lines[0]!;
}

const crumb = (n: number) => `{"schema":"gpu-breadcrumb/v1","event":"START","command":"step ${n}","status":"RUNNING"}`;
/** A lease whose ACTIVE record is over the 128-byte echo payload: only a snapshot carries it. */
const longLease = (i: number) => ({
  gpu_id: "GPU-1",
  worker_id: `worker-with-a-long-name-${i}`,
  mem_mb: 1,
  streams: 1,
  ttl_s: 3600,
  priority: 0,
});

/** Calls `during` for each `b64:` line the VM receives, i.e. while a snapshot is on its way. */
function whileSnapshotInFlight(during: () => void): void {
  const receiver = mock.state.receiver;
  const accept = receiver.accept.bind(receiver);
  receiver.accept = (line: string) => {
    if (line.startsWith("b64:")) during();
    return accept(line);
  };
}

describe("VM writes under lease churn", () => {
  test("a VM write that lands while a snapshot is on its way is kept (read back before end, the snapshot built again)", async () => {
    const { daemon } = await bridge(undefined, 0);
    const echo = vmWorker();
    let n = 0;
    whileSnapshotInFlight(() => {
      if (n < 1) expect(echo("/gpu/GPU-0/status", crumb(n++))).toStartWith("OK ECHO");
    });
    daemon.host.grant(longLease(1));
    await until(() => mock.state.read("/gpu/GPU-1/lease")?.includes("worker-with-a-long-name-1") === true, 5000, "the lease");
    expect(mock.state.read("/gpu/GPU-0/status")).toBe(crumb(0) + "\n");
    expect(daemon.vm!.stats.snapshotRetries).toBe(1);
    expect(daemon.vm!.stats.linesLost).toBe(0);
  });

  test("a VM that writes during every try: the snapshot lands after the last, and what it erased is put back and counted", async () => {
    const { daemon, lines } = await bridge(undefined, 0);
    const echo = vmWorker();
    let n = 0;
    let armed = true;
    whileSnapshotInFlight(() => {
      if (armed) expect(echo("/gpu/GPU-0/status", crumb(n++))).toStartWith("OK ECHO");
    });
    daemon.host.grant(longLease(2));
    await until(() => mock.state.read("/gpu/GPU-1/lease")?.includes("worker-with-a-long-name-2") === true, 5000, "the lease");
    armed = false;
    const written = Array.from({ length: n }, (_, i) => crumb(i));
    await until(() => written.every((c) => mock.state.read("/gpu/GPU-0/status")?.includes(c) === true), 5000, "every write back in the VM");
    expect(daemon.vm!.stats.linesLost).toBeGreaterThan(0);
    expect(daemon.vmMetrics!()).toContain(`\ngpu_bridge_vm_lines_lost_total ${daemon.vm!.stats.linesLost}\n`);
    expect(lines.some((l) => l.includes("WARN") && /a snapshot erased \d+ lines the VM wrote/.test(l))).toBe(true);
    // Every write in the VM once, in the order written.
    const status = mock.state.read("/gpu/GPU-0/status")!.trim().split("\n");
    expect(status.filter((l) => l.includes("breadcrumb"))).toEqual(written);
  });

  test("a VM write after its file's read-back before end is seen by the read sent with end: put back, not lost", async () => {
    const clock = new FakeClock(); // no time passes during the publish: the read-back before end always runs
    const { daemon, lines } = await bridge(clock, 0);
    const echo = vmWorker();
    const line = crumb(7);
    let begun = false;
    let reads = 0;
    let wrote = false;
    // Right after the VM answered the read-back's CAT of GPU-0's status (the first after the
    // snapshot's begin), before it handles the bridge's next line, a VM client writes there.
    mock.state.faults.beforeLine = (_conn, l) => {
      if (l.startsWith("ECHO /gpu/bridge/ctl begin ")) begun = true;
      if (begun && reads === 1 && !wrote) {
        wrote = true;
        expect(echo("/gpu/GPU-0/status", line)).toStartWith("OK ECHO");
      }
      if (begun && l === "CAT /gpu/GPU-0/status") reads++;
    };
    daemon.host.grant(longLease(5));
    await ticking(clock, () => begun, 5000, "the snapshot's begin");
    await until(() => mock.state.read("/gpu/GPU-1/lease")?.includes("worker-with-a-long-name-5") === true, 5000, "the lease");
    expect(wrote).toBe(true);
    // The snapshot erased it (nothing can prevent that once `end` is on its way); it is put back.
    await until(() => mock.state.read("/gpu/GPU-0/status")?.includes(line) === true, 5000, "the write back in the VM");
    expect(lines.some((l) => l.includes(`VM wrote /gpu/GPU-0/status: ${line}`))).toBe(true);
    expect(daemon.vm!.stats.linesLost).toBe(1);
  });

  test("lease churn costs at most one snapshot per period", async () => {
    const clock = new FakeClock();
    const { daemon } = await bridge(clock, 1000);
    const before = mock.state.publishes;
    const t0 = clock.now();
    let held: string | null = null;
    for (let i = 0; i < 30; i++) {
      // A grant and a release per step (the VM's lease log holds only a few live records).
      if (held !== null) daemon.host.leases.release(held, "churn");
      held = daemon.host.grant(longLease(100 + i)).id;
      for (let k = 0; k < 10; k++) {
        await clock.run(10); // 100 ms of the bridge's time per change: 10 changes a second
        await Bun.sleep(1);
      }
    }
    const last = longLease(129).worker_id;
    const deadline = Date.now() + 5000;
    while (mock.state.read("/gpu/GPU-1/lease")?.includes(last) !== true) {
      if (Date.now() > deadline) throw new Error("the last lease never reached the VM");
      await clock.run(10);
      await Bun.sleep(1);
    }
    const periods = Math.ceil((clock.now() - t0) / 1000);
    expect(mock.state.publishes - before).toBeLessThanOrEqual(periods + 1);
    expect(mock.state.publishes - before).toBeGreaterThanOrEqual(2);
  }, 20_000);
});

describe("VM lines that are not UTF-8", () => {
  test("are republished as their bytes, never as U+FFFD", async () => {
    const { daemon } = await bridge(undefined, 0);
    // A VM client on a real socket writes Latin-1 bytes (e9, ff) inside a JSON-object line.
    const raw = new Uint8Array([...new TextEncoder().encode('{"note":"caf'), 0xe9, 0x20, 0xff, ...new TextEncoder().encode('"}')]);
    const conn = await runtime.connect("127.0.0.1", mock.port);
    const frame = (body: Uint8Array) => {
      const f = new Uint8Array(body.length + 4);
      new DataView(f.buffer).setUint32(0, f.length, true);
      f.set(body, 4);
      return f;
    };
    const text = (s: string) => new TextEncoder().encode(s);
    const received: Uint8Array[] = [];
    void (async () => {
      for await (const chunk of conn.readable) received.push(chunk);
    })();
    await conn.write(frame(text("AUTH tok")));
    await conn.write(frame(text("ATTACH worker-gpu ticket")));
    await conn.write(frame(new Uint8Array([...text("ECHO /gpu/GPU-0/status "), ...raw])));
    await until(() => daemon !== null && (mock.state.read("/gpu/GPU-0/status") ?? "") !== "", 3000, "the VM write");
    // A republish: the bridge reads the line back and carries it.
    daemon.host.grant(longLease(3));
    await until(() => mock.state.read("/gpu/GPU-1/lease")?.includes("worker-with-a-long-name-3") === true, 5000, "the republish");
    expect(mock.state.publishes).toBeGreaterThanOrEqual(2);
    // What the VM now serves for the file, read as bytes off the wire.
    received.length = 0;
    await conn.write(frame(text("CAT /gpu/GPU-0/status")));
    const bytes = async () => {
      await until(() => received.reduce((n, c) => n + c.length, 0) > 0, 3000, "the CAT");
      await Bun.sleep(50);
      const all = new Uint8Array(received.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of received) (all.set(c, at), (at += c.length));
      const frames: Uint8Array[] = [];
      for (let i = 0; i + 4 <= all.length;) {
        const len = new DataView(all.buffer, i, 4).getUint32(0, true);
        frames.push(all.subarray(i + 4, i + len));
        i += len;
      }
      return frames;
    };
    const frames = await bytes();
    conn.close();
    expect(frames.some((f) => f.length === raw.length && f.every((b, i) => b === raw[i]))).toBe(true);
  });
});
