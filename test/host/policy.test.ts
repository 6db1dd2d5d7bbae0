/**
 * The lease policy and the allowed kernels at the host, for the sources that are not the API:
 * lease records and control lines the VM's Queen wrote, job descriptors the VM appended, and
 * leases restored from the journal after the maxima were lowered (kept as granted, with a warning).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type HostOptions, HostState } from "../../src/host/state.ts";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { LeaseJournal } from "../../src/lease/journal.ts";
import { DEFAULT_LEASE_POLICY, type LeasePolicy } from "../../src/lease/policy.ts";
import { applyVmLines } from "../../src/vm/apply.ts";
import { FakeClock, memoryLogger, tempDir, vaddJob } from "../helpers.ts";
import { NEVER } from "../api/tenancy-helpers.ts";

const policy: LeasePolicy = { ...DEFAULT_LEASE_POLICY, maxTtlS: 600, maxMemMb: 4096, maxStreams: 2 };
const over = (field: string, value: number, max: number, key: string) =>
  `${field} ${value} is over ${key} ${max} (a serve flag and --config key)`;

let hosts: HostState[] = [];
afterEach(() => {
  for (const h of hosts) h.close();
  hosts = [];
});

function make(o: Partial<HostOptions> = {}) {
  const { log, lines } = memoryLogger();
  const clock = new FakeClock();
  const host = new HostState({ gpus: () => MOCK_GPUS, runner: NEVER, runnerKind: "cpu", log, onChange: () => {}, clock, policy, ...o });
  hosts.push(host);
  const logged: string[] = [];
  host.onLogLine = (gpu, file, text) => logged.push(`${gpu}/${file}: ${text}`);
  return { host, log, lines, logged, clock };
}

const record = (worker: string, o: Record<string, unknown> = {}) =>
  JSON.stringify({
    schema: "gpu-lease/v1",
    state: "ACTIVE",
    gpu_id: "GPU-0",
    worker_id: worker,
    mem_mb: 2048,
    streams: 1,
    ttl_s: 300,
    priority: 3,
    ...o,
  });

describe("leases the VM's Queen writes", () => {
  test("a record over a maximum is released in the VM at once, the reason naming the field, the value, the limit and the setting", () => {
    const { host, log, logged } = make();
    applyVmLines(host, log, "GPU-0", "lease", [record("queen-1", { mem_mb: 8192 }), record("queen-2", { ttl_s: 3600 })]);
    expect(host.leases.live()).toEqual([]);
    const releases = logged.filter((l) => l.startsWith("GPU-0/ctl: RELEASE"));
    expect(releases.map((l) => l.split(" ")[2])).toEqual(["queen-1", "queen-2"]);
    // Cut at one echo payload, the field, the value, the limit and the setting all fit.
    expect(releases[0]).toStartWith("GPU-0/ctl: RELEASE queen-1 refused: mem_mb 8192 is over max-lease-mem-mb 4096");
    expect(releases[1]).toStartWith("GPU-0/ctl: RELEASE queen-2 refused: ttl_s 3600 is over max-ttl-s 600");
    expect(logged.filter((l) => l.startsWith("GPU-0/lease:")).map((l) => JSON.parse(l.slice("GPU-0/lease: ".length)).state)).toEqual([
      "RELEASED",
      "RELEASED",
    ]);
  });

  test("a record within the maxima is adopted; new terms past one are refused in the status log and the lease keeps its own", () => {
    const { host, log, logged } = make();
    applyVmLines(host, log, "GPU-0", "lease", [record("queen-1")]);
    const l = host.leases.ofWorker("GPU-0", "queen-1")!;
    expect(l).toMatchObject({ mem_mb: 2048, streams: 1, ttl_s: 300 });
    applyVmLines(host, log, "GPU-0", "lease", [record("queen-1", { streams: 3 })]);
    expect(host.leases.get(l.id)).toMatchObject({ state: "ACTIVE", streams: 1 });
    const status = logged.filter((x) => x.startsWith("GPU-0/status:")).map((x) => JSON.parse(x.slice("GPU-0/status: ".length)));
    expect(status).toHaveLength(1);
    expect(status[0]).toMatchObject({ job: "lease", state: "ERR" });
    expect(status[0].detail).toStartWith("queen-1: terms refused: streams 3 is over max-lease-streams 2");
  });

  test("a LEASE control line the VM wrote past a maximum is refused in the status log; one leaving ttl= out gets lease-ttl-s", () => {
    const { host, log, logged } = make({ policy: { ...policy, ttlS: 45 } });
    applyVmLines(host, log, "GPU-0", "ctl", ["LEASE w1 mem=512 streams=3 priority=1", "LEASE w2 mem=512 streams=1 priority=1"]);
    expect(host.leases.ofWorker("GPU-0", "w1")).toBeUndefined();
    expect(host.leases.ofWorker("GPU-0", "w2")).toMatchObject({ ttl_s: 45 });
    const status = logged.filter((x) => x.startsWith("GPU-0/status:")).map((x) => JSON.parse(x.slice("GPU-0/status: ".length)).detail);
    expect(status).toHaveLength(1);
    expect(status[0]).toStartWith("LEASE w1 mem=512 streams=3 priority=1: streams 3 is over max-lease-streams 2");
  });
});

describe("jobs the VM appends under --allowed-kernels", () => {
  test("a job file's descriptor naming a kernel the bridge does not allow is refused with a status line naming it", () => {
    const { host, log, logged } = make({ allowedKernels: ["matmul"] });
    host.grant({ gpu_id: "GPU-0", worker_id: "worker-1", mem_mb: 64, streams: 1, ttl_s: 60, priority: 0 });
    const job = { ...vaddJob("job-1"), outputs: ["/worker/worker-1/result"] };
    applyVmLines(host, log, "GPU-0", "job", [JSON.stringify(job)]);
    expect(host.jobs.get("job-1")).toBeUndefined();
    const status = logged.filter((x) => x.startsWith("GPU-0/status:")).map((x) => JSON.parse(x.slice("GPU-0/status: ".length)));
    expect(status).toHaveLength(1);
    expect(status[0]).toMatchObject({ job: "job-1", state: "ERR" });
    expect(status[0].detail).toStartWith('Invalid job descriptor: kernel: kernel "vadd" is not in allowed-kernels (matmul)');
  });

  test("with the kernel allowed, the same descriptor is queued", () => {
    const { host, log } = make({ allowedKernels: ["vadd"] });
    host.grant({ gpu_id: "GPU-0", worker_id: "worker-1", mem_mb: 64, streams: 1, ttl_s: 60, priority: 0 });
    applyVmLines(host, log, "GPU-0", "job", [JSON.stringify({ ...vaddJob("job-1"), outputs: ["/worker/worker-1/result"] })]);
    expect(host.jobs.get("job-1")?.state).toBe("RUNNING");
  });
});

describe("leases restored from the journal after the maxima were lowered", () => {
  test("are kept with their terms and a warning naming the lease and the maximum; those within the policy get none", () => {
    const dir = tempDir("gbh-policy-journal-");
    try {
      const path = join(dir.path, "leases.jsonl");
      const before = make({ policy: DEFAULT_LEASE_POLICY, journal: new LeaseJournal(path) });
      const big = before.host.grant({ gpu_id: "GPU-0", worker_id: "big", mem_mb: 8192, streams: 4, ttl_s: 3600, priority: 0 });
      const small = before.host.grant({ gpu_id: "GPU-0", worker_id: "small", mem_mb: 64, streams: 1, ttl_s: 60, priority: 0 });
      before.host.close();
      hosts = [];
      const after = make({ journal: new LeaseJournal(path) });
      expect(after.clock.now()).toBe(before.clock.now());
      after.host.restore();
      expect(after.host.leases.live().map((l) => [l.id, l.mem_mb, l.streams, l.ttl_s]).sort()).toEqual(
        [[big.id, 8192, 4, 3600], [small.id, 64, 1, 60]].sort(),
      );
      const warnings = after.lines.filter((l) => l.includes("over today's policy"));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(
        `journal: lease ${big.id} restored with its terms, over today's policy: ${over("mem_mb", 8192, 4096, "max-lease-mem-mb")}`,
      );
    } finally {
      dir.cleanup();
    }
  });
});
