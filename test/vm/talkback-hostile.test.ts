/**
 * The VM writes back hostile lease records, end to end against the faithful mock VM: a worker's
 * record with new terms is admitted like a grant (host, API and VM agree), a worker id holding a
 * newline cannot forge a control line that ends another worker's lease, and a record with an
 * extra field is refused without a republish loop.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
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
  state = tempDir("gbh-vmh-");
});
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  await mock.close();
  state.cleanup();
});

async function bridge() {
  const clock = new FakeClock();
  const options = publishingServe(mock.port, "--readback-ms", "30", "--ack-timeout-ms", "600000", "--state-dir", state.path);
  const { log, lines } = memoryLogger();
  daemon = await createBridge(options, { runtime, log, backend: mockBackend() }, { noJournal: true, clock });
  await until(() => mock.state.publishes > 0, 5000, "the first publish");
  return { daemon, lines, clock };
}

const vmLines = (path: string) => (mock.state.read(path) ?? "").split("\n").filter((l) => l !== "");
const record = (worker: string, mem: number, streams: number, ttl: number, priority: number, extra = "") =>
  `{"schema":"gpu-lease/v1","state":"ACTIVE","gpu_id":"GPU-0","worker_id":${JSON.stringify(worker)},` +
  `"mem_mb":${mem},"streams":${streams},"ttl_s":${ttl},"priority":${priority}${extra}}`;

describe("hostile lease records from the VM", () => {
  test("new terms are admitted like a grant; host, API and the VM's last record agree", async () => {
    const { daemon, clock } = await bridge();
    const lease = daemon.host.grant({ gpu_id: "GPU-0", worker_id: "w1", mem_mb: 1024, streams: 1, ttl_s: 300, priority: 0 });
    await ticking(clock, () => vmLines("/gpu/GPU-0/lease").length === 1, 3000, "the lease record in the VM");
    // A worker writes its record with other terms (through its 9P mount: over the echo payload).
    expect(mock.state.vm.append("/gpu/GPU-0/lease", record("w1", 20000, 16, 604800, 255))).toBeNull();
    await ticking(clock, () => lease.mem_mb === 20000, 3000, "the new terms");
    expect(lease).toMatchObject({ streams: 16, ttl_s: 604800, priority: 255 });
    expect(JSON.parse(vmLines("/gpu/GPU-0/lease").at(-1)!)).toMatchObject({ mem_mb: 20000, ttl_s: 604800, priority: 255 });
    expect(() => daemon.host.grant({ gpu_id: "GPU-0", worker_id: "w2", mem_mb: 23000, streams: 1, ttl_s: 60, priority: 0 })).toThrow(
      "insufficient memory",
    );
  }, 20_000);

  test("a worker id holding a newline ends no other lease; a 700-byte record is refused without a republish loop", async () => {
    const { daemon, clock } = await bridge();
    const victim = daemon.host.grant({ gpu_id: "GPU-0", worker_id: "victim", mem_mb: 1024, streams: 1, ttl_s: 600, priority: 0 });
    await ticking(clock, () => vmLines("/gpu/GPU-0/lease").length === 1, 3000, "the lease record in the VM");
    expect(mock.state.vm.append("/gpu/GPU-0/lease", record("x\nRELEASE victim", 1, 1, 60, 0))).toBeNull();
    expect(mock.state.vm.append("/gpu/GPU-0/lease", record("w9", 1, 1, 60, 0, `,"pad":"${"x".repeat(600)}"`))).toBeNull();
    await ticking(clock, () => vmLines("/gpu/GPU-0/status").length >= 2, 3000, "the refusals in status");
    const publishes = mock.state.publishes;
    await idle(clock, 400); // a dozen read-back periods
    expect(mock.state.publishes - publishes).toBeLessThanOrEqual(2);
    expect(victim.state).toBe("ACTIVE");
    expect(daemon.host.leases.live().map((l) => l.worker_id)).toEqual(["victim"]);
    expect(vmLines("/gpu/GPU-0/ctl").filter((l) => l.startsWith("RELEASE"))).toEqual([]);
    const status = vmLines("/gpu/GPU-0/status").map((l) => JSON.parse(l));
    expect(status).toContainEqual({ job: "lease", state: "ERR", detail: "record: worker_id must be 1-64 characters of A-Z a-z 0-9 . _ -" });
    expect(status).toContainEqual({ job: "lease", state: "ERR", detail: "record: a lease record is at most 256 bytes, got 732" });
  }, 20_000);
});
