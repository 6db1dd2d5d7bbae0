/**
 * Lease records the VM writes are requests, not facts: a renewal extends a lease by its own
 * TTL, new terms are admitted like a grant or refused with the reason in the VM, a RELEASED
 * record ends only the lease it repeats, and what the host accounts, what the API shows and
 * the last record the VM's clients read for a lease are the same numbers.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { leaseView } from "../../src/api/views.ts";
import { HostState } from "../../src/host/state.ts";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import type { Runner } from "../../src/job/runner.ts";
import type { Lease } from "../../src/lease/types.ts";
import { applyVmLines } from "../../src/vm/apply.ts";
import { FakeClock, memoryLogger } from "../helpers.ts";

const never: Runner = { run: () => new Promise(() => {}) };
let clock: FakeClock;
let host: HostState;
let log: ReturnType<typeof memoryLogger>;
/** What the bridge wrote into the VM, per file. */
let wrote: { ctl: string[]; lease: string[]; status: string[] };

beforeEach(() => {
  clock = new FakeClock();
  log = memoryLogger();
  host = new HostState({ gpus: () => MOCK_GPUS, runner: never, runnerKind: "cpu", log: log.log, onChange: () => {}, clock });
  wrote = { ctl: [], lease: [], status: [] };
  host.onLogLine = (_gpu, file, text) => wrote[file].push(text);
});

type Terms = { mem_mb: number; streams: number; ttl_s: number; priority: number };
const record = (worker: string, t: Terms, state = "ACTIVE") =>
  `{"schema":"gpu-lease/v1","state":"${state}","gpu_id":"GPU-0","worker_id":"${worker}",` +
  `"mem_mb":${t.mem_mb},"streams":${t.streams},"ttl_s":${t.ttl_s},"priority":${t.priority}}`;
const vmWrites = (...lines: string[]) => applyVmLines(host, log.log, "GPU-0", "lease", lines);
const apiLease = () => host.grant({ gpu_id: "GPU-0", worker_id: "w1", mem_mb: 1024, streams: 2, ttl_s: 300, priority: 5 });
const termsOf = (l: Pick<Lease, keyof Terms>): Terms => ({ mem_mb: l.mem_mb, streams: l.streams, ttl_s: l.ttl_s, priority: l.priority });
/** The terms of the last record for `worker` the VM's clients would read (the bridge's lines last). */
const vmReads = (worker: string, vmLines: string[]) => {
  const mine = [...vmLines, ...wrote.lease].map((l) => JSON.parse(l)).filter((r) => r.worker_id === worker);
  return mine.at(-1);
};
const accounted = () => host.leases.live("GPU-0").reduce((n, l) => n + l.mem_mb, 0);

describe("an ACTIVE record the VM writes for a live lease", () => {
  test("with the lease's own terms renews it for its own TTL, never longer", () => {
    const lease = apiLease();
    clock.advance(200_000);
    vmWrites(record("w1", termsOf(lease)));
    expect(lease.expires_at).toBe(clock.now() + 300_000);
    expect(lease.state).toBe("ACTIVE");
  });

  test("with other terms that fit is admitted like a grant: host, API and VM show the same numbers", () => {
    const lease = apiLease();
    const asked = { mem_mb: 20000, streams: 16, ttl_s: 604800, priority: 255 };
    clock.advance(1000);
    vmWrites(record("w1", asked));
    expect(termsOf(leaseView(lease))).toEqual(asked); // the API
    expect(accounted()).toBe(20000); // the host
    expect(lease.expires_at).toBe(clock.now() + 604_800_000);
    const vmLine = record("w1", asked);
    expect(host.isLiveActiveLine("GPU-0", vmLine)).toBe(true); // the VM's line is the lease's current one
    expect(wrote.lease).toEqual([record("w1", { mem_mb: 1024, streams: 2, ttl_s: 300, priority: 5 })]); // no second copy of it
    expect(wrote.ctl.at(-1)).toBe("LEASE w1 mem=20000 streams=16 priority=255");
    // The GPU's memory is accounted: 23000 MiB more does not fit beside it.
    expect(() => host.grant({ gpu_id: "GPU-0", worker_id: "w2", mem_mb: 23000, streams: 1, ttl_s: 60, priority: 0 })).toThrow(
      "insufficient memory on GPU-0: requested 23000 MiB, 4576 MiB unleased",
    );
  });

  test("with other terms that do not fit is refused: the reason in status, the lease's own line last, nothing changes", () => {
    const lease = apiLease();
    host.grant({ gpu_id: "GPU-0", worker_id: "big", mem_mb: 20000, streams: 1, ttl_s: 60, priority: 0 });
    const before = { ...lease };
    clock.advance(1000);
    const asked = { mem_mb: 8000, streams: 2, ttl_s: 604800, priority: 5 };
    vmWrites(record("w1", asked));
    expect(lease).toEqual(before); // not renewed either
    expect(accounted()).toBe(21024);
    expect(JSON.parse(wrote.status.at(-1)!)).toEqual({
      job: "lease",
      state: "ERR",
      detail: "w1: terms refused: insufficient memory on GPU-0: requested 8000 MiB, 4576 MiB unleased",
    });
    expect(termsOf(vmReads("w1", [record("w1", asked)]))).toEqual(termsOf(lease));
  });

  test("the new terms survive a restart from the journal", async () => {
    const { LeaseJournal } = await import("../../src/lease/journal.ts");
    const { tempDir } = await import("../helpers.ts");
    const dir = tempDir("gbh-amend-");
    try {
      const journal = new LeaseJournal(`${dir.path}/leases.jsonl`);
      host = new HostState({ gpus: () => MOCK_GPUS, runner: never, runnerKind: "cpu", log: log.log, onChange: () => {}, clock, journal });
      const lease = apiLease();
      vmWrites(record("w1", { mem_mb: 4096, streams: 2, ttl_s: 900, priority: 5 }));
      journal.close();
      const again = new HostState({
        gpus: () => MOCK_GPUS,
        runner: never,
        runnerKind: "cpu",
        log: log.log,
        onChange: () => {},
        clock,
        journal: new LeaseJournal(`${dir.path}/leases.jsonl`),
      });
      again.restore();
      expect(again.leases.get(lease.id)).toMatchObject({ mem_mb: 4096, ttl_s: 900, expires_at: lease.expires_at });
      again.close();
    } finally {
      dir.cleanup();
    }
  });
});

describe("a RELEASED record the VM writes", () => {
  test("ends the lease whose terms it repeats", () => {
    const lease = apiLease();
    vmWrites(record("w1", termsOf(lease), "RELEASED"));
    expect(lease).toMatchObject({ state: "RELEASED", released_reason: "released in the VM" });
  });

  test("with other terms is refused: the lease stays, and its ACTIVE line is the last record the VM holds for it", () => {
    const lease = apiLease();
    const nonsense = record("w1", { mem_mb: 1, streams: 1, ttl_s: 1, priority: 0 }, "RELEASED");
    vmWrites(nonsense);
    expect(lease.state).toBe("ACTIVE");
    expect(JSON.parse(wrote.status.at(-1)!).detail).toBe(
      "w1: RELEASED terms differ from the lease (mem_mb 1024->1, streams 2->1, ttl_s 300->1…",
    );
    expect(vmReads("w1", [nonsense])).toMatchObject({ state: "ACTIVE", ...termsOf(lease) });
  });
});
