/**
 * The VM talks back (docs/protocol.md section 12), end to end against the faithful mock VM: a Queen's
 * spawn becomes a host lease, survives republishes, expires in the VM on time; control lines
 * written in the VM are applied once, across reconnects and restarts.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { ConsoleConnection } from "../../mock/console/core.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, tempDir, until } from "../helpers.ts";
import { idle, publishingServe, ticking } from "./helpers.ts";

const runtime = bunRuntime();
let mock: MockConsole;
let daemon: Bridge | null = null;
let state: { path: string; cleanup: () => void };

beforeEach(async () => {
  mock = await startMockConsole(runtime, { token: "tok" });
  state = tempDir("gbh-vm-");
});
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  await mock.close();
  state.cleanup();
});

async function bridge(clock = new FakeClock(), journal = false) {
  // Acks wait as long as the console allows: the tests jump the clock minutes ahead while the
  // link, in real time, may have a request in flight.
  const options = publishingServe(mock.port, "--readback-ms", "30", "--ack-timeout-ms", "600000", "--state-dir", state.path);
  const { log, lines } = memoryLogger();
  const publishes = mock.state.publishes;
  daemon = await createBridge(options, { runtime, log, backend: mockBackend() }, { noJournal: !journal, clock });
  await until(() => mock.state.publishes > publishes, 5000, "the first publish");
  return { daemon, lines, clock };
}

function vm(role = "ATTACH queen ") {
  const c = new ConsoleConnection(mock.state);
  c.handle("AUTH tok");
  c.handle(role);
  return (path: string, line: string) => c.handle(`ECHO ${path} ${line}`).lines[0]!;
}

const lastLine = (path: string) => JSON.parse(mock.state.read(path)!.trim().split("\n").at(-1)!);
const spawn = (gpu: string, mem: number, ttl: number) =>
  `{"spawn":"gpu","lease":{"gpu_id":"${gpu}","mem_mb":${mem},"streams":1,"ttl_s":${ttl},"priority":1}}`;

describe("leases the Queen grants", () => {
  test("are adopted, survive a republish, renew on a repeated ACTIVE line and expire in the VM on time", async () => {
    const { daemon, clock } = await bridge();
    const t0 = clock.now();
    expect(vm()("/queen/ctl", spawn("GPU-0", 4096, 120))).toStartWith("OK ECHO");
    await ticking(clock, () => daemon.host.leases.ofWorker("GPU-0", "worker-1") !== undefined, 3000, "the adoption");
    const lease = daemon.host.leases.ofWorker("GPU-0", "worker-1")!;
    expect(lease).toMatchObject({ mem_mb: 4096, streams: 1, ttl_s: 120, priority: 1 });
    // The TTL runs from when the bridge first saw the line: after the spawn, by now at the latest.
    expect(lease.expires_at - lease.granted_at).toBe(120_000);
    expect(lease.granted_at).toBeGreaterThanOrEqual(t0);
    expect(lease.granted_at).toBeLessThanOrEqual(clock.now());
    expect(daemon.host.leases.live("GPU-0").reduce((n, l) => n + l.mem_mb, 0)).toBe(4096); // counted against the GPU
    await ticking(clock, () => mock.state.read("/gpu/GPU-0/ctl")?.includes("LEASE worker-1") === true, 3000, "the ctl echo");
    expect(mock.state.read("/gpu/GPU-0/lease")!.trim().split("\n").length).toBe(1); // the VM's own ACTIVE line, not a copy

    // A republish (another GPU's lease record travels by snapshot) keeps the VM's lease line.
    const before = mock.state.publishes;
    daemon.host.control("GPU-1", "LEASE worker-with-a-long-name mem=1024 streams=1 priority=0");
    await ticking(clock, () => mock.state.publishes > before, 3000, "the republish");
    expect(lastLine("/gpu/GPU-0/lease")).toMatchObject({ state: "ACTIVE", worker_id: "worker-1" });

    // The worker renews: its lease's ACTIVE record again, which renews it for its own TTL.
    await clock.run(60_000);
    const renewal = mock.state.read("/gpu/GPU-0/lease")!.trim().split("\n")[0]!;
    // Over the console's 128-byte echo payload: the worker writes it through its 9P mount.
    const renewedFrom = clock.now();
    expect(mock.state.vm.append("/gpu/GPU-0/lease", renewal)).toBeNull();
    await ticking(clock, () => lease.expires_at >= renewedFrom + 120_000, 3000, "the renewal");
    expect(lease.expires_at).toBeLessThanOrEqual(clock.now() + 120_000);
    expect(daemon.host.leases.live("GPU-0")).toHaveLength(1);

    await clock.run(120_000);
    expect(lease.state).toBe("RELEASED");
    await ticking(clock, () => lastLine("/gpu/GPU-0/lease").state === "RELEASED", 3000, "the RELEASED line in the VM");
    expect(lastLine("/gpu/GPU-0/lease")).toMatchObject({ worker_id: "worker-1", gpu_id: "GPU-0" });
    expect(mock.state.read("/gpu/GPU-0/ctl")).toContain("RELEASE worker-1 expired\n");
  }, 20_000); // a minute of fake time at a 30 ms read-back period is some 2,000 timer turns

  test("one that does not fit is released at once, with the reason in the VM's ctl and in the log", async () => {
    const { daemon, lines, clock } = await bridge();
    expect(vm()("/queen/ctl", spawn("GPU-1", 8000, 60))).toStartWith("OK ECHO");
    expect(vm()("/queen/ctl", spawn("GPU-1", 1000, 60))).toStartWith("OK ECHO");
    await ticking(
      clock,
      () => mock.state.read("/gpu/GPU-1/ctl")?.includes("RELEASE worker-2 refused") === true,
      3000,
      "the refusal in the VM",
    );
    expect(mock.state.read("/gpu/GPU-1/ctl")).toContain(
      "RELEASE worker-2 refused: insufficient memory on GPU-1: requested 1000 MiB, 192 MiB unleased",
    );
    await ticking(clock, () => lastLine("/gpu/GPU-1/lease").state === "RELEASED", 3000, "the RELEASED line");
    expect(lastLine("/gpu/GPU-1/lease")).toMatchObject({ worker_id: "worker-2", mem_mb: 1000 });
    expect(daemon.host.leases.live("GPU-1").map((l) => l.worker_id)).toEqual(["worker-1"]);
    expect(lines.some((l) => l.includes("WARN") && l.includes("worker-2 on GPU-1 is released at once"))).toBe(true);
  });
});

describe("control lines written in the VM", () => {
  test("RELEASE is applied; a refusal and a malformed line come back as status lines; each line once, across a restart", async () => {
    const first = await bridge(new FakeClock(), true);
    vm()("/queen/ctl", spawn("GPU-0", 2048, 600));
    await ticking(first.clock, () => first.daemon.host.leases.ofWorker("GPU-0", "worker-1") !== undefined, 3000, "the adoption");
    const worker = vm("ATTACH worker-gpu t-1");
    expect(worker("/gpu/GPU-0/ctl", "RELEASE worker-1 done")).toStartWith("OK ECHO");
    expect(worker("/gpu/GPU-0/ctl", "RELEASE worker-9")).toStartWith("OK ECHO");
    expect(worker("/gpu/GPU-0/ctl", "PRIORITY high")).toStartWith("OK ECHO");
    await ticking(
      first.clock,
      () => first.daemon.host.leases.list().some((l) => l.worker_id === "worker-1" && l.state === "RELEASED"),
      3000,
      "the release",
    );
    expect(first.daemon.host.leases.list().find((l) => l.worker_id === "worker-1")!.released_reason).toBe("done");
    await ticking(first.clock, () => (mock.state.read("/gpu/GPU-0/status") ?? "").split("\n").length >= 4, 3000, "the status lines");
    const status = mock.state.read("/gpu/GPU-0/status")!.trim().split("\n").map((l) => JSON.parse(l));
    expect(status).toContainEqual({ job: "worker-1", state: "LEASE-ENDED", detail: "done" });
    expect(status).toContainEqual({ job: "ctl", state: "ERR", detail: "RELEASE worker-9: worker-9 holds no lease on GPU-0" });
    expect(status).toContainEqual({
      job: "ctl",
      state: "ERR",
      detail: 'PRIORITY high: priority must be an integer from 0 to 255, got "high"',
    });
    await ticking(first.clock, () => lastLine("/gpu/GPU-0/lease").state === "RELEASED", 3000, "the RELEASED line");
    const statusBefore = mock.state.read("/gpu/GPU-0/status");

    // A restart (same state directory, a new connection): nothing is applied twice.
    await first.daemon.stop();
    daemon = null;
    const second = await bridge(new FakeClock(), true);
    await idle(second.clock, 150); // several read-back periods
    expect(second.lines.filter((l) => l.includes("VM wrote"))).toEqual([]);
    expect(mock.state.read("/gpu/GPU-0/status")).toBe(statusBefore!);
    // A new line is still applied.
    worker("/gpu/GPU-0/ctl", "LEASE w2 mem=512 streams=1 priority=2");
    await ticking(second.clock, () => second.daemon.host.leases.ofWorker("GPU-0", "w2") !== undefined, 3000, "the VM-written LEASE");
  });
});

describe("a bridge that lost its state (no stored mirror)", () => {
  test("takes what the VM holds as history: live leases are adopted, old control lines are not applied again", async () => {
    const first = await bridge();
    vm()("/queen/ctl", spawn("GPU-0", 4096, 600));
    vm("ATTACH worker-gpu t-1")("/gpu/GPU-1/ctl", "LEASE w5 mem=256 streams=1 priority=0");
    await ticking(first.clock, () => first.daemon.host.leases.ofWorker("GPU-0", "worker-1") !== undefined, 3000, "the adoption");
    await ticking(first.clock, () => first.daemon.host.leases.ofWorker("GPU-1", "w5") !== undefined, 3000, "the VM's LEASE line");
    await ticking(
      first.clock,
      () => mock.state.read("/gpu/GPU-1/lease")?.includes('"worker_id":"w5"') === true,
      3000,
      "w5's record in the VM",
    );
    await first.daemon.stop();
    daemon = null;

    const second = await bridge(); // no journal, no mirror: all it knows is what the VM holds
    expect(second.daemon.host.leases.live().map((l) => `${l.gpu_id}/${l.worker_id}`).sort()).toEqual(["GPU-0/worker-1", "GPU-1/w5"]);
    await idle(second.clock, 150);
    expect(mock.state.read("/gpu/GPU-1/status")).toBe(""); // the old LEASE line was not applied again (it would conflict)
    expect(second.lines.some((l) => l.includes("taken as history"))).toBe(true);
    // What the VM writes from now on is new.
    vm("ATTACH worker-gpu t-1")("/gpu/GPU-1/ctl", "RELEASE w5 done");
    await ticking(second.clock, () => second.daemon.host.leases.ofWorker("GPU-1", "w5") === undefined, 3000, "the new RELEASE");
  });
});
