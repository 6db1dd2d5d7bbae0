import { beforeEach, describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { HostState } from "../../src/host/state.ts";
import type { Runner } from "../../src/job/runner.ts";
import { applyVmLines } from "../../src/vm/apply.ts";
import { FakeClock, memoryLogger } from "../helpers.ts";

const never: Runner = { run: () => new Promise(() => {}) };
let clock: FakeClock;
let host: HostState;
let logged: string[];
let log: ReturnType<typeof memoryLogger>;

beforeEach(() => {
  clock = new FakeClock();
  log = memoryLogger();
  host = new HostState({ gpus: () => MOCK_GPUS, runner: never, runnerKind: "cpu", log: log.log, onChange: () => {}, clock });
  logged = [];
  host.onLogLine = (gpu, file, text) => logged.push(`${gpu}/${file}: ${text}`);
});

const active = (worker: string, o: Record<string, unknown> = {}) =>
  JSON.stringify({
    schema: "gpu-lease/v1",
    state: "ACTIVE",
    gpu_id: "GPU-0",
    worker_id: worker,
    mem_mb: 2048,
    streams: 2,
    ttl_s: 30,
    priority: 3,
    ...o,
  });

describe("applyVmLines()", () => {
  test("an ACTIVE line is adopted with its TTL from now; the bridge writes only the ctl echo, not a second ACTIVE line", () => {
    clock.advance(5000);
    applyVmLines(host, log.log, "GPU-0", "lease", [active("worker-1")]);
    const l = host.leases.ofWorker("GPU-0", "worker-1")!;
    expect(l).toMatchObject({ mem_mb: 2048, streams: 2, ttl_s: 30, priority: 3, expires_at: clock.now() + 30_000 });
    expect(logged).toEqual(["GPU-0/ctl: LEASE worker-1 mem=2048 streams=2 priority=3"]);
    expect(host.isLiveActiveLine("GPU-0", active("worker-1"))).toBe(true);
    clock.advance(30_000);
    expect(l.state).toBe("RELEASED");
    expect(logged.at(-2)).toBe(`GPU-0/lease: ${active("worker-1", { state: "RELEASED" })}`);
  });

  test("a RELEASED line ends the worker's live lease; lines that are not records for this GPU are kept, not acted on", () => {
    applyVmLines(host, log.log, "GPU-0", "lease", [active("w")]);
    applyVmLines(host, log.log, "GPU-0", "lease", ["{not json}", active("x", { gpu_id: "GPU-1" }), active("y", { mem_mb: 0 })]);
    expect(host.leases.live().map((l) => l.worker_id)).toEqual(["w"]);
    expect(log.lines.filter((l) => l.includes("WARN")).length).toBe(3);
    applyVmLines(host, log.log, "GPU-0", "lease", [active("w", { state: "RELEASED" })]);
    expect(host.leases.list().find((l) => l.worker_id === "w")).toMatchObject({ state: "RELEASED", released_reason: "released in the VM" });
  });

  test("ctl: free text is kept without a reply; control verbs are applied as POST /ctl would", () => {
    applyVmLines(host, log.log, "GPU-1", "ctl", ["worker-3 says hello", "LEASE w9 mem=512 streams=1 priority=9 ttl=60"]);
    expect(host.leases.ofWorker("GPU-1", "w9")).toMatchObject({ mem_mb: 512, ttl_s: 60, priority: 9 });
    expect(logged.filter((l) => l.includes("/status"))).toEqual([]);
    applyVmLines(host, log.log, "GPU-1", "ctl", ["RESET"]);
    expect(host.leases.live("GPU-1")).toEqual([]);
  });
});
