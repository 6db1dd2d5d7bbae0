/**
 * A line the VM's clients wrote is acted on at most once, even when it is read back twice: the
 * ledger of applied lines (by their place in the VM's file) is written before they are acted
 * on, so a restart that lost the mirror's record of a line does not apply it again.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { HostState } from "../../src/host/state.ts";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import type { Runner } from "../../src/job/runner.ts";
import { applyVmLines } from "../../src/vm/apply.ts";
import { AppliedLines, lineIdentities } from "../../src/vm/applied.ts";
import { VmMirror } from "../../src/vm/mirror.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";

const never: Runner = { run: () => new Promise(() => {}) };
let dir: { path: string; cleanup: () => void };
let host: HostState;
let log: ReturnType<typeof memoryLogger>;

beforeEach(() => {
  dir = tempDir("gbh-applied-");
  log = memoryLogger();
  host = new HostState({
    gpus: () => MOCK_GPUS,
    runner: never,
    runnerKind: "cpu",
    log: log.log,
    onChange: () => {},
    clock: new FakeClock(),
  });
});
afterEach(() => dir.cleanup());

const lease = (worker: string) => host.grant({ gpu_id: "GPU-0", worker_id: worker, mem_mb: 512, streams: 1, ttl_s: 600, priority: 0 });

/** A mirror that knows only the ctl seed line (as the daemon's does before anything happened). */
function seeded(): VmMirror {
  const m = new VmMirror();
  m.seed("GPU-0", "LEASE GPU-0\n");
  return m;
}

/** One read-back of the VM's ctl by `mirror`, handed to the host as the daemon does. */
function readBack(mirror: VmMirror, ledger: AppliedLines, vmCtl: string[]): void {
  const { fresh, freshAt } = mirror.readBack("GPU-0", "ctl", vmCtl);
  if (fresh.length > 0) applyVmLines(host, log.log, "GPU-0", "ctl", fresh, { place: { vmLines: vmCtl, at: freshAt }, ledger });
}

describe("VM control lines are applied at most once", () => {
  test("a RESET read back again by a restarted bridge whose mirror lost it is not applied again", () => {
    const path = `${dir.path}/vm-applied.log`;
    const vmCtl = ["LEASE GPU-0", "RESET"];
    lease("old");
    readBack(seeded(), AppliedLines.open(path), vmCtl);
    expect(host.leases.live()).toEqual([]);
    const fresh = lease("new"); // granted after the RESET

    // A restart whose mirror no longer knows the RESET (compacted away before the snapshot
    // that drops it reached the VM): the VM still holds it, in the same place.
    readBack(seeded(), AppliedLines.open(path), vmCtl);
    expect(fresh.state).toBe("ACTIVE");
    expect(log.lines.some((l) => l.includes("1 lines read back again were acted on before; skipped"))).toBe(true);

    // The same text written again, after it, is a new line: applied.
    readBack(seeded(), AppliedLines.open(path), [...vmCtl, "RESET"]);
    expect(fresh.state).toBe("RELEASED");
  });

  test("once a snapshot has landed (the ledger cleared), the same text in the same place is a new line", () => {
    const path = `${dir.path}/vm-applied.log`;
    const ledger = AppliedLines.open(path);
    readBack(seeded(), ledger, ["LEASE GPU-0", "RESET"]);
    const fresh = lease("new");
    ledger.clear();
    readBack(seeded(), AppliedLines.open(path), ["LEASE GPU-0", "RESET"]); // a VM whose ctl was replaced back to the same text
    expect(fresh.state).toBe("RELEASED");
  });

  test("RELEASE, read back twice in one process (a read-back that does not line up), ends only the lease it ended", () => {
    const ledger = AppliedLines.open(null);
    lease("w1");
    const vmCtl = ["LEASE GPU-0", "RELEASE w1 done"];
    readBack(seeded(), ledger, vmCtl);
    const again = lease("w1"); // the worker takes a new lease
    readBack(seeded(), ledger, vmCtl);
    expect(again.state).toBe("ACTIVE");
  });

  test("identities: one per place, different for the same text elsewhere or in another file; the ledger keeps the newest", () => {
    const vmLines = ["a", "RESET", "b", "RESET"];
    const [k1, k3] = lineIdentities("GPU-0", "ctl", { vmLines, at: [1, 3] });
    expect(k1).not.toBe(k3);
    expect(lineIdentities("GPU-0", "ctl", { vmLines: ["a", "RESET"], at: [1] })).toEqual([k1!]);
    expect(lineIdentities("GPU-1", "ctl", { vmLines, at: [1] })).not.toEqual([k1!]);
    expect(lineIdentities("GPU-0", "job", { vmLines, at: [1] })).not.toEqual([k1!]);
    const ledger = AppliedLines.open(`${dir.path}/l.json`);
    ledger.record(Array.from({ length: 5000 }, (_, i) => lineIdentities("G", "ctl", { vmLines: [String(i)], at: [0] })[0]!));
    expect(AppliedLines.open(`${dir.path}/l.json`).size).toBe(4096);
  });

  test("a ledger that is not one is refused at start-up, naming the file; a torn last line is dropped", () => {
    writeFileSync(`${dir.path}/bad.json`, '{"schema":"x"}');
    expect(() => AppliedLines.open(`${dir.path}/bad.json`)).toThrow(
      `Cannot read ${dir.path}/bad.json: not a gpu-bridge-vm-applied/v1 ledger`,
    );
    const key = "a".repeat(64);
    writeFileSync(`${dir.path}/torn`, `gpu-bridge-vm-applied/v1\n${key}\n${"b".repeat(20)}`);
    const torn = AppliedLines.open(`${dir.path}/torn`);
    expect([torn.size, torn.has(key)]).toEqual([1, true]);
    expect(readFileSync(`${dir.path}/torn`, "utf8")).toBe(`gpu-bridge-vm-applied/v1\n${key}\n`);
  });

  test("the ledger appends each batch (65 bytes an identity) and is rewritten once it holds twice what it keeps", () => {
    const path = `${dir.path}/vm-applied`;
    const ledger = AppliedLines.open(path);
    const key = (i: number) => i.toString(16).padStart(64, "0");
    ledger.record([key(0), key(1)]);
    ledger.record([key(1), key(2)]);
    expect(statSync(path).size).toBe(25 + 3 * 65);
    for (let i = 3; i < 9000; i += 100) ledger.record(Array.from({ length: 100 }, (_, j) => key(i + j)));
    ledger.close();
    expect(statSync(path).size).toBeLessThanOrEqual(25 + 2 * 4096 * 65);
    const again = AppliedLines.open(path);
    expect(again.size).toBe(4096);
    expect([again.has(key(9002)), again.has(key(0))]).toEqual([true, false]);
  });
});
